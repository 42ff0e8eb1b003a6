"""The dataset sources registry: name -> builder(DataConfig) -> Dataset."""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from digitlab.data import cmaterdb, csvfile, folder, mnist
from digitlab.data.balance import val_count
from digitlab.data.dataset import Dataset, Split
from digitlab.data.deskew import deskew
from digitlab.i18n import N_
from digitlab.registry import Registry

if TYPE_CHECKING:
    from digitlab.config import DataConfig

SOURCES: Registry = Registry(N_("dataset"))


@SOURCES.register("mnist", "MNIST handwritten digits, 60k train / 10k test (the default)")
def build_mnist(cfg: DataConfig) -> Dataset:
    return mnist.load(mnist.MNIST, cfg.dir, cfg.download)


@SOURCES.register("fashion-mnist", "Zalando's clothing images in MNIST's format, 60k / 10k")
def build_fashion(cfg: DataConfig) -> Dataset:
    return mnist.load(mnist.FASHION, cfg.dir, cfg.download)


@SOURCES.register("kmnist", "Kuzushiji-MNIST: cursive Japanese characters, 60k / 10k")
def build_kmnist(cfg: DataConfig) -> Dataset:
    return mnist.load(mnist.KMNIST, cfg.dir, cfg.download)


@SOURCES.register("cmaterdb", "CMATERdb 3.1.1: handwritten Bengali digits, 5k train / 1k test; "
                  "non-commercial use only")
def build_cmaterdb(cfg: DataConfig) -> Dataset:
    return cmaterdb.load(cfg.dir, cfg.download)


BILINGUAL = "mnist+cmaterdb"


@SOURCES.register(BILINGUAL, "20 classes: MNIST's digits (0-9) and CMATERdb's Bengali digits "
                  "(labels 10-19); balance the scripts with data.balance")
def build_bilingual(cfg: DataConfig) -> Dataset:
    """Both sets, CMATERdb's labels moved to 10..19. CMATERdb is 12 times smaller: the
    bilingual preset draws its epochs with square-root balancing (data.balance = "sqrt"), so
    the Bengali digits fill about a fifth of every epoch."""
    latin, bengali = mnist.load(mnist.MNIST, cfg.dir, cfg.download), cmaterdb.load(cfg.dir,
                                                                                  cfg.download)
    offset = len(latin.classes)

    def join(a: Split, b: Split) -> Split:
        return Split(torch.cat([a.images, b.images]), torch.cat([a.labels, b.labels + offset]))

    return Dataset(BILINGUAL, "MNIST + CMATERdb", join(latin.train, bengali.train),
                   join(latin.test, bengali.test), latin.classes + bengali.classes,
                   f"{latin.origin} + {bengali.origin}")


DIGITS_SPLIT_SEED = 0  # fixed, so every run and every user sees the same test set
DIGITS_TEST_FRACTION = 0.2
DIGITS_SIZE = 1797  # images in load_digits(); train and test together


@SOURCES.register("digits", "scikit-learn's bundled 8x8 digits, resized to 28x28; works offline")
def build_digits(cfg: DataConfig) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()  # 1797 images, 8x8, ink 0..16, read from files inside sklearn
    small = torch.from_numpy(bunch.images).float().unsqueeze(1) / 16.0
    # MNIST puts each digit in a 20x20 box inside a 28x28 frame; do the same
    images = F.pad(F.interpolate(small, size=(20, 20), mode="bilinear", align_corners=False),
                   (4, 4, 4, 4))
    images = (images.squeeze(1).clamp(0, 1) * 255).round().to(torch.uint8)
    labels = torch.from_numpy(bunch.target).long()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(DIGITS_SPLIT_SEED))
    n_test = math.ceil(len(labels) * DIGITS_TEST_FRACTION)  # 360, as train_test_split makes it
    test, train = order[:n_test], order[n_test:]
    return Dataset("digits", "scikit-learn digits", Split(images[train], labels[train]),
                   Split(images[test], labels[test]), mnist.DIGITS, "sklearn.datasets.load_digits")


SYNTHETIC_SEED = 1234
SYNTHETIC_SIZES = (2000, 500)  # train, test


def _synthetic_split(prototypes: torch.Tensor, n: int, gen: torch.Generator) -> Split:
    labels = torch.randint(0, len(prototypes), (n,), generator=gen)
    images = prototypes[labels].clone()
    shifts = torch.randint(-2, 3, (n, 2), generator=gen)
    for dy in range(-2, 3):  # 25 vectorized rolls instead of n per-sample ones
        for dx in range(-2, 3):
            rows = ((shifts[:, 0] == dy) & (shifts[:, 1] == dx)).nonzero().squeeze(1)
            images[rows] = images[rows].roll((dy, dx), dims=(1, 2))
    images = images + 0.15 * torch.randn(images.shape, generator=gen)
    return Split((images.clamp(0, 1) * 255).round().to(torch.uint8), labels)


@SOURCES.register("synthetic", "small deterministic blob patterns, 10 classes; for tests")
def build_synthetic(cfg: DataConfig) -> Dataset:
    gen = torch.Generator().manual_seed(SYNTHETIC_SEED)
    coarse = torch.rand(10, 1, 6, 6, generator=gen)
    blobs = F.interpolate(coarse, size=(20, 20), mode="bilinear", align_corners=False)
    prototypes = F.pad((blobs > 0.55).float(), (4, 4, 4, 4)).squeeze(1)
    train = _synthetic_split(prototypes, SYNTHETIC_SIZES[0], gen)
    test = _synthetic_split(prototypes, SYNTHETIC_SIZES[1], gen)
    return Dataset("synthetic", "synthetic", train, test, mnist.DIGITS, "generated")


@SOURCES.register("folder", "your own images, DIR/<label>/*.png (--data-dir DIR), read as predict "
                  "reads them")
def build_folder(cfg: DataConfig) -> Dataset:
    return folder.load(cfg.dir, cfg.test_dir, cfg.test_fraction)


@SOURCES.register("csv", "Kaggle Digit Recognizer CSV, label,pixel0..pixel783 (--data-dir "
                  "train.csv)")
def build_csv(cfg: DataConfig) -> Dataset:
    return csvfile.load(cfg.dir, cfg.test_dir, cfg.test_fraction)


# Training-split sizes known without reading a file, to lay out a schedule before training
# (`digitlab plot schedule`). folder and csv are the user's own files: only reading tells.
TRAIN_SIZES = {
    **{name: mnist.SPLIT_SIZES["train"] for name in mnist.FAMILIES},
    "digits": DIGITS_SIZE - math.ceil(DIGITS_SIZE * DIGITS_TEST_FRACTION),  # 1437
    "synthetic": SYNTHETIC_SIZES[0],
    "cmaterdb": cmaterdb.SPLIT_SIZES["train"],
    BILINGUAL: mnist.SPLIT_SIZES["train"] + cmaterdb.SPLIT_SIZES["train"],
}
READS_FILES = ("folder", "csv")  # sources whose size is known only by reading data.dir


def known_epoch_batches(cfg: DataConfig) -> int | None:
    """Batches in one training epoch, from the known split size alone (the validation hold-out
    taken off); what loader.epoch_batches counts after loading. None where only the labels
    tell: the user's own files, a long tail (data.imbalance_ratio > 1) or "lecun" batches."""
    size = TRAIN_SIZES.get(cfg.name)
    if size is None or cfg.imbalance_ratio != 1 or cfg.balance == "lecun":
        return None
    # "none", "weights", "sampler" and "sqrt" all draw as many samples as the split holds
    return math.ceil((size - val_count(size, cfg.val_size)) / cfg.batch_size)


def load_dataset(cfg: DataConfig) -> Dataset:
    """The dataset `cfg.data.name` names, as a model trained with `cfg` sees it: deskewed
    (train and test) when data.deskew is on. Every place that feeds a dataset to a model
    (training, evaluation, benchmarks) loads it here."""
    dataset = SOURCES.get(cfg.name)(cfg)
    if not cfg.deskew:
        return dataset
    return dataclasses.replace(dataset, train=Split(deskew(dataset.train.images),
                                                    dataset.train.labels),
                               test=Split(deskew(dataset.test.images), dataset.test.labels))
