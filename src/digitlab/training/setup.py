"""Everything `train` does before its first step: data, checks, the config to resume, teacher.

Each function raises a clear error at the boundary, so `train` itself can trust its inputs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from rich.console import Console

from digitlab.config import Config, check_teacher, load_run_config
from digitlab.data import Dataset, Split, load_dataset
from digitlab.data.balance import make_imbalanced, val_split
from digitlab.data.loader import epoch_batches
from digitlab.data.sources import known_epoch_batches
from digitlab.errors import ConfigError, DataNotFound, UsageError
from digitlab.i18n import _
from digitlab.training.checkpoint import load_model

FALLBACK_DATASET = "digits"  # bundled with scikit-learn, so a fresh offline machine can train


def load_data(cfg: Config, fallback: bool, console: Console) -> tuple[Dataset, Config, str]:
    """The dataset, the config naming the dataset actually used, and any notice shown."""
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


def batches_per_epoch(cfg: Config) -> int:
    """Batches in the first epoch of the configured training split, as `train` counts them
    (the training splits and balance mode included); from the known split size where that
    tells, else by loading the dataset."""
    known = known_epoch_batches(cfg.data)
    if known is not None:
        return known
    dataset = load_dataset(cfg.data)
    train, _val = training_splits(dataset, cfg)
    return epoch_batches(train.labels, cfg.data.batch_size, cfg.data.balance,
                         len(dataset.classes))


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
