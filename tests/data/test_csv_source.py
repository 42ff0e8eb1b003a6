"""The `csv` source (Kaggle "Digit Recognizer"): a good file, both test modes, and every kind
of bad file named by file and line (1-based, the header is line 1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from digitlab.config import DataConfig
from digitlab.data import SOURCES
from digitlab.data.csvfile import read_digits_csv
from digitlab.errors import DataError
from helpers import TINY, cli

HEADER = "label," + ",".join(f"pixel{i}" for i in range(784))


def digit_rows(count: int, seed: int = 0) -> np.ndarray:
    """[count, 785]: labels 0..9 in turn, then random pixels 0..255."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (count, 784))
    return np.column_stack([np.arange(count) % 10, pixels])


def write_csv(path: Path, rows: np.ndarray, header: str = HEADER) -> Path:
    lines = [header, *(",".join(str(v) for v in row) for row in rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def load(path: Path, **fields):
    return SOURCES.get("csv")(DataConfig(name="csv", dir=str(path), **fields))


def test_good_file_pixel_order_and_holdout(tmp_path):
    rows = digit_rows(50)
    rows[3, 1 + 28 * 5 + 7] = 255  # pixel 147 is row 5, column 7
    path = write_csv(tmp_path / "train.csv", rows)
    images, labels = read_digits_csv(path, labelled=True)
    assert images.dtype == torch.uint8 and images.shape == (50, 28, 28)
    assert labels.tolist() == rows[:, 0].tolist()
    assert int(images[3, 5, 7]) == 255
    assert torch.equal(images.reshape(50, -1), torch.from_numpy(rows[:, 1:]).to(torch.uint8))
    dataset = load(tmp_path)  # a folder holding train.csv works too
    assert dataset.classes == tuple(str(i) for i in range(10))
    assert (len(dataset.train), len(dataset.test)) == (40, 10)  # 20% of each digit's 5
    assert sorted(dataset.test.labels.tolist()) == list(range(10))
    assert torch.equal(load(path).test.images, dataset.test.images)  # seeded: the same split


def test_test_dir_is_a_labelled_csv(tmp_path):
    train = write_csv(tmp_path / "train.csv", digit_rows(30))
    test = write_csv(tmp_path / "valid.csv", digit_rows(12, seed=1))
    dataset = load(train, test_dir=str(test))
    assert (len(dataset.train), len(dataset.test)) == (30, 12)
    assert dataset.test.labels.tolist() == (np.arange(12) % 10).tolist()


def test_blank_lines_bom_and_crlf_are_accepted(tmp_path):
    rows = digit_rows(4)
    lines = [HEADER, *(",".join(map(str, row)) for row in rows)]
    lines.insert(2, "")
    path = tmp_path / "train.csv"
    path.write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n").encode())
    images, labels = read_digits_csv(path, labelled=True)
    assert labels.tolist() == [0, 1, 2, 3]


def set_cell(line: int, column: int, value: str):
    """A change to one cell; `line` counts from 1 with the header as line 1, `column` from 0
    with the label (pixel k is column k + 1)."""
    def change(lines: list[str]) -> None:
        cells = lines[line - 1].split(",")
        cells[column] = value
        lines[line - 1] = ",".join(cells)
    return change


def drop_last_value(line: int):
    def change(lines: list[str]) -> None:
        lines[line - 1] = lines[line - 1].rsplit(",", 1)[0]
    return change


def insert_blank_then(change):
    def both(lines: list[str]) -> None:
        lines.insert(2, "")
        change(lines)
    return both


BAD_FILES = {
    "non-numeric pixel": (set_cell(4, 11, "abc"), ":4: pixel10 is 'abc', not a whole number"),
    "fractional pixel": (set_cell(5, 1, "3.5"), ":5: pixel0 is '3.5'"),
    "pixel above 255": (set_cell(6, 784, "256"), ":6: pixel783 = 256 is outside 0..255"),
    "negative pixel": (set_cell(2, 99, "-1"), ":2: pixel98 = -1 is outside 0..255"),
    "unknown label": (set_cell(7, 0, "10"), ":7: label '10' is not a digit 0..9"),
    "text label": (set_cell(3, 0, "seven"), ":3: label 'seven' is not a digit 0..9"),
    "short row": (drop_last_value(9), ":9: 784 values, expected 785"),
    "long row": (set_cell(8, 784, "0,0"), ":8: 786 values, expected 785"),
    "renamed column": (set_cell(1, 6, "pixel_5"), ":1: the header must be "
                       "label,pixel0,...,pixel783: column 7 is 'pixel_5', expected 'pixel5'"),
    "missing column": (drop_last_value(1), ":1: the header must be label,pixel0,...,pixel783: "
                       "784 columns, expected 785"),
    "no label column": (lambda lines: lines.__setitem__(0, HEADER[len("label,"):]),
                        ":1: the header must be label,pixel0,...,pixel783: it has no label"),
    "line counted after a blank line": (insert_blank_then(set_cell(6, 3, "999")),
                                        ":6: pixel2 = 999"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_names_file_and_line(tmp_path, case):
    change, expected = BAD_FILES[case]
    path = tmp_path / "train.csv"
    lines = [HEADER, *(",".join(map(str, row)) for row in digit_rows(10))]
    change(lines)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as error:
        load(path)
    assert f"{path}{expected}" in str(error.value)


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match=":1: the header must be .*the file is empty"):
        read_digits_csv(empty, labelled=True)
    header_only = write_csv(tmp_path / "header.csv", np.empty((0, 785), dtype=int))
    with pytest.raises(DataError, match="no digits after the header line"):
        read_digits_csv(header_only, labelled=True)
    with pytest.raises(DataError, match="no such file"):
        load(tmp_path / "missing.csv")
    with pytest.raises(DataError, match="no such file"):
        load(tmp_path)  # a folder without train.csv


def test_a_large_file_loads(tmp_path):
    """Kaggle's train.csv has 42,000 lines; numpy reads them in one pass (no timing here:
    the assertion is that the fast path and the checked path agree)."""
    rows = digit_rows(2000)
    path = tmp_path / "train.csv"
    np.savetxt(path, rows, fmt="%d", delimiter=",", header=HEADER, comments="")
    images, labels = read_digits_csv(path, labelled=True)
    assert labels.tolist() == rows[:, 0].tolist()
    assert torch.equal(images.reshape(2000, -1), torch.from_numpy(rows[:, 1:]).to(torch.uint8))


def test_train_on_a_csv_end_to_end(tmp_path, capsys, no_analysis):
    path = write_csv(tmp_path / "train.csv", digit_rows(60))
    run = tmp_path / "run"
    code, out = cli(capsys, "train", "--dataset", "csv", "--data-dir", str(path),
                    "--epochs", "1", "--out", str(run), *TINY)
    assert code == 0, out
    assert "50 train / 10 test" in out
    assert (run / "checkpoints").is_dir()
