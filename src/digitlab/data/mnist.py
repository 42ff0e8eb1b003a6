"""The MNIST family (MNIST, Fashion-MNIST, KMNIST): find, verify, decode, cache, download.

Search order for the folder: data.dir (--data-dir), then $DIGITLAB_DATA, then the user cache.
In each root we accept the four files directly, torchvision's <root>/<Name>/raw/, or
<root>/<name>/. A folder the user gave is only read; decoded tensors go to the cache. When no
folder holds the files any more, a set decoded before is used (`cached_splits`), then download.

What is checked, file by file (`verify`, then `check_structure`):
- every .gz file (all three datasets): the md5 of the official file, as torchvision lists it;
- unpacked MNIST and Fashion-MNIST files: the md5 of the official unpacked file;
- unpacked KMNIST files, whose md5s KMNIST does not publish: their structure, which is all we
  can know without the official bytes: the IDX magic number (2051 images, 2049 labels),
  28x28 images, 60,000 train and 10,000 test items, and labels 0..9;
- every pair: images and labels of one split have the same count.
A mismatch is a DataError that names the file and says which check failed.
"""

from __future__ import annotations

import hashlib
import os
import socket
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save

from digitlab.data.dataset import Dataset, Split, cache_dir, complete_split, read_cached
from digitlab.data.idx import md5sum, read_idx
from digitlab.errors import DataError, DataNotFound
from digitlab.i18n import N_, _
from digitlab.io import atomic_write_bytes

FILES = (  # base names, in torchvision's order: train images, train labels, test images, labels
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
DOWNLOAD_TIMEOUT = 10.0  # seconds per network operation; offline machines fail fast
SPLIT_SIZES = {"train": 60_000, "test": 10_000}  # items per split in every official set
IMAGE_SHAPE = (28, 28)


@dataclass(frozen=True)
class Family:
    name: str  # registry name
    title: str  # for messages
    folder: str  # torchvision's folder name under root
    mirrors: tuple[str, ...]
    gz_md5: dict[str, str]  # official md5 of each .gz, from torchvision
    raw_md5: dict[str, str]  # md5 of each unpacked file, where published; else structure
    classes: tuple[str, ...]


DIGITS = tuple(str(i) for i in range(10))


def _table(*md5s: str) -> dict[str, str]:
    return dict(zip(FILES, md5s, strict=True))


# Official checksums and mirrors, as torchvision lists them (tests check that they agree).
# Kept here so that a normal run need not import torchvision (about 2 s on a small CPU).
MNIST = Family(
    "mnist", "MNIST", "MNIST",
    ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    _table("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
           "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"),
    _table("6bbc9ace898e44ae57da46a324031adb", "a25bea736e30d166cdddb491f175f624",
           "2646ac647ad5339dbf082846283269ea", "27ae3e4e09519cfbb04c329615203637"),
    DIGITS,
)
FASHION = Family(
    "fashion-mnist", "Fashion-MNIST", "FashionMNIST",
    ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    _table("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
           "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"),
    _table("f4a8712d7a061bf5bd6d2ca38dc4d50a", "9018921c3c673c538a1fc5bad174d6f9",
           "8181f5470baa50b63fa0f6fddb340f0a", "15d484375f8d13e6eb1aabb0c3f46965"),
    ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
     "Bag", "Ankle boot"),
)
KMNIST = Family(
    "kmnist", "KMNIST", "KMNIST",
    ("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
    _table("bdb82020997e1d708af4cf47b453dcf7", "e144d726b3acfaa3e44228e80efcd344",
           "5c965bf0a639b31b8f53240b1b52f4d7", "7320c461ea6c1c855c0b718fb2a4b134"),
    {},  # no published checksums of the unpacked files: check_structure checks those
    ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
)
FAMILIES = {f.name: f for f in (MNIST, FASHION, KMNIST)}

# md5 -> ("Fashion-MNIST", "train-images-idx3-ubyte.gz"), to say what a wrong file actually is
KNOWN_FILE = N_("the {dataset} file {filename}")
KNOWN_FILES = {
    md5: (f.title, f"{base}{ext}")
    for f in FAMILIES.values()
    for table, ext in ((f.gz_md5, ".gz"), (f.raw_md5, ""))
    for base, md5 in table.items()
}


def known_file(md5: str) -> str | None:
    """'the Fashion-MNIST file train-images-idx3-ubyte.gz' (translated), or None."""
    if md5 not in KNOWN_FILES:
        return None
    title, name = KNOWN_FILES[md5]
    return _(KNOWN_FILE).format(dataset=title, filename=name)


def search_roots(data_dir: str) -> list[tuple[Path | None, str]]:
    """(root, where it came from) in search order; None for a source that is not set."""
    env = os.environ.get("DIGITLAB_DATA", "")
    return [
        (Path(data_dir).expanduser() if data_dir else None, "data.dir / --data-dir"),
        (Path(env).expanduser() if env else None, "$DIGITLAB_DATA"),
        (cache_dir() / "data", _("user cache")),
    ]


def _find_file(folder: Path, base: str) -> Path | None:
    dotted = base.replace("-idx", ".idx")  # some unpackers keep the original "train-images.idx3"
    for name in (base + ".gz", base, dotted):
        if (folder / name).is_file():
            return folder / name
    return None


def _scan(root: Path, family: Family) -> tuple[dict[str, Path] | None, str]:
    """The four files in one of root's accepted layouts, or None and what was seen."""
    seen = []
    for folder in (root, root / family.folder / "raw", root / family.name):
        found = {base: p for base in FILES if (p := _find_file(folder, base)) is not None}
        if len(found) == len(FILES):
            return found, _("found in {folder}").format(folder=folder)
        if found:
            seen.append(_("{folder} has only {files}").format(
                folder=folder, files=", ".join(p.name for p in found.values())))
    return None, "; ".join(seen) or _("no IDX files there")


def official_md5(family: Family, base: str, path: Path) -> str | None:
    """The md5 the official file has, or None where none is published (unpacked KMNIST)."""
    return family.gz_md5.get(base) if path.suffix == ".gz" else family.raw_md5.get(base)


def verify(files: dict[str, Path], family: Family) -> list[str]:
    """Check every file against the official md5; return the md5s (the cache key)."""
    digests = []
    for base, path in files.items():
        expected = official_md5(family, base, path)
        actual = md5sum(path)
        if expected is not None and actual != expected:
            what = known_file(actual) or _("a corrupt or incomplete copy")
            raise DataError(
                _("{path} does not match the official {dataset} file "
                  "(md5 {actual}, expected {expected}); it is {what}. "
                  "Replace it with the official {filename}, or point --data-dir / "
                  "DIGITLAB_DATA at a folder that holds the {dataset} files.").format(
                    path=path, dataset=family.title, actual=actual, expected=expected,
                    what=what, filename=f"{base}.gz")
            )
        digests.append(actual)
    return digests


def _decode(files: dict[str, Path], family: Family, digests: list[str]) -> tuple[Split, Split]:
    """Decoded splits, from the cache when this exact set of files was decoded before."""
    key = hashlib.sha1("".join(digests).encode()).hexdigest()[:16]
    folder = cache_dir() / "tensors" / f"{family.name}-{key}"
    splits = []
    for split, (images_base, labels_base) in (("train", FILES[:2]), ("test", FILES[2:])):
        path = folder / f"{split}.safetensors"
        tensors = read_cached(path)
        decoded = tensors is None
        if decoded:
            images = torch.from_numpy(read_idx(files[images_base]).copy())
            labels = torch.from_numpy(read_idx(files[labels_base]).astype("int64"))
            if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
                raise DataError(
                    _("{images_file} and {labels_file} do not form a split "
                      "(images {images_shape}, labels {labels_shape})").format(
                        images_file=files[images_base], labels_file=files[labels_base],
                        images_shape=tuple(images.shape), labels_shape=tuple(labels.shape))
                ) from None
            tensors = {"images": images, "labels": labels}
        # cached tensors too: a cache written before these checks existed is not trusted
        check_structure(tensors, split, files, (images_base, labels_base), family)
        if decoded:
            atomic_write_bytes(path, save(tensors))
        splits.append(Split(tensors["images"], tensors["labels"]))
    return splits[0], splits[1]


def check_structure(tensors: dict[str, torch.Tensor], split: str, files: dict[str, Path],
                    bases: tuple[str, str], family: Family) -> None:
    """For files no official md5 vouches for: 28x28 images, the official item count, and
    labels that name a class. (The magic numbers are checked by the IDX parser.)"""
    images, labels = tensors["images"], tensors["labels"]
    size, last = SPLIT_SIZES[split], len(family.classes) - 1
    checks = [
        (bases[0], images.ndim == 3 and tuple(images.shape[1:]) == IMAGE_SHAPE,
         _("its images are {shape}, not 28x28").format(shape=list(images.shape[1:]))),
        (bases[0], len(images) == size, _("it holds {count:,} images, not {size:,}")
         .format(count=len(images), size=size)),
        (bases[1], len(labels) == size, _("it holds {count:,} labels, not {size:,}")
         .format(count=len(labels), size=size)),
        (bases[1], len(labels) == 0 or 0 <= int(labels.min()) <= int(labels.max()) <= last,
         _("its labels are not all in 0..{last}").format(last=last)),
    ]
    for base, ok, problem in checks:
        if not ok and official_md5(family, base, files[base]) is None:
            raise DataError(_(
                "{path} is not the official {dataset} file: {problem}. {dataset} publishes no "
                "md5 of its unpacked files, so they are checked by structure (IDX magic number, "
                "28x28 images, {train_size:,} train and {test_size:,} test items, labels "
                "0..{last}). Replace it with the official {filename}.gz, which is checked by "
                "md5.").format(path=files[base], dataset=family.title, problem=problem,
                               train_size=SPLIT_SIZES["train"], test_size=SPLIT_SIZES["test"],
                               last=last, filename=base))


def cached_splits(family: Family) -> tuple[Split, Split, Path] | None:
    """(train, test, folder) of the newest complete decoded set in the cache, for when the
    files are gone (moved, or a temporary folder deleted): only files that passed `verify`
    were ever decoded there, so what is cached is the official data."""
    root = cache_dir() / "tensors"
    folders = root.glob(f"{family.name}-{'?' * 16}") if root.is_dir() else []
    for folder in sorted(folders, key=lambda f: f.stat().st_mtime, reverse=True):
        train, test = (read_cached(folder / f"{split}.safetensors") for split in SPLIT_SIZES)
        if all(complete_split(tensors, SPLIT_SIZES[split], len(family.classes))
               for tensors, split in ((train, "train"), (test, "test"))):
            return (Split(train["images"], train["labels"]),
                    Split(test["images"], test["labels"]), folder)
    return None


@contextmanager
def _socket_timeout(seconds: float):
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def download(family: Family) -> Path:
    """Fetch the four .gz files into the cache with torchvision's mirrors and md5 checks."""
    from torchvision.datasets.utils import download_url

    target = cache_dir() / "data" / family.name
    with _socket_timeout(DOWNLOAD_TIMEOUT):
        for base in FILES:
            errors = []
            for mirror in family.mirrors:
                try:
                    download_url(mirror + base + ".gz", target, base + ".gz", family.gz_md5[base])
                    break
                except Exception as e:  # URLError, timeouts, md5 mismatch (RuntimeError)
                    errors.append(f"{mirror}: {e}")
            else:
                raise OSError("; ".join(errors))
    return target


def not_found_text(title: str, looked: list[str], reason: str, remedy: str) -> str:
    """What a DataNotFound says, for any dataset: what failed, where it looked, what to do."""
    return "\n".join([
        _("{dataset} was not found and could not be downloaded ({reason}).").format(
            dataset=title, reason=reason),
        _("Looked in:"),
        *(f"  - {line}" for line in looked),
        remedy,
    ])


def not_found_message(family: Family, looked: list[str], reason: str) -> str:
    names = ", ".join(base + ".gz" for base in FILES)
    return not_found_text(family.title, looked, reason, _(
        "To use {dataset}, put its four official files ({filenames}) in a folder\n"
        "and point DIGITLAB_DATA (or --data-dir) at it, or run once with network access.")
        .format(dataset=family.title, filenames=names))


def load(family: Family, data_dir: str, allow_download: bool) -> Dataset:
    looked = []
    for root, origin in search_roots(data_dir):
        if root is None:
            looked.append(_("{origin}: not set").format(origin=origin))
            continue
        files, seen = _scan(root, family) if root.is_dir() else (None, _("does not exist"))
        if files is not None:
            train, test = _decode(files, family, verify(files, family))
            return Dataset(family.name, family.title, train, test, family.classes,
                           str(next(iter(files.values())).parent))
        looked.append(f"{root} ({origin}): {seen}")
    cached = cached_splits(family)  # the files are gone, but were decoded before
    if cached is not None:
        train, test, folder = cached
        return Dataset(family.name, family.title, train, test, family.classes, str(folder))
    looked.append(_("{folder} (decoded before): no complete {dataset} set").format(
        folder=cache_dir() / "tensors", dataset=family.title))
    if not allow_download:
        raise DataNotFound(not_found_message(family, looked, _("data.download is off")),
                           family.name)
    try:
        folder = download(family)
    except OSError as e:
        reason = _("download failed: {error}").format(error=str(e).splitlines()[0][:200])
        raise DataNotFound(not_found_message(family, looked, reason), family.name) from None
    files, _seen = _scan(folder, family)
    train, test = _decode(files, family, verify(files, family))
    return Dataset(family.name, family.title, train, test, family.classes, str(folder))
