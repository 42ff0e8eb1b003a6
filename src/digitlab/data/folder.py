"""The `folder` source: your own images in ImageFolder layout, DIR/<label>/*.png.

- Class names are the sorted sub-folder names; when every name is a whole number they sort
  numerically ("2" before "10"). Files directly in DIR are ignored, as are hidden files and
  folders (".DS_Store", ".git"), so DIR may hold a README or a labels file.
- Every other file must be an image that `digitlab predict` can read: each goes through the
  same preprocessing as predict (inference.preprocess), so a model trained here sees exactly
  what it will see later. A file that is not an image, or cannot be read, stops the load with
  its name: nothing is dropped silently.
- The test split is data.test_dir, in the same layout with the same class folders, or else a
  stratified hold-out of data.test_fraction of each class (userdata.stratified_holdout).
- Decoded tensors are cached under the user cache dir (userdata), never in DIR.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from digitlab.data.dataset import Dataset, Split
from digitlab.data.userdata import (
    cache_path,
    fingerprint,
    load_cached,
    store,
    stratified_holdout,
)
from digitlab.errors import DataError
from digitlab.i18n import _

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm",
                  ".pgm", ".pbm")
LAYOUT = "DIR/<label>/*.png"


def hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def class_order(names: list[str]) -> list[str]:
    """Numeric order when every name is a whole number ("2" < "10"), else text order."""
    if all(name.isascii() and name.isdigit() for name in names):
        return sorted(names, key=lambda name: (int(name), name))
    return sorted(names)


def class_folders(root: Path, key: str) -> dict[str, Path]:
    """{class name: its folder}, in class order; DataError unless there are at least two."""
    if not root.is_dir():
        problem = _("not a folder") if root.exists() else _("no such folder")
        raise DataError(_("{key} = {path}: {problem}; give a folder with one sub-folder of "
                          "images per class ({layout})").format(
            key=key, path=root, problem=problem, layout=LAYOUT))
    folders = {p.name: p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    if len(folders) < 2:
        raise DataError(_("{path} has {count} class folders ({names}); a classifier needs at "
                          "least two: one sub-folder of images per class ({layout})").format(
            path=root, count=len(folders), names=", ".join(sorted(folders)) or "-",
            layout=LAYOUT))
    return {name: folders[name] for name in class_order(list(folders))}


def image_files(folder: Path) -> list[Path]:
    """Every non-hidden file under a class folder (recursively), sorted; DataError for a
    file that is not an image and for a folder without any."""
    files = sorted(p for p in folder.rglob("*") if not p.is_dir() and not hidden(p, folder))
    for path in files:
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise DataError(_("{path}: not an image file (expected one of {suffixes}); remove "
                              "it or move it out of the class folder").format(
                path=path, suffixes=" ".join(IMAGE_SUFFIXES)))
    if not files:
        raise DataError(_("{folder}: the class folder holds no images; add images of class "
                          "{label!r} or remove the folder").format(folder=folder,
                                                                    label=folder.name))
    return files


def scan(root: Path, key: str) -> tuple[tuple[str, ...], list[Path], list[int]]:
    """(class names, files, label index of each file)."""
    folders = class_folders(root, key)
    files, labels = [], []
    for index, folder in enumerate(folders.values()):
        found = image_files(folder)
        files += found
        labels += [index] * len(found)
    return tuple(folders), files, labels


def preprocessing_version() -> str:
    """A hash of the preprocessing's source (preprocess and the modules it uses): a change
    to it (an upgrade) makes new cache keys, so images are never served as an older
    preprocessing left them."""
    from digitlab.inference import photo, preprocess, strokes

    digest = hashlib.sha1()
    for module in (preprocess, photo, strokes):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()


def decode(files: list[Path], labels: list[int]) -> Split:
    """Each file through predict's preprocessing; DataError naming the first unreadable one."""
    # imported here: inference imports training, which imports config, which imports data
    from digitlab.inference import preprocess as pre

    digits = np.empty((len(files), 28, 28), dtype=np.uint8)
    for row, path in enumerate(files):
        try:
            digits[row] = pre.preprocess(path)
        except pre.ImageError as e:
            raise DataError(_("{error}; fix or remove this file, then run again").format(
                error=e)) from None
    return Split(torch.from_numpy(digits), torch.tensor(labels, dtype=torch.int64))


def load_split(root: Path, key: str) -> tuple[tuple[str, ...], Split]:
    """The classes and decoded images of one folder, from the cache when nothing changed."""
    classes, files, labels = scan(root, key)
    salt = "\n".join(["folder", preprocessing_version(), *classes])
    path = cache_path("folder", fingerprint(files, salt))
    split = load_cached(path)
    if split is None or split.labels.tolist() != labels:
        split = decode(files, labels)
        store(path, split)
    return classes, split


def load(data_dir: str, test_dir: str, test_fraction: float) -> Dataset:
    root = Path(data_dir).expanduser()
    classes, train = load_split(root, "data.dir")
    if test_dir:
        test_classes, test = load_split(Path(test_dir).expanduser(), "data.test_dir")
        if test_classes != classes:
            raise DataError(_("data.test_dir = {test_dir} has the classes {test_classes}, but "
                              "data.dir = {data_dir} has {classes}; both need the same class "
                              "folders").format(test_dir=test_dir, data_dir=data_dir,
                                                test_classes=", ".join(test_classes),
                                                classes=", ".join(classes)))
    else:
        train, test = stratified_holdout(train, test_fraction, classes, str(root))
    return Dataset("folder", root.resolve().name or str(root), train, test, classes, str(root))
