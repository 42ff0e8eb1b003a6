"""Everything `train` does before its first step: data, checks, run directory, resume, teacher.

Each function raises a clear error at the boundary, so `train` itself can trust its inputs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import torch
from rich.console import Console

from digitlab.config import Config, load_run_config
from digitlab.data import SOURCES, Dataset, Split
from digitlab.data.balance import make_imbalanced, val_split
from digitlab.errors import ConfigError, DataNotFound, UsageError
from digitlab.i18n import _
from digitlab.models import build_model
from digitlab.training.checkpoint import load_checkpoint, restore_model

FALLBACK_DATASET = "digits"  # bundled with scikit-learn, so a fresh offline machine can train


def load_data(cfg: Config, fallback: bool, console: Console) -> tuple[Dataset, Config, str]:
    """The dataset, the config naming the dataset actually used, and any notice shown."""
    try:
        return SOURCES.get(cfg.data.name)(cfg.data), cfg, ""
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
    return SOURCES.get(FALLBACK_DATASET)(cfg.data), cfg, notice


def training_splits(dataset: Dataset, cfg: Config) -> tuple[Split, Split | None]:
    """(train, val): the optional long tail first, then the validation hold-out from it."""
    train = make_imbalanced(dataset.train, len(dataset.classes), cfg.data.imbalance_ratio,
                            cfg.data.imbalance_profile, cfg.train.seed)
    return val_split(train, cfg.data.val_size, cfg.train.seed)


def check_runtime(cfg: Config, device: torch.device, world_size: int = 1) -> None:
    """Checks that need the device, the process count or several sections at once."""
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
    if cfg.data.balance_finetune_epochs >= cfg.train.epochs > 0 and cfg.data.balance != "none":
        raise ConfigError(_("data.balance_finetune_epochs ({finetune}) must be less than "
                            "train.epochs ({epochs}): the balanced epochs come first").format(
            finetune=cfg.data.balance_finetune_epochs, epochs=cfg.train.epochs))
    no_val = cfg.data.val_size == 0
    if cfg.sched.name == "plateau" and no_val:
        raise ConfigError(_("sched.name = 'plateau' follows the validation loss: set "
                            "data.val_size (e.g. --set data.val_size=0.1)"))
    if cfg.train.early_stop_patience and cfg.train.monitor.startswith("val_") and no_val:
        raise ConfigError(_("early stopping on train.monitor = '{monitor}' needs a validation "
                            "split: set data.val_size (e.g. --set data.val_size=0.1)").format(
            monitor=cfg.train.monitor))
    if cfg.optim.name == "lbfgs" and (cfg.train.accum_steps > 1 or cfg.train.amp == "fp16"
                                      or cfg.train.clip_norm or cfg.train.clip_value):
        raise ConfigError(_("optim.name = 'lbfgs' re-evaluates its closure and cannot be "
                            "combined with train.accum_steps > 1, fp16 or gradient clipping"))


def make_run_dir(cfg: Config) -> Path:
    if cfg.train.out:
        run_dir = Path(cfg.train.out)
        if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
            raise UsageError(_("--out {run_dir} already exists and is not empty; choose a new "
                               "folder, delete that one, or continue it with --resume "
                               "{run_dir}").format(run_dir=run_dir))
    else:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        base = Path("runs") / f"{stamp}-{cfg.data.name}-{cfg.model.name}"
        run_dir, n = base, 1
        while run_dir.exists():
            n += 1
            run_dir = base.with_name(f"{base.name}-{n}")
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run_dir / "plots").mkdir(exist_ok=True)
    return run_dir


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


def load_teacher(run_dir: str, device: torch.device) -> torch.nn.Module:
    """A trained run's model, frozen, for distillation (loss.teacher)."""
    cfg = resume_config(run_dir, None)
    tensors, meta = load_checkpoint(Path(run_dir) / "checkpoints" / "last.safetensors")
    teacher = build_model(cfg.model, len(meta["classes"]))
    restore_model(teacher, tensors, run_dir)
    return teacher.to(device).eval().requires_grad_(False)
