"""The in-memory dataset every source returns: uint8 images and int64 labels, train and test."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs
import torch
from safetensors.torch import load_file


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # uint8 [N, 28, 28], 0 = background, 255 = ink (MNIST polarity)
    labels: torch.Tensor  # int64 [N], class indices

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Dataset:
    name: str  # registry name, e.g. "mnist"
    title: str  # for people, e.g. "MNIST"
    train: Split
    test: Split
    classes: tuple[str, ...]
    origin: str  # where the samples came from (a folder, the cache, a package)


def cache_dir() -> Path:
    """digitlab's own cache ($DIGITLAB_CACHE, else the platform's user cache dir)."""
    env = os.environ.get("DIGITLAB_CACHE")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("digitlab"))


def read_cached(path: Path) -> dict[str, torch.Tensor] | None:
    """The tensors of a cache entry, or None when there is none or it is damaged (a damaged
    entry is decoded again, never trusted)."""
    if not path.is_file():
        return None
    try:
        return load_file(path)
    except Exception:  # truncated, foreign or unreadable: decode again
        return None


def complete_split(tensors: dict[str, torch.Tensor] | None, size: int, num_classes: int) -> bool:
    """A cached split as decoding leaves it: exactly "images" (uint8 [size, 28, 28]) and
    "labels" (int64 [size], each naming one of num_classes classes)."""
    if tensors is None or set(tensors) != {"images", "labels"}:
        return False
    images, labels = tensors["images"], tensors["labels"]
    return (images.dtype == torch.uint8 and tuple(images.shape) == (size, 28, 28)
            and tuple(labels.shape) == (size,) and labels.dtype == torch.int64
            and 0 <= int(labels.min()) <= int(labels.max()) < num_classes)
