"""What the `folder` and `csv` sources share: the cache of decoded tensors, and the test split
taken from the training files when no data.test_dir is given.

The cache lives under the user cache dir (never in the user's folder), keyed by a hash of the
files' absolute paths, sizes and modification times: editing, adding or removing a file makes
a new key, so a stale entry is never read. A damaged entry is decoded again, never trusted.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from safetensors.torch import save

from digitlab.data.dataset import Split, cache_dir, read_cached
from digitlab.errors import DataError
from digitlab.i18n import _
from digitlab.io import atomic_write_bytes

# Fixed, as in the digits source: every run, whatever its train.seed, sees the same test set,
# so runs with different seeds are compared on the same images.
HOLDOUT_SEED = 0


def fingerprint(paths: list[Path], salt: str) -> str:
    """16 hex digits naming this exact list of files (path, size, mtime) and `salt`."""
    digest = hashlib.sha1(salt.encode())
    for path in paths:
        try:
            info = path.stat()
        except OSError as e:
            raise DataError(_("{path}: cannot read ({error})").format(
                path=path, error=e.strerror or e)) from None
        digest.update(f"{path.resolve()}\t{info.st_size}\t{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def cache_path(kind: str, key: str) -> Path:
    return cache_dir() / "tensors" / f"{kind}-{key}.safetensors"


def load_cached(path: Path) -> Split | None:
    """The split stored at `path`, or None when there is none or it is damaged."""
    tensors = read_cached(path)
    if tensors is None or not {"images", "labels"} <= tensors.keys():
        return None
    images, labels = tensors["images"], tensors["labels"]
    if images.dtype != torch.uint8 or images.shape[1:] != (28, 28) or len(images) != len(labels):
        return None
    return Split(images, labels)


def store(path: Path, split: Split) -> None:
    """Best effort: a cache that cannot be written costs a decode next time, nothing more."""
    try:
        atomic_write_bytes(path, save({"images": split.images.contiguous(),
                                       "labels": split.labels.contiguous()}))
    except OSError:
        pass


def stratified_holdout(split: Split, fraction: float, classes: tuple[str, ...],
                       where: str) -> tuple[Split, Split]:
    """(train, test): `fraction` of every class (rounded, at least one image) drawn with
    HOLDOUT_SEED for the test split. A class with a single image cannot be split."""
    gen = torch.Generator().manual_seed(HOLDOUT_SEED)
    test = []
    for index, name in enumerate(classes):
        members = (split.labels == index).nonzero().squeeze(1)
        if len(members) == 0:  # a CSV need not hold every digit
            continue
        if len(members) < 2:
            raise DataError(_("{where}: class {label!r} has only one image, too few to hold "
                              "out a test share; add images of it, or give a test set with "
                              "--set data.test_dir=...").format(where=where, label=name))
        count = min(len(members) - 1, max(1, round(len(members) * fraction)))
        test.append(members[torch.randperm(len(members), generator=gen)[:count]])
    test_rows = torch.cat(test).sort().values
    keep = torch.ones(len(split), dtype=torch.bool)
    keep[test_rows] = False
    train_rows = keep.nonzero().squeeze(1)
    return (Split(split.images[train_rows], split.labels[train_rows]),
            Split(split.images[test_rows], split.labels[test_rows]))
