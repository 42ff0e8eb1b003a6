"""Everything `train` does before its first step: data, checks, the config to resume, teacher.

Each function raises a clear error at the boundary, so `train` itself can trust its inputs.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from digitlab.config import Config, check_teacher, load_run_config
from digitlab.data import Dataset, Split, load_dataset
from digitlab.data.balance import make_imbalanced, val_split
from digitlab.data.deskew import deskew
from digitlab.data.loader import epoch_batches
from digitlab.data.sources import known_epoch_batches
from digitlab.errors import ConfigError, DataNotFound, UsageError
from digitlab.i18n import _
from digitlab.models import build_model
from digitlab.training.checkpoint import load_checkpoint, load_model

USER_DATA = "user"  # the dataset name of a run trained on data given to digitlab.train(data=...)

FALLBACK_DATASET = "digits"  # bundled with scikit-learn, so a fresh offline machine can train


def load_data(cfg: Config, fallback: bool, console: Console,
              given: Dataset | None = None) -> tuple[Dataset, Config, str]:
    """The dataset, the config naming the dataset actually used, and any notice shown.
    given: a dataset built in memory (digitlab.train(data=...), see given_dataset), used as is."""
    if given is not None:
        return given, cfg, ""
    try:
        return load_dataset(cfg.data), cfg, ""
    except DataNotFound as e:
        if not (fallback and cfg.data.name == "mnist"):
            raise
        notice = "{error}\n{fallback}".format(error=e, fallback=_(
            "Falling back to the bundled '{dataset}' dataset (1,797 small scanned digits) so "
            "this run can go on offline.").format(dataset=FALLBACK_DATASET))
    # A rule above and below rather than a Panel: a panel crops lines wider than the terminal,
    # and every word of this notice (paths, file names) matters.
    console.rule(_("MNIST not available"), style="yellow")
    console.print(notice, style="yellow", markup=False, highlight=False)
    console.rule(style="yellow")
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, name=FALLBACK_DATASET))
    return load_dataset(cfg.data), cfg, notice


def given_dataset(train: Split, test: Split, classes: tuple[str, ...], cfg: Config) -> Dataset:
    """The user's own tensors as the Dataset training and evaluation take, deskewed as
    load_dataset deskews a named one (data.deskew). Its name "user" is recorded in the summary
    and checkpoints; no source of that name exists, so only the caller can feed it again."""
    if cfg.data.deskew:
        train, test = (Split(deskew(s.images), s.labels) for s in (train, test))
    return Dataset(USER_DATA, _("your tensors"), train, test, classes, "digitlab.train(data=...)")


def user_splits(data: object) -> tuple[Split, Split, tuple[str, ...]]:
    """(train, test, classes) from data=: four arrays or two torch Datasets; UsageError else."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(
            isinstance(d, torch.utils.data.Dataset) for d in data):
        train, test = (_split(*_read_dataset(d, which), which)
                       for d, which in zip(data, ("train", "test"), strict=True))
    elif isinstance(data, (tuple, list)) and len(data) == 4:
        train, test = _split(data[0], data[1], "train"), _split(data[2], data[3], "test")
    else:
        raise UsageError(_("data= takes (train_images, train_labels, test_images, test_labels) "
                           "or (train_dataset, test_dataset); got {kind}").format(
            kind=f"{type(data).__name__} of {len(data)}" if isinstance(data, (tuple, list))
            else type(data).__name__))
    count = int(max(train.labels.max(), test.labels.max())) + 1
    if count < 2:
        raise UsageError(_("data=: the labels hold a single class; give at least two"))
    return train, test, tuple(str(i) for i in range(count))


def _read_dataset(dataset, which: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A torch Dataset of (image, label) as (images, labels); images may be PIL images."""
    images, labels = [], []
    for i in range(len(dataset)):
        item = dataset[i]
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise UsageError(_("data=: the {which} dataset must yield (image, label) pairs; "
                               "item {i} is a {kind}").format(which=which, i=i,
                                                              kind=type(item).__name__))
        image = item[0] if isinstance(item[0], (np.ndarray, torch.Tensor)) else np.asarray(item[0])
        images.append(torch.as_tensor(image).squeeze(0) if image.ndim == 3 else
                      torch.as_tensor(image))
        labels.append(int(item[1]))
    if not images:
        raise UsageError(_("data=: the {which} dataset is empty").format(which=which))
    shapes = {tuple(image.shape) for image in images}
    if len(shapes) > 1:
        raise UsageError(_("data=: the {which} images differ in shape ({shapes}); give uint8 "
                           "[28, 28] images").format(which=which, shapes=sorted(shapes)))
    return torch.stack(images), torch.tensor(labels)


def _split(images: object, labels: object, which: str) -> Split:
    """A Split of uint8 [N, 28, 28] images and int64 labels >= 0, or a UsageError."""
    for name, value in (("images", images), ("labels", labels)):
        if not isinstance(value, (np.ndarray, torch.Tensor)):
            raise UsageError(_("data=: the {which} {name} must be a numpy array or a tensor, "
                               "got {kind}").format(which=which, name=name,
                                                    kind=type(value).__name__))
    images, labels = torch.as_tensor(images), torch.as_tensor(labels)
    if images.ndim != 3 or tuple(images.shape[1:]) != (28, 28) or len(images) == 0:
        raise UsageError(_("data=: the {which} images must have shape [N, 28, 28] with N >= 1, "
                           "got {shape}").format(which=which, shape=list(images.shape)))
    if images.dtype != torch.uint8:
        raise UsageError(_("data=: the {which} images must be uint8 pixels 0..255 (white ink "
                           "on black), got {dtype}; convert floats in 0..1 with (x * 255)"
                           ".round() and .to(torch.uint8)").format(which=which,
                                                                  dtype=images.dtype))
    if labels.shape != (len(images),):
        raise UsageError(_("data=: the {which} labels must have shape [{n}], one per image, got "
                           "{shape}").format(which=which, n=len(images), shape=list(labels.shape)))
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise UsageError(_("data=: the {which} labels must be integer class indices, got "
                           "{dtype}").format(which=which, dtype=labels.dtype))
    if int(labels.min()) < 0:
        raise UsageError(_("data=: the {which} labels must be class indices 0, 1, ..., got "
                           "{label}").format(which=which, label=int(labels.min())))
    return Split(images.contiguous(), labels.long())


def initial_model(cfg: Config, num_classes: int, init: torch.nn.Module | None) -> torch.nn.Module:
    """The model cfg.model names; with `init` (digitlab.train(model=...)), one of init's class
    with init's weights, so the run is rebuilt from its config and checkpoint like any other."""
    model = build_model(cfg.model, num_classes)
    if init is None:
        return model
    if type(model) is not type(init):
        raise UsageError(_("model=: {given} is not a registered model class and model.name "
                           "{name!r} builds a {built}; register your class with "
                           "@MODELS.register(\"name\") so the run can be loaded again").format(
            given=type(init).__name__, name=cfg.model.name, built=type(model).__name__))
    try:
        model.load_state_dict(init.state_dict())
    except RuntimeError as e:
        raise UsageError(_("model=: its weights do not fit the {name!r} that cfg.model builds "
                           "for {classes} classes ({error}); build it with the same options and "
                           "class count").format(name=cfg.model.name, classes=num_classes,
                                                 error=str(e).strip().splitlines()[-1].strip())
                         ) from None
    return model


def batches_per_epoch(cfg: Config) -> int:
    """Batches in the first epoch of the configured training split, as `train` counts them
    (the training splits and balance mode included); from the known split size where that
    tells, else by loading the dataset."""
    known = known_epoch_batches(cfg.data) if cfg.train.task != "read" else None
    if known is not None:
        return known
    dataset = load_dataset(cfg.data)
    train, _val = training_splits(dataset, cfg)
    if cfg.train.task == "read":
        return line_batches(len(train), cfg)
    return epoch_batches(train.labels, cfg.data.batch_size, cfg.data.balance,
                         len(dataset.classes))


def line_batches(digits: int, cfg: Config) -> int:
    """Batches in an epoch of a read run: lines holding about as many digits as the split."""
    mean_digits = (cfg.data.line_min_digits + cfg.data.line_max_digits) / 2
    return max(1, math.ceil(digits / mean_digits / cfg.data.batch_size))


def training_splits(dataset: Dataset, cfg: Config) -> tuple[Split, Split | None]:
    """(train, val): the optional long tail first, then the validation hold-out from it."""
    train = make_imbalanced(dataset.train, len(dataset.classes), cfg.data.imbalance_ratio,
                            cfg.data.imbalance_profile, cfg.train.seed)
    return val_split(train, cfg.data.val_size, cfg.train.seed)


def check_runtime(cfg: Config, device: torch.device, world_size: int = 1) -> None:
    """Checks that need the device, the process count, an import or the file system; every
    check on the config alone is in Config.__post_init__."""
    if world_size > 1 and cfg.data.batch_size % world_size:
        raise ConfigError(_("under DDP data.batch_size is the global batch and must divide "
                            "evenly over {processes} processes; got {batch_size}").format(
            processes=world_size, batch_size=cfg.data.batch_size))
    if world_size > 1 and cfg.data.loader != "device":
        raise ConfigError(_("under DDP use data.loader = 'device' (each rank slices the same "
                            "seeded order)"))
    if cfg.train.amp == "fp16" and device.type != "cuda":
        raise ConfigError(_("train.amp = 'fp16' needs CUDA (its GradScaler is CUDA-only); on "
                            "{device} use train.amp = 'bf16' or 'off'").format(device=device.type))
    if cfg.train.tensorboard:
        try:
            import torch.utils.tensorboard  # noqa: F401
        except ImportError:
            raise ConfigError(_("train.tensorboard = true needs the tensorboard package: "
                                "pip install tensorboard")) from None
    if cfg.loss.teacher:
        check_teacher(cfg.loss.teacher)


def resume_config(run_dir: str | Path, epochs: int | None) -> Config:
    """The config a run recorded, optionally with more (or fewer) epochs."""
    path = Path(run_dir) / "config.toml"
    if not path.is_file():
        raise UsageError(_("--resume {run_dir}: no config.toml there; it is not a run "
                           "directory").format(run_dir=run_dir))
    last = Path(run_dir) / "checkpoints" / "last.safetensors"
    if last.is_file() and load_checkpoint(last)[1].get("dataset") == USER_DATA:
        raise UsageError(_("--resume {run_dir}: it was trained on data given to digitlab.train("
                           "data=...), which is not on disk; train it again from Python")
                         .format(run_dir=run_dir))
    cfg = load_run_config(path)
    if epochs is not None:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=epochs))
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, out=str(run_dir)))


def load_teacher(run_dir: str, classes: tuple[str, ...], device: torch.device) -> torch.nn.Module:
    """The model a trained run reports (checkpoint.reported_checkpoint: its best epoch under
    early stopping, else its last), frozen, for distillation (loss.teacher). Its classes must
    be the student's: its outputs become the student's targets, class by class."""
    teacher, _cfg, meta, path = load_model(run_dir)
    if list(meta["classes"]) != list(classes):
        raise ConfigError(_("loss.teacher {run_dir} was trained on other classes ({teacher}) "
                            "than this run's dataset ({student}); distil from a run of the "
                            "same dataset").format(run_dir=run_dir, teacher=list(meta["classes"]),
                                                   student=list(classes)))
    return teacher.to(device).eval().requires_grad_(False)
