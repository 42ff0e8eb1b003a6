"""`digitlab predict RUN --kaggle-csv test.csv --out submission.csv`: the exact submission
format (ImageId from 1), batching, --force, usage errors and bad test files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from digitlab.config import Config
from digitlab.errors import DataError, DigitlabError, UsageError
from digitlab.inference.kaggle import submission_text, write_submission
from digitlab.inference.predictor import Predictor
from helpers import cli

PIXEL_HEADER = ",".join(f"pixel{i}" for i in range(784))


class FirstPixel(nn.Module):
    """Predicts the class written in pixel0 (0..9), so the expected labels are known."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        value = (images[:, 0, 0, 0] * 255).round().long()  # mean 0, std 1: x = pixels / 255
        return nn.functional.one_hot(value % 10, 10).float() * 10


def first_pixel_predictor(model: nn.Module | None = None) -> Predictor:
    return Predictor(model or FirstPixel(), Config(), tuple(str(i) for i in range(10)), 0.0,
                     1.0, torch.device("cpu"))


def write_test_csv(path: Path, first_pixels: list[int]) -> Path:
    rows = np.zeros((len(first_pixels), 784), dtype=int)
    rows[:, 0] = first_pixels
    rows[:, 400] = 255  # some ink
    lines = [PIXEL_HEADER, *(",".join(map(str, row)) for row in rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_submission_text_is_exact():
    assert submission_text([7, 0, 3]) == "ImageId,Label\n1,7\n2,0\n3,3\n"


def test_write_submission_in_batches(tmp_path):
    expected = [3, 1, 4, 1, 5, 9, 2]
    test_csv = write_test_csv(tmp_path / "test.csv", expected)
    out = tmp_path / "submission.csv"
    count = write_submission(first_pixel_predictor(), test_csv, out, batch_size=3)
    assert count == 7
    assert out.read_text() == "ImageId,Label\n" + "".join(
        f"{i},{label}\n" for i, label in enumerate(expected, start=1))


def test_existing_out_needs_force(tmp_path):
    test_csv = write_test_csv(tmp_path / "test.csv", [1, 2])
    out = tmp_path / "submission.csv"
    out.write_text("keep me")
    with pytest.raises(UsageError, match="already exists; pass --force"):
        write_submission(first_pixel_predictor(), test_csv, out)
    assert out.read_text() == "keep me"
    write_submission(first_pixel_predictor(), test_csv, out, force=True)
    assert out.read_text() == "ImageId,Label\n1,1\n2,2\n"
    with pytest.raises(UsageError, match="is a folder"):
        write_submission(first_pixel_predictor(), test_csv, tmp_path)


def test_bad_test_files_name_file_and_line(tmp_path):
    out = tmp_path / "submission.csv"
    labelled = tmp_path / "train.csv"
    labelled.write_text("label," + PIXEL_HEADER + "\n" + ",".join(["1"] * 785) + "\n")
    with pytest.raises(DataError, match=r"train.csv:1: .*it has a label column"):
        write_submission(first_pixel_predictor(), labelled, out)
    bad = write_test_csv(tmp_path / "test.csv", [1, 2, 3])
    lines = bad.read_text().splitlines()
    lines[3] = lines[3].replace("255", "x", 1)
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"test.csv:4: pixel400 is 'x', not a whole number"):
        write_submission(first_pixel_predictor(), bad, out)
    assert not out.exists()


def test_a_model_that_overflows_names_the_image(tmp_path):
    class Overflow(nn.Module):
        def forward(self, images):
            logits = torch.zeros(len(images), 10)
            logits[images[:, 0, 0, 0] > 0.5 / 255] = float("nan")
            return logits

    test_csv = write_test_csv(tmp_path / "test.csv", [0, 0, 0, 1])
    with pytest.raises(DigitlabError, match="not finite .* ImageId 4"):
        write_submission(first_pixel_predictor(Overflow()), test_csv, tmp_path / "s.csv",
                         batch_size=2)


def test_cli_kaggle_submission(digits_run, tmp_path, capsys):
    test_csv = write_test_csv(tmp_path / "test.csv", list(range(10)))
    out = tmp_path / "submission.csv"
    code, text = cli(capsys, "predict", str(digits_run), "--kaggle-csv", str(test_csv),
                     "--out", str(out), "--device", "cpu")
    assert code == 0, text
    assert f"wrote 10 predictions to {out}" in text
    lines = out.read_text().splitlines()
    assert lines[0] == "ImageId,Label"
    assert [line.split(",")[0] for line in lines[1:]] == [str(i) for i in range(1, 11)]
    assert all(line.split(",")[1] in "0123456789" for line in lines[1:])
    code, text = cli(capsys, "predict", str(digits_run), "--kaggle-csv", str(test_csv),
                     "--out", str(out))
    assert code == 2 and "already exists; pass --force" in text
    code, text = cli(capsys, "predict", str(digits_run), "--kaggle-csv", str(test_csv),
                     "--out", str(out), "--force", "--device", "cpu")
    assert code == 0, text


@pytest.mark.parametrize("argv, message", [
    ([], "give image files or folders to predict, or --kaggle-csv"),
    (["--kaggle-csv", "test.csv"], "--kaggle-csv TEST.CSV and --out SUBMISSION.CSV go together"),
    (["--out", "s.csv"], "--kaggle-csv TEST.CSV and --out SUBMISSION.CSV go together"),
    (["digit.png", "--kaggle-csv", "test.csv", "--out", "s.csv"], "without image PATHs"),
    (["--kaggle-csv", "test.csv", "--out", "s.csv", "--top-k", "3"], "without image PATHs"),
])
def test_cli_usage_errors(tmp_path, capsys, argv, message):
    code, text = cli(capsys, "predict", str(tmp_path / "no-run"), *argv)
    assert code == 2
    assert message in text
