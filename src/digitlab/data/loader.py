"""Loaders. The default keeps a whole split on the device as one tensor and batches it by
indexing with a seeded permutation: no per-sample Python, no PIL, no worker processes.
`data.loader = "torch"` keeps the tutorial's Dataset + DataLoader path for comparison.

Both paths draw the same order for a given (seed, epoch) (`EpochOrder`), so they yield the
same batches.
"""

from __future__ import annotations

import math

import torch
from PIL import Image
from torch.utils.data import DataLoader, Sampler

from digitlab.data.augment import Augment, augment_generator
from digitlab.data.balance import (
    draws_balanced,
    epoch_permutation,
    lecun_batch_size,
    lecun_epoch_size,
    lecun_order,
    weighted_order,
)
from digitlab.data.dataset import Split


def epoch_order(labels: torch.Tensor, seed: int, epoch: int, balance: str = "none",
                num_classes: int = 10, batch_size: int = 64) -> torch.Tensor:
    """The sample order of one epoch: a permutation, or a class-balanced draw."""
    if balance in ("sampler", "sqrt"):
        power = 1.0 if balance == "sampler" else 0.5
        return weighted_order(labels, num_classes, seed, epoch, power)
    if balance == "lecun":
        return lecun_order(labels, num_classes, batch_size, seed, epoch)
    return epoch_permutation(len(labels), seed, epoch)


def loader_batch_size(batch_size: int, balance: str, num_classes: int) -> int:
    """The batch a loader yields: data.batch_size, rounded down to k * C for lecun."""
    return lecun_batch_size(batch_size, num_classes) if balance == "lecun" else batch_size


def epoch_size(labels: torch.Tensor, balance: str, num_classes: int, batch_size: int) -> int:
    """Samples in one shuffled epoch: the split, or lecun's longer balanced epoch."""
    if balance == "lecun":
        return lecun_epoch_size(labels, num_classes, batch_size)
    return len(labels)


def epoch_batches(labels: torch.Tensor, batch_size: int, balance: str, num_classes: int) -> int:
    """Batches in one shuffled training epoch in `balance` mode, without drawing its order:
    what len(loader) gives for that epoch, for laying out schedules before training."""
    return math.ceil(epoch_size(labels, balance, num_classes, batch_size)
                     / loader_batch_size(batch_size, balance, num_classes))


def normalize(images: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """uint8 [N, 28, 28] -> float32 [N, 1, 28, 28]; the same arithmetic as ToTensor + Normalize."""
    out = images.float()  # the only allocation; the rest is in place (a 60k split is 188 MB)
    return out.div_(255.0).sub_(mean).div_(std).unsqueeze(1)


class EpochOrder:
    """What both loaders share: the epoch, its balance mode, and the sample order they imply.

    `set_epoch(epoch, balance)` switches both between epochs (balanced epochs, then
    fine-tuning at the true frequencies); "weights" balances in the loss and draws like "none".
    """

    def __init__(self, labels: torch.Tensor, batch_size: int, shuffle: bool, seed: int,
                 balance: str, num_classes: int, rank: int = 0, world_size: int = 1):
        self.rank, self.world_size = rank, world_size  # DDP: this process's share of a batch
        self.cpu_labels = labels.cpu()
        self.requested_batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.num_classes, self.epoch = num_classes, 0
        self.balance = balance if draws_balanced(balance) else "none"

    def set_epoch(self, epoch: int, balance: str | None = None) -> None:
        self.epoch = epoch
        if balance is not None:
            self.balance = balance if draws_balanced(balance) else "none"

    @property
    def batch_size(self) -> int:
        return loader_batch_size(self.requested_batch_size, self.balance, self.num_classes)

    def order(self) -> torch.Tensor | None:
        """This epoch's sample indices (None: the stored order, for evaluation)."""
        if not self.shuffle:
            return None
        return epoch_order(self.cpu_labels, self.seed, self.epoch, self.balance,
                           self.num_classes, self.requested_batch_size)

    def __len__(self) -> int:
        return math.ceil(self._epoch_size() / self.batch_size)

    def _epoch_size(self) -> int:
        if not self.shuffle:
            return len(self.cpu_labels)
        return epoch_size(self.cpu_labels, self.balance, self.num_classes,
                          self.requested_batch_size)

    def rank_weights(self) -> list[float]:
        """DDP: per batch of this epoch, world size x this rank's share of the global batch.

        DDP averages the ranks' mean gradients with equal weight. Scaling each rank's loss by
        this makes the step the global batch's mean gradient, as in one process, also when a
        batch splits unevenly (the last one). 1.0 for an even split, and for a batch smaller
        than the world, which every rank takes whole."""
        n, bs, world = self._epoch_size(), self.batch_size, self.world_size
        sizes = [min(bs, n - start) for start in range(0, n, bs)]
        return [1.0 if size < world else
                (size // world + (self.rank < size % world)) * world / size for size in sizes]


class DeviceLoader(EpochOrder):
    """Every sample once per epoch, last partial batch kept, seeded order (shuffle=True)."""

    def __init__(self, split: Split, batch_size: int, device: torch.device, mean: float,
                 std: float, shuffle: bool, seed: int = 0, balance: str = "none",
                 num_classes: int = 10, rank: int = 0, world_size: int = 1,
                 augment: Augment | None = None):
        super().__init__(split.labels, batch_size, shuffle, seed, balance, num_classes, rank,
                         world_size)
        self.images = normalize(split.images.to(device), mean, std)  # one copy, on the device
        self.labels = split.labels.to(device)
        self.augment = augment if augment and augment.active else None  # training only
        self.background = (0.0 - mean) / std  # a blank pixel after normalization
        self.ink = (1.0 - mean) / std  # a full-ink pixel after normalization

    def __iter__(self):
        bs, order = self.batch_size, self.order()
        if order is None:  # contiguous slices are views: no copy at all
            for start in range(0, len(self.labels), bs):
                yield self.images[start:start + bs], self.labels[start:start + bs]
            return
        order = order.to(self.images.device)
        gen = augment_generator(self.images.device, self.seed * 7 + self.rank, self.epoch)
        for start in range(0, len(order), bs):
            idx = order[start:start + bs]  # one global batch
            if self.world_size > 1 and len(idx) >= self.world_size:
                idx = idx.tensor_split(self.world_size)[self.rank]  # this rank's disjoint part
            # (a last batch smaller than the world goes whole to every rank: same mean gradient)
            # index_select, not images[idx]: the same rows, about 3x faster on a CPU
            images = self.images.index_select(0, idx)
            if self.augment:
                images = self.augment(images, gen, self.background, self.ink)
            yield images, self.labels.index_select(0, idx)


class OrderSampler(Sampler):
    """A DataLoader sampler that yields the EpochOrder's order, so both loaders agree."""

    def __init__(self, epoch_order: EpochOrder):
        self.epoch_order = epoch_order

    def __len__(self) -> int:
        return len(self.epoch_order.order())

    def __iter__(self):
        return iter(self.epoch_order.order().tolist())


class ImageDataset(torch.utils.data.Dataset):
    """Per-sample PIL image + transforms, exactly what torchvision's MNIST dataset does."""

    def __init__(self, split: Split, mean: float, std: float):
        from torchvision import transforms  # imported here: it costs ~2 s at start-up

        self.images, self.labels = split.images, split.labels
        self.transform = transforms.Compose([
            transforms.ToTensor(),
            transforms.Normalize((mean,), (std,)),
        ])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        image = Image.fromarray(self.images[index].numpy(), mode="L")
        return self.transform(image), int(self.labels[index])


class TorchLoader(EpochOrder):
    """The tutorial's Dataset + DataLoader, drawing the same order as DeviceLoader."""

    def __init__(self, split: Split, batch_size: int, device: torch.device, mean: float,
                 std: float, shuffle: bool, seed: int = 0, balance: str = "none",
                 num_classes: int = 10, num_workers: int = 0):
        super().__init__(split.labels, batch_size, shuffle, seed, balance, num_classes)
        self.dataset = ImageDataset(split, mean, std)
        self.num_workers, self.device = num_workers, device

    def __iter__(self):
        # Built per epoch: the batch size depends on the balance mode, which may change.
        loader = DataLoader(self.dataset, batch_size=self.batch_size,
                            sampler=OrderSampler(self) if self.shuffle else None,
                            num_workers=self.num_workers, pin_memory=self.device.type == "cuda")
        for images, labels in loader:
            yield (images.to(self.device, non_blocking=True),
                   labels.to(self.device, non_blocking=True))


def make_loader(split: Split, kind: str, batch_size: int, device: torch.device, mean: float,
                std: float, shuffle: bool, seed: int = 0, num_workers: int = 0,
                balance: str = "none", num_classes: int = 10, rank: int = 0,
                world_size: int = 1, augment: Augment | None = None):
    if kind == "device":
        return DeviceLoader(split, batch_size, device, mean, std, shuffle, seed, balance,
                            num_classes, rank, world_size, augment)
    return TorchLoader(split, batch_size, device, mean, std, shuffle, seed, balance,
                       num_classes, num_workers)
