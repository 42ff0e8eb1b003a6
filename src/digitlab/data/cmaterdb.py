"""CMATERdb 3.1.1 Bengali handwritten numerals (০-৯): find, verify, convert, cache, download.

The data are the two .npz files that TensorFlow Datasets reads for `cmaterdb/bangla` (5,000
training and 1,000 test images, 32x32, dark ink on white, three identical channels). They are
looked for as MNIST is: data.dir (--data-dir), then $DIGITLAB_DATA, then the user cache; in each
root directly, or under cmaterdb-bangla/ or cmaterdb/. Each file must have its published
sha256; it is opened with np.load(allow_pickle=False), so nothing in it can run code.

The images are converted by the very preprocessing `digitlab predict` applies to a photo
(inference.preprocess.to_mnist): white ink on black, fitted to 20x20 and centred by mass in
28x28. Training and prediction see the same thing. The converted tensors are cached under
the user cache, keyed by the files' checksums and the preprocessing code, never written beside
the user's files.

Licence: free for non-commercial research, crediting CMATER, Jadavpur University. digitlab
never ships the files; the first download prints a one-line notice.
"""

from __future__ import annotations

import hashlib
import sys
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save

from digitlab.data.dataset import Dataset, Split, cache_dir, complete_split, read_cached
from digitlab.data.idx import file_digest
from digitlab.data.mnist import DOWNLOAD_TIMEOUT, not_found_text, search_roots
from digitlab.errors import DataError, DataNotFound
from digitlab.i18n import N_, _
from digitlab.io import atomic_write_bytes

NAME, TITLE = "cmaterdb", "CMATERdb"
CLASSES = tuple(chr(0x09E6 + i) for i in range(10))  # ০ ১ ২ ৩ ৪ ৫ ৬ ৭ ৮ ৯, label = value
FILES = {"train": "training-images.npz", "test": "testing-images.npz"}
SHA256 = {
    "train": "502957392649eecad013ac425b54fecc6d06dbc06bc647a46b0cfc6b96e2c130",
    "test": "d1c9780ba5decc135175a021bd29961cd7316db009f428d8c04b84ba36a6d67a",
}
BYTES = {"train": 489_289, "test": 98_295}
SPLIT_SIZES = {"train": 5_000, "test": 1_000}
FOLDERS = ("cmaterdb-bangla", "cmaterdb")  # accepted under each root, besides the root itself
MIRROR = ("https://raw.githubusercontent.com/prabhuomkar/CMATERdb/master/datasets/"
          "bangla-numerals/")
LICENCE = N_("CMATERdb 3.1.1 (CMATER, Jadavpur University) is free for non-commercial research "
           "only; credit CMATER in any result you publish.")
_PREPROCESSING = ("preprocess.py", "strokes.py")  # the code whose output the cache holds


def find(data_dir: str) -> tuple[dict[str, Path] | None, list[str]]:
    """The two files from the first root that holds both, and what each root held."""
    looked = []
    for root, origin in search_roots(data_dir):
        if root is None:
            looked.append(_("{origin}: not set").format(origin=origin))
            continue
        for folder in (root, *(root / name for name in FOLDERS)):
            files = {split: folder / name for split, name in FILES.items()}
            if all(path.is_file() for path in files.values()):
                return files, looked
        looked.append(_("{root} ({origin}): no {files} there or under {folders}").format(
            root=root, origin=origin, files=" + ".join(FILES.values()),
            folders=", ".join(f"{name}/" for name in FOLDERS)))
    return None, looked


def verify(files: dict[str, Path]) -> None:
    """Each file is the published one (sha256), or a DataError that names it."""
    for split, path in files.items():
        actual = file_digest(path, "sha256")
        if actual == SHA256[split]:
            continue
        size = path.stat().st_size
        what = (_("it is truncated ({size:,} of {expected:,} bytes)") if size < BYTES[split]
                else _("it is not the published file")).format(size=size, expected=BYTES[split])
        raise DataError(_("{path}: sha256 {actual} does not match CMATERdb's {expected}; {what}. "
                          "Replace it with the official {filename}, or delete it to download "
                          "it again.").format(path=path, actual=actual, expected=SHA256[split],
                                              what=what, filename=FILES[split]))


def read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(grey images [N, 32, 32] uint8, labels [N] int64) from one file; DataError if broken."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            images, labels = archive["images"], archive["labels"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(_("{path} is not a readable CMATERdb archive ({error}); replace it with "
                          "the official file").format(path=path, error=e)) from None
    if images.ndim != 4 or images.shape[1:] != (32, 32, 3) or len(labels) != len(images):
        raise DataError(_("{path} holds images {shape}, not CMATERdb's [N, 32, 32, 3]; "
                          "replace it with the official file").format(
            path=path, shape=list(images.shape)))
    return np.ascontiguousarray(images[..., 0]), labels.astype(np.int64)


def convert(grey: np.ndarray, path: Path) -> torch.Tensor:
    """uint8 [N, 28, 28], each image through predict's preprocessing."""
    from PIL import Image

    from digitlab.inference.preprocess import ImageError, to_mnist

    out = np.empty((len(grey), 28, 28), dtype=np.uint8)
    for i, image in enumerate(grey):
        try:
            out[i] = to_mnist(Image.fromarray(image), f"{path}[{i}]")
        except ImageError as e:
            raise DataError(_("{path}: image {index} cannot be read as a digit ({error})")
                            .format(path=path, index=i, error=e)) from None
    return torch.from_numpy(out)


def preprocessing_key() -> str:
    """A digest of the preprocessing code: a change to it converts the images again."""
    from digitlab import inference

    folder = Path(inference.__file__).parent
    return hashlib.sha1(b"".join((folder / name).read_bytes() for name in _PREPROCESSING)
                        ).hexdigest()[:12]


def _cache_folder() -> Path:
    key = hashlib.sha1("".join(SHA256.values()).encode()).hexdigest()[:8]
    return cache_dir() / "tensors" / f"{NAME}-{key}-{preprocessing_key()}"


def cached_splits() -> dict[str, Split] | None:
    """Both splits as converted before with today's preprocessing, or None."""
    folder = _cache_folder()
    tensors = {split: read_cached(folder / f"{split}.safetensors") for split in FILES}
    if not all(complete_split(tensors[split], SPLIT_SIZES[split], len(CLASSES))
               for split in FILES):
        return None
    return {split: Split(t["images"], t["labels"]) for split, t in tensors.items()}


def decode(files: dict[str, Path]) -> dict[str, Split]:
    """Verified files -> converted splits, written to the cache."""
    splits = {}
    for split, path in files.items():
        grey, labels = read_npz(path)
        tensors = {"images": convert(grey, path), "labels": torch.from_numpy(labels)}
        if not complete_split(tensors, SPLIT_SIZES[split], len(CLASSES)):
            raise DataError(_("{path} does not hold CMATERdb's {split} split ({count:,} images "
                              "labelled 0..9); replace it with the official file").format(
                path=path, split=split, count=SPLIT_SIZES[split]))
        atomic_write_bytes(_cache_folder() / f"{split}.safetensors", save(tensors))
        splits[split] = Split(tensors["images"], tensors["labels"])
    return splits


def download() -> dict[str, Path]:
    """Fetch both files into the user cache, checking each sha256 before it is kept."""
    target = cache_dir() / "data" / FOLDERS[0]
    print(_("digitlab: downloading CMATERdb. {licence}").format(licence=_(LICENCE)),
          file=sys.stderr)
    files = {}
    for split, name in FILES.items():
        with urllib.request.urlopen(MIRROR + name, timeout=DOWNLOAD_TIMEOUT) as response:
            data = response.read(BYTES[split] + 1)
        actual = hashlib.sha256(data).hexdigest()
        if actual != SHA256[split]:
            raise OSError(_("{url} sent a file with sha256 {actual}, not {expected}").format(
                url=MIRROR + name, actual=actual, expected=SHA256[split]))
        atomic_write_bytes(target / name, data)
        files[split] = target / name
    return files


def load(data_dir: str, allow_download: bool) -> Dataset:
    files, looked = find(data_dir)
    if files is None and (cached := cached_splits()) is not None:
        return Dataset(NAME, TITLE, cached["train"], cached["test"], CLASSES,
                       str(_cache_folder()))
    if files is None:
        if not allow_download:
            raise DataNotFound(not_found_message(looked, _("data.download is off")), NAME)
        try:
            files = download()
        except OSError as e:  # URLError and timeouts are OSErrors
            reason = _("download failed: {error}").format(error=str(e).splitlines()[0][:200])
            raise DataNotFound(not_found_message(looked, reason), NAME) from None
    verify(files)
    splits = cached_splits() or decode(files)
    return Dataset(NAME, TITLE, splits["train"], splits["test"], CLASSES,
                   str(files["train"].parent))


def not_found_message(looked: list[str], reason: str) -> str:
    return not_found_text(TITLE, looked, reason, _(
        "To use {dataset}, put {filenames} (from github.com/prabhuomkar/CMATERdb, "
        "datasets/bangla-numerals) in a folder and point DIGITLAB_DATA (or --data-dir) at "
        "it, or run once with network access.").format(
            dataset=TITLE, filenames=" + ".join(FILES.values())))
