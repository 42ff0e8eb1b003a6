"""The run directory: claimed under an exclusive lock for the whole run, and resumed.

Two runs never write one folder: rank 0 takes RUN_DIR/.lock (io.FolderLock) before writing
anything there and holds it until the run ends; a second `train --out` or `--resume` on that
folder gets a one-line error and writes nothing. The kernel drops the lock when a process
dies, so a killed run can be resumed at once; the resume first removes the temp files the
kill left behind. Resuming a run that has nothing left to do says so and changes nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import torch
from rich.console import Console

from digitlab.config import Config, to_toml
from digitlab.errors import CheckpointError, ConfigError, UsageError
from digitlab.i18n import _
from digitlab.io import (
    LOCK_NAME,
    FolderLock,
    atomic_write_text,
    cannot_write,
    check_writable,
    remove_orphan_temps,
)
from digitlab.training import distributed
from digitlab.training.checkpoint import (
    load_checkpoint,
    restore_model,
    restore_optimizer,
    restore_rng,
)
from digitlab.training.optim import FIXED_LENGTH_SCHEDULES, Schedule


def holds_files(folder: Path) -> bool:
    """Anything in `folder` but a lock file left by an earlier claim."""
    return any(p.name != LOCK_NAME for p in folder.iterdir())


def _not_empty(run_dir: Path) -> UsageError:
    return UsageError(_("--out {run_dir} already exists and is not empty; choose a new folder, "
                        "delete that one, or continue it with --resume {run_dir}").format(
        run_dir=run_dir))


def _new_folder(cfg: Config) -> Path:
    """--out (which must not hold files), or a fresh runs/<time>-<dataset>-<model>[-n]."""
    try:
        if cfg.train.out:
            run_dir = Path(cfg.train.out)
            if run_dir.exists() and (not run_dir.is_dir() or holds_files(run_dir)):
                raise _not_empty(run_dir)
            run_dir.mkdir(parents=True, exist_ok=True)
            return run_dir
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        base = Path("runs") / f"{stamp}-{cfg.data.name}-{cfg.model.name}"
        run_dir, n = base, 1
        while True:  # mkdir without exist_ok claims the name even against a concurrent run
            try:
                run_dir.mkdir(parents=True)
                return run_dir
            except FileExistsError:
                n += 1
                run_dir = base.with_name(f"{base.name}-{n}")
    except OSError as e:  # read-only, a file where a folder should be, no space, ...
        raise cannot_write(cfg.train.out or "runs", e) from None


def _lock(run_dir: Path) -> FolderLock:
    lock = FolderLock(run_dir)
    try:
        held = lock.acquire()
    except OSError as e:
        raise cannot_write(run_dir, e) from None
    if not held:
        raise UsageError(_("{run_dir} is in use by another digitlab run; wait for it to finish "
                           "or choose another folder").format(run_dir=run_dir))
    return lock


def claim_new(cfg: Config) -> tuple[Path, FolderLock]:
    """A new run directory, locked, holding config.toml and empty checkpoints/ and plots/."""
    run_dir = _new_folder(cfg)
    lock = _lock(run_dir)
    try:
        if holds_files(run_dir):  # another run filled it between our check and our lock
            raise _not_empty(run_dir)
        (run_dir / "checkpoints").mkdir(exist_ok=True)
        (run_dir / "plots").mkdir(exist_ok=True)
        atomic_write_text(run_dir / "config.toml", to_toml(cfg))
    except OSError as e:
        lock.release()
        raise cannot_write(run_dir, e) from None
    except BaseException:
        lock.release()
        raise
    return run_dir, lock


def claim_existing(run_dir: Path) -> FolderLock:
    """The lock of a run directory to resume, after checking it is writable (without writing:
    a refused resume leaves the folder as it was); then the temps of atomic writes a kill
    interrupted are removed (only the lock holder may: a live writer's temps look the same)."""
    check_writable(run_dir)
    lock = _lock(run_dir)
    try:
        remove_orphan_temps(run_dir)
    except OSError as e:
        lock.release()
        raise cannot_write(run_dir, e) from None
    return lock


@contextlib.contextmanager
def claim_run_dir(cfg: Config, resume: bool, world: distributed.World) -> Iterator[Path]:
    """The run directory, locked by rank 0 until the block ends; the other ranks get its path
    from rank 0 and write nothing."""
    lock = None
    try:
        if world.main and resume:
            run_dir, lock = Path(cfg.train.out), claim_existing(Path(cfg.train.out))
        elif world.main:
            run_dir, lock = claim_new(cfg)
        yield Path(distributed.broadcast(str(run_dir) if world.main else None, world))
    finally:
        if lock is not None:
            lock.release()


def new_state() -> dict:
    """What a run carries from epoch to epoch, saved in every checkpoint. "batches" counts
    training batches (optimizer steps are fewer with train.accum_steps > 1)."""
    return {"epoch": 0, "batches": 0, "best": None, "best_epoch": None, "bad_epochs": 0,
            "history": [], "train_seconds": 0.0, "samples": 0}


def upgrade_state(state: dict) -> dict:
    """Checkpoints written before the rename counted batches as "step"; the same number."""
    for entry in (state, *state["history"]):
        if "step" in entry:
            entry["batches"] = entry.pop("step")
    return state


def restore_run(run_dir: Path, cfg: Config, model: torch.nn.Module,
                optimizer: torch.optim.Optimizer, schedule: Schedule,
                scaler: torch.amp.GradScaler, console: Console) -> dict:
    """Model, optimizer, schedule, scaler and RNGs as the last checkpoint left them, and the run
    state saved with it (a new state when no epoch had finished). Refuses, before changing
    anything, fewer epochs than were run and a fixed-length schedule stretched to another
    length."""
    last = run_dir / "checkpoints" / "last.safetensors"
    if not last.exists():
        return new_state()
    tensors, meta = load_checkpoint(last)
    if meta["epoch"] > cfg.train.epochs:
        raise UsageError(_("{run_dir} already ran {epochs} epochs; pass --epochs {epochs} or "
                           "more to continue it").format(run_dir=run_dir, epochs=meta["epoch"]))
    planned = meta["config"]["train"]["epochs"]
    if cfg.sched.name in FIXED_LENGTH_SCHEDULES and planned != cfg.train.epochs:
        raise ConfigError(_("a {schedule} schedule is laid out for a fixed number of epochs; "
                            "resume it with its original --epochs ({epochs})").format(
            schedule=cfg.sched.name, epochs=planned))
    restore_model(model, tensors, str(last))
    restore_optimizer(optimizer, tensors, meta)
    schedule.load_state_dict(meta["schedule"])
    scaler.load_state_dict(meta["scaler"])
    restore_rng(tensors, meta["rng"])
    state = upgrade_state(meta["state"])
    console.print(_("Resuming {run_dir} after epoch {epoch} of {epochs}").format(
        run_dir=run_dir, epoch=state["epoch"], epochs=cfg.train.epochs))
    return state


def finished_line(cfg: Config) -> str | None:
    """The line that says the run in cfg.train.out has nothing left to do, or None when a
    resume has work: its summary.json reports the last checkpoint's epoch as completed, and
    that epoch is cfg.train.epochs, or early stopping ended the run and --epochs was not
    raised. It only reads, so it takes no lock: under torchrun every rank asks."""
    run_dir = Path(cfg.train.out)
    try:
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
        _tensors, meta = load_checkpoint(run_dir / "checkpoints" / "last.safetensors")
    except (OSError, ValueError, CheckpointError):  # no summary or checkpoint yet: resume
        return None
    done, epochs = meta["epoch"], cfg.train.epochs
    if not isinstance(summary, dict) or summary.get("status") != "completed" \
            or summary.get("epochs") != done:
        return None  # killed before the summary, or a failed run: the resume finishes it
    if done == epochs and cfg.sched.name in FIXED_LENGTH_SCHEDULES:
        remedy = _("its {schedule} schedule is laid out for {epochs} epochs: to train longer, "
                   "start a new run with more --epochs").format(schedule=cfg.sched.name,
                                                                 epochs=epochs)
    elif done == epochs:
        remedy = _("to train further, resume it with --epochs above {epochs}").format(
            epochs=epochs)
    elif summary.get("stopped_early") and summary.get("epochs_planned") == epochs:
        return _("{run_dir} is already complete: early stopping ended it after {done} of "
                 "{epochs} epochs; nothing to do").format(run_dir=run_dir, done=done,
                                                          epochs=epochs)
    else:
        return None
    return _("{run_dir} is already complete: {done} of {epochs} epochs; nothing to do "
             "({remedy})").format(run_dir=run_dir, done=done, epochs=epochs, remedy=remedy)
