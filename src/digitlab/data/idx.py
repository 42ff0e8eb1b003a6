"""IDX files (the MNIST family's format): parse, checksum."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np

from digitlab.errors import DataError
from digitlab.i18n import _

IMAGES_MAGIC = 2051  # uint8 images, 3 dims: count, rows, cols
LABELS_MAGIC = 2049  # uint8 labels, 1 dim: count


def file_digest(path: Path, algorithm: str = "md5", chunk: int = 1 << 20) -> str:
    """The hex digest of a file (hashlib's `algorithm`), read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    return file_digest(path, "md5", chunk)


def read_bytes(path: Path) -> bytes:
    """The file's content, gunzipped when it is a .gz file."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
        raise DataError(
            _("{path} cannot be read ({error}); delete it and fetch the official file again")
            .format(path=path, error=e)
        ) from None


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """An IDX image (N, rows, cols) or label (N,) array of uint8, checked for size and magic."""
    if len(data) < 8:
        raise DataError(_("{source} is too short to be an IDX file ({size} bytes)").format(
            source=source, size=len(data)))
    magic = int.from_bytes(data[0:4], "big")
    if magic not in (IMAGES_MAGIC, LABELS_MAGIC):
        raise DataError(
            _("{source} is not an IDX file (magic number {magic}, expected "
              "{images_magic} for images or {labels_magic} for labels)").format(
                source=source, magic=magic, images_magic=IMAGES_MAGIC, labels_magic=LABELS_MAGIC)
        )
    ndim = 3 if magic == IMAGES_MAGIC else 1
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(_("{source} has a truncated IDX header").format(source=source))
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise DataError(
            _("{source} holds {size} bytes but its header {shape} needs {expected}; "
              "the file is truncated or corrupt, fetch it again").format(
                source=source, size=len(data), shape=shape, expected=expected)
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def read_idx(path: Path) -> np.ndarray:
    return parse_idx(read_bytes(path), str(path))
