"""The `csv` source: digits in the Kaggle "Digit Recognizer" format.

train.csv has the header `label,pixel0,...,pixel783` and one digit per line: a label 0..9 and
784 pixels 0..255, row by row, white ink on black as in MNIST (pixel k is row k // 28, column
k % 28). Kaggle's test.csv has the same pixels without the label (`read_digits_csv(...,
labelled=False)`, used by `digitlab predict --kaggle-csv`).

numpy reads a good file in one pass (42,000 lines in about a second). When that pass fails, or
its values are out of range, the file is read again line by line with the csv module to name
the first bad line (1-based, the header is line 1) and what is wrong with it.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import torch

from digitlab.data.dataset import Dataset, Split
from digitlab.data.mnist import DIGITS
from digitlab.data.userdata import (
    cache_path,
    fingerprint,
    load_cached,
    store,
    stratified_holdout,
)
from digitlab.errors import DataError
from digitlab.i18n import _

PIXELS = tuple(f"pixel{i}" for i in range(28 * 28))
TRAIN_FILE = "train.csv"


def header(labelled: bool) -> tuple[str, ...]:
    return (("label",) if labelled else ()) + PIXELS


def _open(path: Path):
    # utf-8-sig: spreadsheet programs start files with a byte-order mark. Undecodable bytes
    # become U+FFFD, which no number contains, so they are reported as bad values by line.
    try:
        return open(path, encoding="utf-8-sig", errors="replace", newline="")
    except OSError as e:
        raise DataError(_("{path}: cannot open ({error})").format(
            path=path, error=e.strerror or e)) from None


def check_header(path: Path, line: str, labelled: bool) -> None:
    names = tuple(name.strip().strip('"') for name in line.rstrip("\r\n").split(","))
    expected = header(labelled)
    if names == expected:
        return
    shape = _("label,pixel0,...,pixel783") if labelled else _("pixel0,...,pixel783")
    if not line.strip():
        problem = _("the file is empty")
    elif names == header(not labelled):
        problem = (_("it has no label column (is it Kaggle's unlabelled test.csv?)") if labelled
                   else _("it has a label column (is it a training file?)"))
    elif len(names) != len(expected):
        problem = _("{count} columns, expected {expected}").format(count=len(names),
                                                                   expected=len(expected))
    else:
        column = next(i for i, (a, b) in enumerate(zip(names, expected, strict=True)) if a != b)
        problem = _("column {number} is {name!r}, expected {expected!r}").format(
            number=column + 1, name=names[column], expected=expected[column])
    raise DataError(_("{path}:1: the header must be {header}: {problem}").format(
        path=path, header=shape, problem=problem))


def bad_value(path: Path, line: int, column: str, cell: str, labelled: bool) -> str | None:
    """The message for one cell that is not a number in range, or None when it is fine."""
    is_label = labelled and column == "label"
    try:
        value = int(cell.strip())
    except ValueError:
        value = None
    if is_label and (value is None or not 0 <= value <= 9):
        return _("{path}:{line}: label {value!r} is not a digit 0..9").format(
            path=path, line=line, value=cell)
    if value is None:
        return _("{path}:{line}: {column} is {value!r}, not a whole number 0..255").format(
            path=path, line=line, column=column, value=cell)
    if not 0 <= value <= 255:
        return _("{path}:{line}: {column} = {value} is outside 0..255").format(
            path=path, line=line, column=column, value=value)
    return None


def check_row(path: Path, line: int, row: list[str], labelled: bool) -> np.ndarray:
    """One line's values, or DataError naming the line and the first bad value."""
    columns = header(labelled)
    if len(row) != len(columns):
        raise DataError(_("{path}:{line}: {count} values, expected {expected} ({header})")
                        .format(path=path, line=line, count=len(row), expected=len(columns),
                                header=_("a label and 784 pixels") if labelled
                                else _("784 pixels")))
    try:
        values = np.asarray(row).astype(np.int64)
    except ValueError:
        values = None
    if values is None or values.min() < 0 or values.max() > 255 or (labelled and values[0] > 9):
        for column, cell in zip(columns, row, strict=True):
            if (message := bad_value(path, line, column, cell, labelled)) is not None:
                raise DataError(message)
        values = np.array([int(cell) for cell in row], dtype=np.int64)  # " 7": int() strips
    return values


def read_slowly(path: Path, labelled: bool) -> np.ndarray:
    """Every line checked with the csv module; DataError at the first bad one."""
    rows = []
    with _open(path) as f:
        reader = csv.reader(f)
        next(reader, None)  # the header, already checked
        for row in reader:
            if row:  # a blank line
                rows.append(check_row(path, reader.line_num, row, labelled))
    return np.stack(rows) if rows else np.empty((0, len(header(labelled))), dtype=np.int64)


def in_range(values: np.ndarray, labelled: bool) -> bool:
    if values.ndim != 2 or values.shape[1] != len(header(labelled)) or not len(values):
        return False
    pixels = values[:, 1:] if labelled else values
    labels_ok = not labelled or bool(((values[:, 0] >= 0) & (values[:, 0] <= 9)).all())
    return labels_ok and int(pixels.min()) >= 0 and int(pixels.max()) <= 255


def read_digits_csv(path: str | Path, labelled: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 images [N, 28, 28], int64 labels [N]; empty labels when not `labelled`)."""
    path = Path(path)
    if not path.is_file():
        problem = _("not a file") if path.exists() else _("no such file")
        raise DataError(_("{path}: {problem}; give a CSV file in Kaggle's format ({header})")
                        .format(path=path, problem=problem, header="label,pixel0,...,pixel783"
                                if labelled else "pixel0,...,pixel783"))
    with _open(path) as f:
        check_header(path, f.readline(), labelled)
        try:
            with warnings.catch_warnings():  # "input contained no data": checked below
                warnings.simplefilter("ignore", UserWarning)
                values = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2, comments=None,
                                    quotechar='"')
        except ValueError:
            values = None
    if values is None or not in_range(values, labelled):
        values = read_slowly(path, labelled)  # names the bad line, if there is one
    if not len(values):
        raise DataError(_("{path}: no digits after the header line").format(path=path))
    pixels = values[:, 1:] if labelled else values
    labels = values[:, 0] if labelled else np.empty(0, dtype=np.int64)
    return (torch.from_numpy(pixels.astype(np.uint8).reshape(-1, 28, 28)),
            torch.from_numpy(np.ascontiguousarray(labels)))


def load_split(path: Path) -> Split:
    """A labelled CSV as a split, from the cache when the file has not changed."""
    cached = cache_path("csv", fingerprint([path], "csv")) if path.is_file() else None
    split = load_cached(cached) if cached is not None else None
    if split is None:
        split = Split(*read_digits_csv(path, labelled=True))
        if cached is not None:
            store(cached, split)
    return split


def train_file(data_dir: str) -> Path:
    """data.dir itself, or the train.csv inside it."""
    if not data_dir:
        raise DataError(_("the csv dataset needs data.dir (--data-dir): Kaggle's train.csv or "
                          "the folder that holds it"))
    path = Path(data_dir).expanduser()
    return path / TRAIN_FILE if path.is_dir() else path


def load(data_dir: str, test_dir: str, test_fraction: float) -> Dataset:
    path = train_file(data_dir)
    train = load_split(path)
    if test_dir:
        test = load_split(Path(test_dir).expanduser())
    else:
        train, test = stratified_holdout(train, test_fraction, DIGITS, str(path))
    return Dataset("csv", path.name, train, test, DIGITS, str(path))
