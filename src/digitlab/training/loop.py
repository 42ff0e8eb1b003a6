"""`train(cfg)`: the whole training run, top to bottom.

seed and device -> data -> model, loss, optimizer, schedule -> autocast -> compile and DDP ->
the run directory (locked for the run) -> resume -> for epoch: for images, labels in loader:
step -> evaluate, checkpoint (good weights only), log, early stopping -> the reported weights,
their temperature (calibration), the final test, summary.json. The run's analysis
(evaluation.json, figures, report.html) is drawn by the command afterwards
(digitlab.viz.analysis): training/ draws nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from torch.nn.parallel import DistributedDataParallel as DDP

import digitlab
from digitlab.config import Config, TrainConfig
from digitlab.data import Dataset, make_loader
from digitlab.data.augment import Augment
from digitlab.data.balance import balancing_weights, epoch_balance
from digitlab.data.loader import epoch_batches
from digitlab.i18n import ngettext
from digitlab.io import write_json
from digitlab.models.shifted import with_test_shifts
from digitlab.training import distributed, graphs, read_loop, setup
from digitlab.training.calibration import calibrate, calibration_line
from digitlab.training.checkpoint import (
    load_checkpoint,
    reported_checkpoint,
    restore_model,
    rng_state,
    save_checkpoint,
)
from digitlab.training.evaluate import evaluate_splits, final_test
from digitlab.training.guards import Guard
from digitlab.training.heap import tune_heap
from digitlab.training.losses import Criterion
from digitlab.training.optim import OPTIMIZERS, Schedule, current_lr, param_groups
from digitlab.training.progress import BatchBar, RunLog, header, make_progress
from digitlab.training.rundir import claim_run_dir, new_state, restore_run
from digitlab.training.setup import check_runtime, load_data, load_teacher, training_splits
from digitlab.training.step import EpochTotals, make_autocast
from digitlab.training.steplog import StepLog


def prepare_process(seed: int) -> None:
    """The process-wide settings a run needs: every generator seeded, and glibc's heap kept
    from unmapping large buffers every step (training/heap.py)."""
    tune_heap()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


@contextlib.contextmanager
def deterministic(enabled: bool):
    """torch's deterministic kernels for the run (train.deterministic), then the process's own
    settings back: they are process-wide, and a notebook trains more than once."""
    if not enabled:
        yield
        return
    before = (torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled(), torch.backends.cudnn.benchmark)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.benchmark = before[2]


def train(cfg: Config, fallback: bool = False, console: Console | None = None, resume: bool = False,
          dataset: Dataset | None = None, init: torch.nn.Module | None = None) -> dict:
    """Train with `cfg`; returns the summary also written to RUN_DIR/summary.json.

    fallback: when MNIST was not chosen explicitly and cannot be found or downloaded, train on
    the bundled `digits` set after a notice instead of failing.
    resume: continue the run in cfg.train.out from its last checkpoint (see resume_config).
    dataset, init: the user's own data and initial model (setup.load_data, initial_model).
    """
    if cfg.train.task == "read":  # whole numbers: CTC on composed lines (read_loop.py)
        return read_loop.train_read(cfg, fallback, console, resume, dataset, init)
    console = console or Console(highlight=False, soft_wrap=True, markup=False)
    prepare_process(cfg.train.seed)
    device = distributed.resolve_device(cfg.train.device)
    world = distributed.setup(device)  # DDP only when torchrun set RANK
    device = distributed.rank_device(device, world)
    if not world.main:
        console = Console(quiet=True)  # rank 0 alone prints and writes
    check_runtime(cfg, device, world.size)

    # ---- data; the run directory comes once everything has been built (bad input writes
    # nothing) ------------------------------------------------------------------------------
    dataset, cfg, notice = load_data(cfg, fallback, console, dataset)
    num_classes = len(dataset.classes)
    train_split, val = training_splits(dataset, cfg)
    train_loader = make_loader(train_split, cfg.data.loader, cfg.data.batch_size, device,
                               cfg.data.mean, cfg.data.std, shuffle=True, seed=cfg.train.seed,
                               num_workers=cfg.data.num_workers, balance=cfg.data.balance,
                               num_classes=num_classes, rank=world.rank, world_size=world.size,
                               augment=Augment.from_config(cfg.data))
    eval_loaders = {name: make_loader(split, "device", cfg.data.test_batch_size, device,
                                      cfg.data.mean, cfg.data.std, shuffle=False)
                    for name, split in (("val", val), ("test", dataset.test)) if split}
    epochs = cfg.train.epochs
    # balanced epochs, then data.balance_finetune_epochs unbalanced; lecun's differ in length
    balances = [epoch_balance(cfg.data.balance, epoch, epochs, cfg.data.balance_finetune_epochs)
                for epoch in range(epochs)]
    batches_per_epoch = [epoch_batches(train_split.labels, cfg.data.batch_size, balance,
                                       num_classes) for balance in balances]

    # ---- model, loss, optimizer, schedule, autocast (a scaler only for fp16) -----------------
    model = setup.initial_model(cfg, num_classes, init).to(device)
    if cfg.train.channels_last:  # conv weights NHWC; 4-d activations follow their layout
        model = model.to(memory_format=torch.channels_last)
    raw_model = model  # checkpoints hold the plain module, not a compiled or DDP wrapper
    autocast = make_autocast(device, cfg.train.amp)
    class_weights = (balancing_weights(train_split.labels, num_classes)
                     if cfg.data.balance == "weights" else None)
    teacher = (load_teacher(cfg.loss.teacher, dataset.classes, device) if cfg.loss.teacher
               else None)
    criterion = Criterion(cfg.loss, num_classes, sum(batches_per_epoch), device, class_weights,
                          teacher, autocast)
    optimizer = OPTIMIZERS.get(cfg.optim.name)(param_groups(model, cfg.optim), cfg.optim)
    schedule = Schedule(optimizer, cfg.sched, [math.ceil(n / cfg.train.accum_steps)
                                               for n in batches_per_epoch])
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.train.amp == "fp16")
    if world.distributed:  # gradients are averaged across ranks inside backward()
        model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.train.compile:
        model = torch.compile(model)
    step = graphs.make_step(cfg, device, world.distributed, console, model, optimizer, schedule,
                            scaler, criterion)  # eager, or replayed as CUDA graphs

    # ---- the run directory, locked until the run ends; resume -------------------------------
    with claim_run_dir(cfg, resume, world) as run_dir, deterministic(cfg.train.deterministic):
        console.print(header(dataset, train_split, val, cfg, device, run_dir))
        state = (restore_run(run_dir, cfg, raw_model, optimizer, schedule, scaler, console)
                 if resume else new_state())
        log, guard = RunLog(console, run_dir, cfg, world.main), Guard(run_dir, world.main, console)
        if resume:  # the checkpoint is the truth: metrics.jsonl lines written after it go
            log.restart(state["history"], cfg)
        steps = StepLog(run_dir, cfg.train, world.main, schedule, optimizer, log.tensorboard)
        meta = checkpoint_meta(cfg, dataset)
        check_every = guard.interval(device, world, cfg.train.log_interval)
        stopped = False
        with make_progress(console) as progress:
            epoch_bar = progress.add_task("epochs", total=epochs, completed=state["epoch"])
            batch_bar = BatchBar(progress, batches_per_epoch[0], check_every)
            for epoch in range(state["epoch"], epochs):
                num_batches = batches_per_epoch[epoch]
                train_loader.set_epoch(epoch, balances[epoch])
                totals, started = EpochTotals(device), time.perf_counter()
                step.start_epoch(num_batches, balances[epoch] != "none", totals,
                                 rank_weights=train_loader.rank_weights())
                model.train()
                batch_bar.start(epoch, num_batches)
                for batch, (images, labels) in enumerate(train_loader):
                    logits, loss = step(images, labels, batch, state["batches"])
                    state["batches"] += 1
                    steps(epoch, batch, loss, state["train_seconds"], started)  # every N steps
                    if batch % check_every == 0:  # a host sync: only on the steps checked
                        log.batch(epoch, batch, num_batches,
                                  guard.batch(loss, logits, epoch, batch))
                    batch_bar(batch, totals, optimizer)  # every few batches: Python work
                seconds = elapsed(started, device) - step.pop_capture_seconds()

                # ---- end of epoch: evaluate; only good weights are checkpointed; log -------
                train_loss, train_accuracy, seen = totals.reduce(world)
                record = {"epoch": epoch + 1, "batches": state["batches"],
                          "train_loss": train_loss, "train_accuracy": train_accuracy,
                          **evaluate_splits(model, eval_loaders, criterion.plain, num_classes),
                          "lr": current_lr(optimizer), "epoch_seconds": seconds}
                if criterion.anneals:
                    record["temperature"] = criterion.beta(state["batches"] - 1)
                schedule.after_epoch(record.get("val_loss"))
                guard.epoch(record, raw_model, epoch)  # NaN or Inf: stop, keep the last good one
                metric, value = monitored(record, cfg.train.monitor)
                is_best = improved(value, state["best"], cfg.train, metric)
                advance(state, record, is_best, value, seen, seconds)
                if world.main:
                    save_checkpoints(run_dir, raw_model, optimizer, is_best, dict(
                        meta, epoch=epoch + 1, batches=state["batches"], metrics=record,
                        state=state, schedule=schedule.state_dict(), scaler=scaler.state_dict()))
                log(record)  # after the checkpoint: a resume rewrites metrics.jsonl from it
                progress.advance(epoch_bar)
                if 0 < cfg.train.early_stop_patience <= state["bad_epochs"]:
                    log.early_stop(metric, state)
                    stopped = True
                    break

        # ---- the end: the weights the run reports, the final test, the summary ---------------
        distributed.barrier(world)  # rank 0 has written the checkpoints
        load_reported_weights(raw_model, run_dir)
        checkpoints = [run_dir / "checkpoints" / f"{name}.safetensors" for name in ("last", "best")]
        shifts = cfg.data.test_shifts  # T (fitted on val, into both files) and test: as predicted
        calibration = calibrate(with_test_shifts(raw_model, shifts), eval_loaders.get("val"),
                                checkpoints if world.main else [])
        test = final_test(model, eval_loaders["test"], criterion.plain, num_classes, shifts,
                          console)
        if line := calibration_line(calibration):
            console.print(line)
        summary = summarize(state, test, stopped, cfg, dataset, notice, raw_model, device,
                            run_dir)
        summary.update(calibration=calibration, cuda_graphs=step.graphs)
        if world.main:
            write_json(run_dir / "summary.json", summary)
        log.close()
    distributed.barrier(world)
    distributed.cleanup(world)
    console.print(ngettext(
        "{dataset}: test accuracy {accuracy:.2f}% after {epochs} epoch, {seconds:.1f} s of "
        "training. Run saved to {run_dir}",
        "{dataset}: test accuracy {accuracy:.2f}% after {epochs} epochs, {seconds:.1f} s of "
        "training. Run saved to {run_dir}", state["epoch"]).format(
        dataset=dataset.title, accuracy=100 * test["accuracy"], epochs=state["epoch"],
        seconds=state["train_seconds"], run_dir=run_dir))
    return summary


def elapsed(started: float, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()  # so the epoch time covers the queued kernels
    return time.perf_counter() - started


def monitored(record: dict, monitor: str) -> tuple[str, float]:
    """The metric early stopping and the best checkpoint follow. Without a validation split a
    val_* monitor falls back to its test_* twin (fine for looking, not for reporting)."""
    key = monitor if monitor in record else monitor.replace("val_", "test_")
    return key, record[key]


def improved(value: float, best: float | None, cfg: TrainConfig, metric: str) -> bool:
    mode = cfg.mode if cfg.mode != "auto" else ("max" if metric.endswith("accuracy") else "min")
    if best is None:
        return True
    if mode == "max":
        return value > best + cfg.min_delta
    return value < best - cfg.min_delta


def advance(state: dict, record: dict, is_best: bool, value: float, seen: int,
            seconds: float) -> None:
    """The run state after a good epoch: its record, the best so far, the epochs without
    improvement (early stopping), samples and seconds."""
    state["epoch"] = record["epoch"]
    state["history"].append(record)
    if is_best:
        state.update(best=value, best_epoch=record["epoch"], bad_epochs=0)
    else:
        state["bad_epochs"] += 1
    state["samples"] += seen
    state["train_seconds"] += seconds


def checkpoint_meta(cfg: Config, dataset: Dataset) -> dict:
    """What every checkpoint of the run carries besides its epoch: config, classes, the
    normalization (so a checkpoint file alone can be used)."""
    return {"config": dataclasses.asdict(cfg), "model": cfg.model.name, "dataset": dataset.name,
            "classes": list(dataset.classes), "mean": cfg.data.mean, "std": cfg.data.std}


def save_checkpoints(run_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                     is_best: bool, meta: dict) -> None:
    """last.safetensors after every good epoch, best.safetensors when the monitor improved;
    each with every RNG's state, for exact resume."""
    rng_tensors, meta["rng"] = rng_state()
    if is_best:
        save_checkpoint(run_dir / "checkpoints" / "best.safetensors", model, optimizer, meta,
                        rng_tensors)
    save_checkpoint(run_dir / "checkpoints" / "last.safetensors", model, optimizer, meta,
                    rng_tensors)


def load_reported_weights(model: torch.nn.Module, run_dir: Path) -> None:
    """The weights the run reports, by the rule evaluate, predict, serve and export follow
    (checkpoint.reported_checkpoint): under early stopping its best epoch's; else the last
    ones, which the model holds already."""
    path = reported_checkpoint(run_dir)
    if path.name != "last.safetensors" and path.is_file():
        tensors, _meta = load_checkpoint(path)
        restore_model(model, tensors, str(path))


def summarize(state: dict, test: dict, stopped: bool, cfg: Config, dataset: Dataset,
              notice: str, model: torch.nn.Module, device: torch.device, run_dir: Path) -> dict:
    """summary.json: the final test of the reported weights, and how the run got there."""
    last = state["history"][-1] if state["history"] else None
    seconds = state["train_seconds"]
    finite = math.isfinite(test["loss"]) and math.isfinite(test["accuracy"])
    return {
        "status": "completed" if finite else "failed",
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "test_shifts": cfg.data.test_shifts,  # > 0: test_accuracy read at 5 positions
        "test_accuracy_read_once": test.get("read_once", test["accuracy"]),
        "train_loss": last["train_loss"] if last else None,
        "train_accuracy": last["train_accuracy"] if last else None,
        "train_seconds": seconds,
        "samples_per_second": state["samples"] / seconds if seconds else None,
        "epochs": state["epoch"],
        "epochs_planned": cfg.train.epochs,
        "stopped_early": stopped,
        "best_epoch": state["best_epoch"],
        "best_metric": {"name": monitored(last, cfg.train.monitor)[0],
                        "value": state["best"]} if last else None,
        "batches": state["batches"],
        "dataset": dataset.name,
        "dataset_title": dataset.title,
        "dataset_origin": dataset.origin,
        "dataset_notice": notice,
        "model": cfg.model.name,
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "device": str(device),
        "seed": cfg.train.seed,
        "torch_version": torch.__version__,
        "digitlab_version": digitlab.__version__,
        "run_dir": str(run_dir),
    }
