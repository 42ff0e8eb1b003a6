"""The [data] section: where the images come from, how they are batched, balanced and
augmented. Split from sections.py, which re-exports it."""

from __future__ import annotations

from dataclasses import dataclass

from digitlab.config.checks import (
    MAX_WORKERS,
    MIN_STD,
    check,
    check_choice,
    check_name,
    check_values,
)
from digitlab.data import SOURCES
from digitlab.i18n import N_
from digitlab.models.shifted import MAX_TEST_SHIFT

MAX_LINE_DIGITS = 20  # train.task = "read": the longest numbers read


@dataclass(frozen=True)
class DataConfig:
    name: str = "mnist"  # dataset source; see `digitlab list`
    dir: str = ""  # data files ("" = $DIGITLAB_DATA, then cache); folder: DIR/LABEL/*.png; csv: CSV
    test_dir: str = ""  # folder, csv: the test split, same layout; "" = a hold-out of data.dir
    test_fraction: float = 0.2  # folder, csv: share of each class held out (seed 0) as test
    download: bool = True  # fetch from the official mirrors (md5-checked) when nothing is found
    mean: float = 0.1307  # Normalize mean, in pixel units / 255 (MNIST train mean)
    std: float = 0.3081  # Normalize std, in pixel units / 255 (MNIST train std)
    batch_size: int = 64  # training images per step
    test_batch_size: int = 1000  # images per evaluation batch; affects speed only
    loader: str = "device"  # "device": one tensor on the device; "torch": Dataset + DataLoader
    num_workers: int = 0  # DataLoader worker processes (loader = "torch" only)
    val_size: float = 0.0  # held out from train for validation: a fraction (<1) or a count
    imbalance_ratio: float = 1.0  # >1 makes a long-tailed train set: largest/smallest class
    imbalance_profile: str = "exponential"  # class sizes fall "exponential"ly or in a "step"
    balance: str = "none"  # "none", "weights" (loss), "sampler", "sqrt" (draws), "lecun" (batches)
    balance_finetune_epochs: int = 0  # last N epochs at the true class frequencies
    deskew: bool = False  # remove each digit's slant (image moments), in training and inference
    test_shifts: int = 0  # evaluation: each digit also read N px off 4 ways (lines: 2), 0..2
    # augmentation of training batches, on the device (data.loader = "device"); all 0 = off
    augment_shift: int = 0  # random translation by whole pixels, up to N each way (0..8)
    augment_stretch: float = 0.0  # share of digits stretched to fill a square box, as scans (0..1)
    augment_rotate: float = 0.0  # random rotation, up to N degrees either way (0..45)
    augment_scale: float = 0.0  # random size change by a factor in 1 +- N (0..0.5)
    augment_aspect: float = 0.0  # random horizontal stretch by a factor in 1 +- N (0..0.5)
    augment_shear: float = 0.0  # random slant (shear), up to N degrees either way (0..45)
    augment_translate: float = 0.0  # random sub-pixel translation, up to N pixels (0..8)
    augment_elastic: float = 0.0  # smooth random elastic distortion of up to ~N pixels (0..4)
    augment_thickness: float = 0.0  # strokes thicker or thinner: max-pool blend up to N (0..1)
    augment_lowres: float = 0.0  # share of images resampled to an 8-16 px digit and back (0..1)
    # train.task = "read": training lines composed on the fly from the digits (data/lines.py)
    line_min_digits: int = 1  # read: digits per training line, at least (1..20)
    line_max_digits: int = 10  # read: digits per training line, at most (1..20)
    line_touching: float = 0.0  # read: share of neighbour pairs whose ink touches (0..1)

    def __post_init__(self):
        check_values(self, "data")
        check_name(self, "data.name", SOURCES)
        # pixels are scaled to 0..1 first; a mean outside that range or a tiny std sends the
        # inputs towards overflow, and the run would stop on a NaN loss with advice about lr
        check(0 <= self.mean <= 1, "data.mean", N_("in [0, 1] (pixels are scaled to 0..1)"),
               self.mean)
        check(self.std > 0, "data.std", N_("> 0"), self.std)
        check(self.std >= MIN_STD, "data.std",
               N_(">= 0.001 (a smaller std blows 0..1 pixels up beyond 1000)"), self.std)
        check(self.batch_size >= 1, "data.batch_size", N_("an integer >= 1"), self.batch_size)
        check(self.test_batch_size >= 1, "data.test_batch_size", N_("an integer >= 1"),
               self.test_batch_size)
        check_choice(self, "data.loader", ("device", "torch"))
        check(0 <= self.num_workers <= MAX_WORKERS, "data.num_workers",
               N_("an integer from 0 to 64"), self.num_workers)
        check(self.val_size >= 0 and (self.val_size < 1 or self.val_size == int(self.val_size)),
               "data.val_size", N_("a fraction in [0, 1) or a whole count"), self.val_size)
        check(self.imbalance_ratio >= 1, "data.imbalance_ratio", N_(">= 1 (1 = balanced)"),
               self.imbalance_ratio)
        check_choice(self, "data.imbalance_profile", ("exponential", "step"))
        check_choice(self, "data.balance", ("none", "weights", "sampler", "sqrt", "lecun"))
        check_augmentation(self)
        check(0 <= self.test_shifts <= MAX_TEST_SHIFT, "data.test_shifts",
              N_("an integer in 0..2 (0 = off)"), self.test_shifts)
        check(1 <= self.line_max_digits <= MAX_LINE_DIGITS, "data.line_max_digits",
              N_("an integer from 1 to 20"), self.line_max_digits)
        check(1 <= self.line_min_digits <= self.line_max_digits, "data.line_min_digits",
              N_("an integer from 1 to data.line_max_digits"), self.line_min_digits)
        check(0 <= self.line_touching <= 1, "data.line_touching", N_("a share in [0, 1]"),
              self.line_touching)
        own_files = self.name in ("folder", "csv")
        check(self.dir != "" or not own_files, "data.dir",
               N_("set (--data-dir) for the folder and csv datasets: the folder of class "
                  "sub-folders, or the CSV file"), self.dir)
        check(self.test_dir == "" or own_files, "data.test_dir",
               N_("empty unless data.name is 'folder' or 'csv' (other datasets have their own "
                  "test split)"), self.test_dir)
        check(0 < self.test_fraction < 1, "data.test_fraction", N_("a fraction in (0, 1)"),
               self.test_fraction)
        check(self.balance_finetune_epochs >= 0, "data.balance_finetune_epochs", N_(">= 0"),
               self.balance_finetune_epochs)
        check(self.balance_finetune_epochs == 0 or self.balance != "none",
               "data.balance_finetune_epochs",
               N_("0 when data.balance = 'none' (it fine-tunes after balanced epochs)"),
               self.balance_finetune_epochs)


AUGMENT_RANGES = (  # (key, low, high, rule) of the float data.augment_* knobs
    ("augment_stretch", 0, 1, N_("a probability in [0, 1]")),
    ("augment_rotate", 0, 45, N_("degrees in [0, 45]")),
    ("augment_scale", 0, 0.5, N_("a fraction in [0, 0.5]")),
    ("augment_aspect", 0, 0.5, N_("a fraction in [0, 0.5]")),
    ("augment_shear", 0, 45, N_("degrees in [0, 45]")),
    ("augment_translate", 0, 8, N_("pixels in [0, 8]")),
    ("augment_elastic", 0, 4, N_("pixels in [0, 4]")),
    ("augment_thickness", 0, 1, N_("a blend strength in [0, 1]")),
    ("augment_lowres", 0, 1, N_("a probability in [0, 1]")),
)


def check_augmentation(data: DataConfig) -> None:
    """The ranges of the data.augment_* knobs, and the loader they need."""
    check(0 <= data.augment_shift <= 8, "data.augment_shift", N_("an integer in 0..8"),
          data.augment_shift)
    for key, low, high, rule in AUGMENT_RANGES:
        value = getattr(data, key)
        check(low <= value <= high, f"data.{key}", rule, value)  # NaN fails too
    on = [key for key in ("augment_shift", *(k for k, *_ in AUGMENT_RANGES)) if getattr(data, key)]
    check(not on or data.loader == "device", f"data.{on[0] if on else 'augment_shift'}",
          N_("used with data.loader = 'device' (it runs on batches on the device)"),
          getattr(data, on[0]) if on else 0)

