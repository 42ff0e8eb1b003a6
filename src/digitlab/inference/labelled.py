"""Labelled image files, read and predicted: the input of `digitlab evaluate --images DIR`.

DIR is laid out either as ImageFolder (`DIR/<label>/<image>`, sub-folders searched too) or
as a folder with `labels.csv` (a `file,label` header, files relative to DIR). Each file goes
through `preprocess`, exactly as `digitlab predict` reads it. A file that cannot be read is
kept, with the reason, so that the caller counts it as an error: nothing is dropped silently.
A label is one of the model's class names ("৭" for a Bengali seven), or the same digits in
another script when that names a single class (match_label).
"""

from __future__ import annotations

import csv
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from digitlab.errors import UsageError
from digitlab.i18n import N_, _
from digitlab.inference.predictor import Predictor
from digitlab.inference.preprocess import ImageError, preprocess
from digitlab.scripts import digit_value

LABELS_CSV = "labels.csv"
LAYOUT_HINT = N_("DIR/<label>/<image> or DIR/labels.csv with a file,label header")
BATCH_SIZE = 256  # digits per forward pass


@dataclass(frozen=True)
class LabelledFile:
    path: Path
    name: str  # the path relative to DIR, with "/" (what labels.csv says, or label/file)
    label: str


@dataclass(frozen=True)
class LabelledSet:
    folder: Path
    layout: str  # "folders" or "labels.csv"
    files: list[LabelledFile]
    ignored: list[str]  # files outside the label folders (e.g. a README): shown, not read


@dataclass(frozen=True)
class Readings:
    """What the model said about each file that could be read, and why the others could not."""

    files: list[LabelledFile]  # read, in order
    digits: np.ndarray  # uint8 [N, 28, 28]: what the model saw
    probs: torch.Tensor  # [N, C]
    unreadable: list[tuple[LabelledFile, str]]  # (file, reason)


def _visible(names: list[str]) -> list[str]:
    return sorted(n for n in names if not n.startswith("."))  # .DS_Store, .git, editor temps


def _walk_label_folder(folder: Path, root: Path, label: str) -> list[LabelledFile]:
    files = []
    for here, dirs, names in os.walk(folder):  # does not follow links to folders: no loops
        dirs[:] = _visible(dirs)
        for name in _visible(names):
            path = Path(here) / name
            files.append(LabelledFile(path, path.relative_to(root).as_posix(), label))
    return files


def from_folders(folder: Path) -> LabelledSet:
    files: list[LabelledFile] = []
    ignored = []
    for entry in _visible(os.listdir(folder)):
        path = folder / entry
        if path.is_dir():
            files += _walk_label_folder(path, folder, entry.strip())
        else:
            ignored.append(entry)
    return LabelledSet(folder, "folders", files, ignored)


def _csv_columns(header: list[str], where: str, label: str) -> tuple[int, int]:
    names = [h.strip().lower() for h in header]
    if "file" not in names or label not in names:
        raise UsageError(_("{where}: expected a header with the columns file,{label}, found "
                           "{header!r}").format(where=where, label=label,
                                                header=",".join(header)))
    return names.index("file"), names.index(label)


def from_labels_csv(folder: Path, label_column: str = "label") -> LabelledSet:
    """The files labels.csv lists, with their labels (the `label_column` column)."""
    csv_path = folder / LABELS_CSV
    try:
        text = csv_path.read_text(encoding="utf-8-sig")  # -sig: the BOM spreadsheets write
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(_("{path}: cannot read it ({error}); save it as UTF-8 text").format(
            path=csv_path, error=getattr(e, "strerror", None) or e)) from None
    rows = csv.reader(text.splitlines())
    header = next(rows, None)
    file_col, label_col = _csv_columns(header or [], f"{csv_path}:1", label_column)
    files, first_line = [], {}
    for line, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue  # a blank line
        where = f"{csv_path}:{line}"
        if len(row) <= max(file_col, label_col):
            raise UsageError(_("{where}: expected file,{label}, found {row!r}").format(
                where=where, label=label_column, row=",".join(row)))
        name, label = row[file_col].strip(), row[label_col].strip()
        if not name or not label:
            raise UsageError(_("{where}: the file or the label is empty").format(where=where))
        if name in first_line:
            raise UsageError(_("{where}: {file} is listed again (first on line {first})")
                             .format(where=where, file=name, first=first_line[name]))
        first_line[name] = line
        files.append(LabelledFile(folder / name, name, label))
    return LabelledSet(folder, LABELS_CSV, files, [])


def find_labelled(folder: str | Path) -> LabelledSet:
    """The labelled files in `folder`, in either layout; a one-line UsageError when there are
    none or the folder is neither layout."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(_("--images {folder}: not a folder; give {hint}").format(
            folder=folder, hint=_(LAYOUT_HINT)))
    found = from_labels_csv(folder) if (folder / LABELS_CSV).exists() else from_folders(folder)
    if not found.files:
        raise UsageError(_("--images {folder}: no labelled images found; give {hint}").format(
            folder=folder, hint=_(LAYOUT_HINT)))
    return found


def match_label(label: str, classes: tuple[str, ...]) -> str | None:
    """The class a folder name or labels.csv label names: the class of that name, else the one
    class writing the same digits in another script ("7" is "৭" for a model that knows only
    "০".."৯"); None when no class, or more than one, does."""
    if label in classes:
        return label
    value = digit_value(label)
    same = [name for name in classes
            if value is not None and len(name) == len(label) and digit_value(name) == value]
    return same[0] if len(same) == 1 else None


def check_labels(found: LabelledSet, classes: tuple[str, ...]) -> LabelledSet:
    """`found` with every label as the model's class name (match_label), or a UsageError
    naming the labels that match none."""
    matched = {label: match_label(label, classes) for label in {f.label for f in found.files}}
    unknown = sorted(label for label, name in matched.items() if name is None)
    if unknown:
        raise UsageError(_("--images {folder}: the model does not know the label(s) {labels}; "
                           "it knows {classes}: rename the folders or fix labels.csv").format(
            folder=found.folder, labels=", ".join(map(repr, unknown)),
            classes=", ".join(classes)))
    files = [dataclasses.replace(f, label=matched[f.label]) for f in found.files]
    return dataclasses.replace(found, files=files)


def read_labelled(predictor: Predictor, files: list[LabelledFile],
                  batch_size: int = BATCH_SIZE) -> Readings:
    """Each file preprocessed as `digitlab predict` does, then predicted in batches."""
    read, digits, unreadable = [], [], []
    for item in files:
        try:
            digits.append(preprocess(item.path))
            read.append(item)
        except ImageError as e:
            unreadable.append((item, str(e)))
    stacked = np.stack(digits) if digits else np.zeros((0, 28, 28), np.uint8)
    chunks = [predictor.read(stacked[start:start + batch_size])
              for start in range(0, len(stacked), batch_size)]
    seen = np.concatenate([c[0] for c in chunks]) if chunks else stacked  # what the model saw
    probs = torch.cat([c[1] for c in chunks]) if chunks else torch.zeros(0, len(predictor.classes))
    finite = torch.isfinite(probs).all(dim=1)
    for index in (~finite).nonzero().flatten().tolist():  # weights that overflow on this input
        unreadable.append((read[index], _("the model's output is not finite (NaN or Infinity); "
                                          "retrain with a lower learning rate")))
    keep = finite.nonzero().flatten().tolist()
    return Readings([read[i] for i in keep], seen[keep], probs[finite], unreadable)
