"""`train(cfg)`: the whole training run, top to bottom.

seed and device -> data -> run directory -> model, loss, optimizer, schedule -> autocast ->
compile -> resume -> for epoch: for images, labels in loader: forward, loss, backward, clip,
step -> evaluate, early stopping, checkpoint, log -> plots and summary.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import random
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from torch.nn.parallel import DistributedDataParallel as DDP

import digitlab
from digitlab.config import Config, to_toml
from digitlab.data import make_loader
from digitlab.data.balance import balancing_weights
from digitlab.errors import ConfigError, TrainingError, UsageError
from digitlab.i18n import N_, _, ngettext
from digitlab.io import append_jsonl, atomic_write_text, write_json
from digitlab.models import build_model
from digitlab.training import distributed
from digitlab.training.checkpoint import (
    load_checkpoint,
    restore_model,
    restore_optimizer,
    restore_rng,
    rng_state,
    save_checkpoint,
)
from digitlab.training.evaluate import evaluate
from digitlab.training.losses import build_loss, looks_like_probabilities, temperature_at
from digitlab.training.optim import (
    FIXED_LENGTH_SCHEDULES,
    OPTIMIZERS,
    Schedule,
    current_lr,
    is_lbfgs,
    param_groups,
)
from digitlab.training.setup import (
    check_runtime,
    load_data,
    load_teacher,
    make_run_dir,
    training_splits,
)
from digitlab.viz.analysis import analyze

DOUBLE_SOFTMAX = N_("the model's outputs look like probabilities (or log-probabilities), but the "
                  "loss applies softmax itself: remove the final softmax and return raw logits")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def make_progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                    console=console, disable=not console.is_terminal)


def monitored(record: dict, monitor: str) -> tuple[str, float]:
    """The metric early stopping and the best checkpoint follow. Without a validation split a
    val_* monitor falls back to its test_* twin (fine for looking, not for reporting)."""
    key = monitor if monitor in record else monitor.replace("val_", "test_")
    return key, record[key]


def improved(value: float, best: float | None, cfg: Config, key: str) -> bool:
    mode = cfg.train.mode if cfg.train.mode != "auto" else (
        "max" if key.endswith("accuracy") else "min")
    if best is None:
        return True
    if mode == "max":
        return value > best + cfg.train.min_delta
    return value < best - cfg.train.min_delta


def train(cfg: Config, fallback: bool = False, console: Console | None = None,
          resume: bool = False) -> dict:
    """Train with `cfg`; returns the summary also written to RUN_DIR/summary.json.

    fallback: when MNIST was not chosen explicitly and cannot be found or downloaded, train on
    the bundled `digits` set after a notice instead of failing.
    resume: continue the run in cfg.train.out from its last checkpoint (see resume_config).
    """
    console = console or Console(highlight=False, soft_wrap=True, markup=False)
    seed_everything(cfg.train.seed)
    device = distributed.resolve_device(cfg.train.device)
    world = distributed.setup(device)  # DDP only when torchrun set RANK
    device = distributed.rank_device(device, world)
    if not world.main:
        console = Console(quiet=True)  # rank 0 alone prints and writes
    check_runtime(cfg, device, world.size)
    if cfg.train.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False

    # ---- data; the run directory comes once everything has been built (bad input writes
    # nothing) ------------------------------------------------------------------------------
    dataset, cfg, notice = load_data(cfg, fallback, console)
    num_classes = len(dataset.classes)
    train_split, val = training_splits(dataset, cfg)
    balance = cfg.data.balance
    train_loader = make_loader(train_split, cfg.data.loader, cfg.data.batch_size, device,
                               cfg.data.mean, cfg.data.std, shuffle=True, seed=cfg.train.seed,
                               num_workers=cfg.data.num_workers,
                               balance=balance if balance in ("sampler", "lecun") else "none",
                               num_classes=num_classes, rank=world.rank, world_size=world.size,
                               augment_shift=cfg.data.augment_shift)
    eval_loaders = {name: make_loader(split, "device", cfg.data.test_batch_size, device,
                                      cfg.data.mean, cfg.data.std, shuffle=False)
                    for name, split in (("val", val), ("test", dataset.test)) if split}

    # ---- model, loss, optimizer, schedule ----------------------------------------------------
    model = build_model(cfg.model, num_classes).to(device)
    if cfg.train.channels_last:  # conv weights NHWC; 4-d activations follow their layout
        model = model.to(memory_format=torch.channels_last)
    raw_model = model  # checkpoints hold the plain module, not a compiled wrapper
    weights = balancing_weights(train_split.labels, num_classes) if balance == "weights" else None
    loss_fn = build_loss(cfg.loss, num_classes, weights).to(device)
    plain_loss_fn = build_loss(cfg.loss, num_classes).to(device)  # evaluation, fine-tuning
    teacher = load_teacher(cfg.loss.teacher, device) if cfg.loss.teacher else None
    optimizer = OPTIMIZERS.get(cfg.optim.name)(param_groups(model, cfg.optim), cfg.optim)
    lbfgs = is_lbfgs(optimizer)

    epochs, accum = cfg.train.epochs, cfg.train.accum_steps
    finetune_from = epochs - cfg.data.balance_finetune_epochs if balance != "none" else epochs
    epoch_batches = []
    for epoch in range(epochs):  # lecun epochs differ in length from true-frequency ones
        train_loader.balance = train_loader_balance(balance, epoch, finetune_from)
        epoch_batches.append(len(train_loader))
    schedule = Schedule(optimizer, cfg.sched, [math.ceil(n / accum) for n in epoch_batches])

    # ---- autocast; a scaler only for fp16 ----------------------------------------------------
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.train.amp)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.train.amp == "fp16")

    def autocast():
        if amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=amp_dtype)

    if world.distributed:  # gradients are averaged across ranks inside backward()
        model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.train.compile:
        model = torch.compile(model)

    # ---- the run directory: everything above is built, so a bad setting has written nothing --
    if resume:
        run_dir = Path(cfg.train.out)
    elif world.main:
        run_dir = make_run_dir(cfg)
        atomic_write_text(run_dir / "config.toml", to_toml(cfg))
    run_dir = Path(distributed.broadcast(str(run_dir) if world.main or resume else None, world))
    sizes = (_("{train:,} train / {val:,} val / {test:,} test") if val else
             _("{train:,} train / {test:,} test")).format(
        train=len(train_split), val=len(val) if val else 0, test=len(dataset.test))
    console.print(_("digitlab {version}: {dataset} ({sizes}, from {origin}) | model {model} | "
                    "device {device} | run {run_dir}").format(
        version=digitlab.__version__, dataset=dataset.title, sizes=sizes, origin=dataset.origin,
        model=cfg.model.name, device=device, run_dir=run_dir))

    # ---- resume ----------------------------------------------------------------------------
    state = {"epoch": 0, "step": 0, "best": None, "best_epoch": None, "bad_epochs": 0,
             "history": [], "train_seconds": 0.0, "samples": 0}
    last_path = run_dir / "checkpoints" / "last.safetensors"
    metrics_path = run_dir / "metrics.jsonl"
    if resume and last_path.exists():
        tensors, meta = load_checkpoint(last_path)
        if meta["epoch"] > epochs:
            raise UsageError(_("{run_dir} already ran {epochs} epochs; pass --epochs {epochs} or "
                               "more to continue it").format(run_dir=run_dir,
                                                             epochs=meta["epoch"]))
        if (cfg.sched.name in FIXED_LENGTH_SCHEDULES
                and meta["config"]["train"]["epochs"] != epochs):
            raise ConfigError(_("a {schedule} schedule is laid out for a fixed number of epochs; "
                                "resume it with its original --epochs ({epochs})").format(
                schedule=cfg.sched.name, epochs=meta["config"]["train"]["epochs"]))
        restore_model(raw_model, tensors, str(last_path))
        restore_optimizer(optimizer, tensors, meta)
        schedule.load_state_dict(meta["schedule"])
        scaler.load_state_dict(meta["scaler"])
        restore_rng(tensors, meta["rng"])
        state = meta["state"]
        console.print(_("Resuming {run_dir} after epoch {epoch} of {epochs}").format(
            run_dir=run_dir, epoch=state["epoch"], epochs=epochs))
    if resume and world.main:  # the checkpoint is the truth: lines written after it are dropped
        atomic_write_text(metrics_path, "".join(json.dumps(r) + "\n" for r in state["history"]))
        atomic_write_text(run_dir / "config.toml", to_toml(cfg))  # e.g. the new epoch count
    meta_base = {"config": dataclasses.asdict(cfg), "model": cfg.model.name,
                 "dataset": dataset.name, "classes": list(dataset.classes),
                 "mean": cfg.data.mean, "std": cfg.data.std}

    tensorboard = open_tensorboard(run_dir) if cfg.train.tensorboard and world.main else None

    # ---- the loop --------------------------------------------------------------------------
    total_steps = sum(epoch_batches)
    # .item() is free on the CPU, so check every loss there; on GPUs and under DDP, log steps only
    check_every = 1 if device.type == "cpu" and not world.distributed else cfg.train.log_interval
    warned = False
    stop = False
    optimizer.zero_grad(set_to_none=True)
    with make_progress(console) as progress:
        epoch_bar = progress.add_task("epochs", total=epochs, completed=state["epoch"])
        batch_bar = progress.add_task("batches", total=epoch_batches[0])
        for epoch in range(state["epoch"], epochs):
            balanced = epoch < finetune_from
            train_loader.balance = train_loader_balance(balance, epoch, finetune_from)
            train_loader.set_epoch(epoch)
            criterion = loss_fn if balanced else plain_loss_fn
            steps = epoch_batches[epoch]
            # DDP: each rank's share of an unevenly split batch (see Batching.loss_weights)
            shares = train_loader.loss_weights() if world.distributed else None
            model.train()
            progress.reset(batch_bar, total=steps,
                           description=_("epoch {epoch}").format(epoch=epoch + 1))
            running_loss = torch.zeros((), device=device)  # summed on the device: no syncs
            correct = torch.zeros((), dtype=torch.long, device=device)
            seen = 0
            started = time.perf_counter()
            for batch_idx, (images, labels) in enumerate(train_loader):
                beta = temperature_at(cfg.loss, state["step"], total_steps)
                targets = labels
                if teacher is not None:
                    with torch.no_grad(), autocast():
                        targets = teacher(images).float()

                if lbfgs:
                    logits, loss = lbfgs_step(optimizer, model, criterion, images, targets, beta,
                                              autocast)
                    schedule.after_batch()
                else:
                    with autocast():
                        logits = model(images)
                        loss = criterion(logits * beta if beta != 1 else logits, targets)
                    share = shares[batch_idx] if shares is not None else 1.0
                    scaler.scale(loss / (accum / share)).backward()  # one op on the loss
                    if (batch_idx + 1) % accum == 0 or batch_idx + 1 == steps:
                        if cfg.train.clip_norm or cfg.train.clip_value:
                            scaler.unscale_(optimizer)  # clip true gradients, not scaled ones
                            if cfg.train.clip_norm:
                                torch.nn.utils.clip_grad_norm_(model.parameters(),
                                                               cfg.train.clip_norm)
                            if cfg.train.clip_value:
                                torch.nn.utils.clip_grad_value_(model.parameters(),
                                                                cfg.train.clip_value)
                        scaler.step(optimizer)
                        scaler.update()
                        optimizer.zero_grad(set_to_none=True)
                        schedule.after_batch()
                state["step"] += 1

                # one sync per epoch: does the loss get probabilities instead of logits?
                if batch_idx == 0 and not warned and looks_like_probabilities(logits):
                    warned = True
                    warnings.warn(_(DOUBLE_SOFTMAX), stacklevel=1)
                    progress.console.print(_("warning: {message}").format(
                        message=_(DOUBLE_SOFTMAX)), style="yellow")
                running_loss += loss.detach().float() * len(labels)
                correct += (logits.detach().argmax(dim=1) == labels).sum()
                seen += len(labels)
                if batch_idx % check_every == 0 or batch_idx % cfg.train.log_interval == 0:
                    value = loss.item()  # .item() syncs with the device; only on log steps
                    check_finite(value, epoch, batch_idx, run_dir, world.main)
                    if batch_idx % cfg.train.log_interval == 0:
                        progress.console.print(
                            _("Epoch [{epoch}/{epochs}], Batch [{batch}/{batches}], "
                              "Loss: {loss:.4f}").format(epoch=epoch + 1, epochs=epochs,
                                                        batch=batch_idx, batches=steps,
                                                        loss=value))
                progress.advance(batch_bar)
            if device.type == "cuda":
                torch.cuda.synchronize()  # so the epoch time covers the queued kernels
            epoch_seconds = time.perf_counter() - started
            state["train_seconds"] += epoch_seconds

            # ---- end of epoch: evaluate, schedule, early stopping, checkpoint, log ---------
            totals = distributed.all_reduce_sum(  # sums over ranks; one sync
                torch.stack([running_loss, correct.float(),
                             torch.tensor(float(seen), device=device)]), world).tolist()
            avg_loss, train_accuracy, seen = totals[0] / totals[2], totals[1] / totals[2], totals[2]
            check_finite(avg_loss, epoch, None, run_dir, world.main)
            record = {"epoch": epoch + 1, "step": state["step"], "train_loss": avg_loss,
                      "train_accuracy": train_accuracy}
            for name, loader in eval_loaders.items():
                result = evaluate(model, loader, plain_loss_fn, num_classes)
                record[f"{name}_loss"], record[f"{name}_accuracy"] = (result["loss"],
                                                                      result["accuracy"])
            record.update(lr=current_lr(optimizer), epoch_seconds=epoch_seconds)
            if beta != 1 or cfg.loss.temperature != 1:
                record["temperature"] = beta
            schedule.after_epoch(record.get("val_loss"))

            key, value = monitored(record, cfg.train.monitor)
            state["epoch"] = epoch + 1
            state["history"].append(record)
            is_best = improved(value, state["best"], cfg, key)
            if is_best:
                state.update(best=value, best_epoch=epoch + 1, bad_epochs=0)
            else:
                state["bad_epochs"] += 1
            state["samples"] += int(seen)
            rng_tensors, rng_meta = rng_state()
            meta = dict(meta_base, epoch=epoch + 1, step=state["step"], metrics=record,
                        state=state, schedule=schedule.state_dict(),
                        scaler=scaler.state_dict(), rng=rng_meta)
            if is_best and world.main:
                save_checkpoint(run_dir / "checkpoints" / "best.safetensors", raw_model,
                                optimizer, meta, rng_tensors)
            if world.main:
                save_checkpoint(last_path, raw_model, optimizer, meta, rng_tensors)
                append_jsonl(metrics_path, record)  # after the checkpoint: resume rewrites it
            if tensorboard is not None:
                for key, val in record.items():
                    tensorboard.add_scalar(key, val, global_step=epoch + 1)
                tensorboard.flush()
            progress.console.print(epoch_line(record))
            progress.advance(epoch_bar)
            patience = cfg.train.early_stop_patience
            if patience and state["bad_epochs"] >= patience:
                progress.console.print(
                    _("Early stopping: {metric} has not improved for {patience} epochs (best "
                      "{best:.4f} at epoch {best_epoch})").format(
                        metric=key, patience=patience, best=state["best"],
                        best_epoch=state["best_epoch"]))
                stop = True
                break

    # ---- the end: best weights, final test, figures, summary --------------------------------
    distributed.barrier(world)  # rank 0 has written best.safetensors
    if cfg.train.early_stop_patience and state["best_epoch"] is not None:
        best_tensors, _meta = load_checkpoint(run_dir / "checkpoints" / "best.safetensors")
        restore_model(raw_model, best_tensors, "best checkpoint")
    test = evaluate(model, eval_loaders["test"], plain_loss_fn, num_classes)
    console.print(_("Test Accuracy: {accuracy:.2f}%").format(accuracy=100 * test["accuracy"]))
    train_seconds = state["train_seconds"]
    summary = {
        "status": "completed",
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "train_loss": state["history"][-1]["train_loss"] if state["history"] else None,
        "train_accuracy": state["history"][-1]["train_accuracy"] if state["history"] else None,
        "train_seconds": train_seconds,
        "samples_per_second": state["samples"] / train_seconds if train_seconds else None,
        "epochs": state["epoch"],
        "epochs_planned": epochs,
        "stopped_early": stop,
        "best_epoch": state["best_epoch"],
        "best_metric": {"name": monitored(state["history"][-1], cfg.train.monitor)[0],
                        "value": state["best"]} if state["history"] else None,
        "steps": state["step"],
        "dataset": dataset.name,
        "dataset_title": dataset.title,
        "dataset_origin": dataset.origin,
        "dataset_notice": notice,
        "model": cfg.model.name,
        "num_parameters": sum(p.numel() for p in raw_model.parameters()),
        "device": str(device),
        "seed": cfg.train.seed,
        "torch_version": torch.__version__,
        "digitlab_version": digitlab.__version__,
        "run_dir": str(run_dir),
    }
    if world.main:
        write_json(run_dir / "summary.json", summary)
        analyze(raw_model, dataset, cfg, device, run_dir)  # evaluation.json, plots/, report.html
    distributed.barrier(world)
    distributed.cleanup(world)
    console.print(ngettext(
        "{dataset}: test accuracy {accuracy:.2f}% after {epochs} epoch, {seconds:.1f} s of "
        "training. Run saved to {run_dir}",
        "{dataset}: test accuracy {accuracy:.2f}% after {epochs} epochs, {seconds:.1f} s of "
        "training. Run saved to {run_dir}", state["epoch"]).format(
        dataset=dataset.title, accuracy=100 * test["accuracy"], epochs=state["epoch"],
        seconds=train_seconds, run_dir=run_dir))
    return summary


def open_tensorboard(run_dir: Path):
    from torch.utils.tensorboard import SummaryWriter  # check_runtime made sure it imports

    return SummaryWriter(log_dir=str(run_dir / "tensorboard"))


def lbfgs_step(optimizer, model, criterion, images, targets, beta: float, autocast):
    """One L-BFGS step: it calls the closure (forward + backward on this batch) up to max_iter
    times. Returns the logits and loss of the first evaluation, for the epoch statistics."""
    outputs = []

    def closure():
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            logits = model(images)
            loss = criterion(logits * beta if beta != 1 else logits, targets)
        loss.backward()
        outputs.append((logits, loss))
        return loss

    optimizer.step(closure)
    return outputs[0]


def train_loader_balance(balance: str, epoch: int, finetune_from: int) -> str:
    """The loader's order for this epoch: balanced draws, or true frequencies when fine-tuning
    (and always for "weights", which balances in the loss instead)."""
    return balance if balance in ("sampler", "lecun") and epoch < finetune_from else "none"


def epoch_line(record: dict) -> str:
    parts = [_("Epoch {epoch} finished. Average Loss: {loss:.4f}").format(
                 epoch=record["epoch"], loss=record["train_loss"]),
             _("train acc {accuracy:.2f}%").format(accuracy=100 * record["train_accuracy"])]
    if "val_loss" in record:
        parts.append(_("val loss {loss:.4f}, val acc {accuracy:.2f}%").format(
            loss=record["val_loss"], accuracy=100 * record["val_accuracy"]))
    if "test_loss" in record:
        parts.append(_("test loss {loss:.4f}, test acc {accuracy:.2f}%").format(
            loss=record["test_loss"], accuracy=100 * record["test_accuracy"]))
    parts.append(_("{seconds:.1f} s").format(seconds=record["epoch_seconds"]))
    return " | ".join(parts)


def check_finite(value: float, epoch: int, batch_idx: int | None, run_dir: Path,
                 write: bool = True) -> None:
    """Stop on a NaN/Inf loss. batch_idx None: found in the epoch's average (GPU, DDP)."""
    if math.isfinite(value):
        return
    if write:
        write_json(run_dir / "summary.json", {"status": "failed", "error": "non-finite loss",
                                              "epoch": epoch + 1, "batch": batch_idx})
    where = (_("epoch {epoch}, batch {batch}") if batch_idx is not None
             else _("epoch {epoch} (seen in its average loss)")).format(epoch=epoch + 1,
                                                                       batch=batch_idx)
    last = run_dir / "checkpoints" / "last.safetensors"
    kept = (_("The last good checkpoint (end of epoch {epoch}) is kept: {path}").format(
                epoch=epoch, path=last) if last.exists()
            else _("No epoch had finished, so there is no checkpoint."))
    raise TrainingError(_(
        "the loss became {value} in {where}; training stopped. Lower optim.lr (e.g. --set "
        "optim.lr=1e-4) or clip gradients (--set train.clip_norm=1.0). {checkpoint}").format(
            value=value, where=where, checkpoint=kept))
