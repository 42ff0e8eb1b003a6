"""`train(cfg)`: the whole training run, top to bottom.

seed and device -> data -> run directory -> model, loss, optimizer, schedule ->
for epoch: for images, labels in loader: forward, loss, backward, step -> evaluate,
log, checkpoint -> plots and summary.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

import digitlab
from digitlab.config import Config, to_toml
from digitlab.data import SOURCES, Dataset, make_loader
from digitlab.data.loader import normalize
from digitlab.errors import DataNotFound, TrainingError, UsageError
from digitlab.io import append_jsonl, atomic_write_text, write_json
from digitlab.models import build_model
from digitlab.training.checkpoint import save_checkpoint
from digitlab.training.evaluate import evaluate, resolve_device
from digitlab.training.losses import LOSSES
from digitlab.training.optim import OPTIMIZERS, SCHEDULERS, current_lr
from digitlab.viz import plots

FALLBACK_DATASET = "digits"  # bundled with scikit-learn, so a fresh offline machine can train


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def load_data(cfg: Config, fallback: bool, console: Console) -> tuple[Dataset, Config, str]:
    """The dataset, the config naming the dataset actually used, and any notice shown."""
    try:
        return SOURCES.get(cfg.data.name)(cfg.data), cfg, ""
    except DataNotFound as e:
        if not (fallback and cfg.data.name == "mnist"):
            raise
        notice = (f"{e}\nFalling back to the bundled '{FALLBACK_DATASET}' dataset "
                  f"(1,797 small scanned digits) so this run can go on offline.")
    console.print(Panel(notice, title="MNIST not available", border_style="yellow"))
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, name=FALLBACK_DATASET))
    return SOURCES.get(FALLBACK_DATASET)(cfg.data), cfg, notice


def make_run_dir(cfg: Config) -> Path:
    if cfg.train.out:
        run_dir = Path(cfg.train.out)
        if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
            raise UsageError(f"--out {run_dir} already exists and is not empty; "
                             "choose a new folder or delete that one")
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


def make_progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                    console=console, disable=not console.is_terminal)


def train(cfg: Config, fallback: bool = False, console: Console | None = None) -> dict:
    """Train with `cfg`; returns the summary also written to RUN_DIR/summary.json.

    fallback: when MNIST was not chosen explicitly and cannot be found or downloaded,
    train on the bundled `digits` set after a notice instead of failing.
    """
    console = console or Console(highlight=False, soft_wrap=True)
    seed_everything(cfg.train.seed)
    device = resolve_device(cfg.train.device)

    dataset, cfg, notice = load_data(cfg, fallback, console)
    num_classes = len(dataset.classes)
    run_dir = make_run_dir(cfg)  # only after config and data are known good
    atomic_write_text(run_dir / "config.toml", to_toml(cfg))
    console.print(f"digitlab {digitlab.__version__}: {dataset.title} "
                  f"({len(dataset.train):,} train / {len(dataset.test):,} test, from "
                  f"{dataset.origin}) | model {cfg.model.name} | device {device} | run {run_dir}")

    train_loader = make_loader(dataset.train, cfg.data.loader, cfg.data.batch_size, device,
                               cfg.data.mean, cfg.data.std, shuffle=True, seed=cfg.train.seed,
                               num_workers=cfg.data.num_workers)
    test_loader = make_loader(dataset.test, "device", cfg.data.test_batch_size, device,
                              cfg.data.mean, cfg.data.std, shuffle=False)

    model = build_model(cfg.model, num_classes).to(device)
    loss_fn = LOSSES.get(cfg.loss.name)(cfg.loss)
    optimizer = OPTIMIZERS.get(cfg.optim.name)(model.parameters(), cfg.optim)
    scheduler = SCHEDULERS.get(cfg.sched.name)(optimizer, cfg.sched, cfg.train.epochs)
    meta = {"config": dataclasses.asdict(cfg), "model": cfg.model.name, "dataset": dataset.name,
            "classes": list(dataset.classes), "mean": cfg.data.mean, "std": cfg.data.std}

    epochs, steps = cfg.train.epochs, len(train_loader)
    metrics_path = run_dir / "metrics.jsonl"
    train_seconds, step, history = 0.0, 0, []
    with make_progress(console) as progress:
        epoch_bar = progress.add_task("epochs", total=epochs)
        batch_bar = progress.add_task("batches", total=steps)
        for epoch in range(epochs):
            model.train()
            train_loader.set_epoch(epoch)
            progress.reset(batch_bar, total=steps, description=f"epoch {epoch + 1}")
            running_loss = torch.zeros((), device=device)  # summed on the device: no syncs
            correct = torch.zeros((), dtype=torch.long, device=device)
            started = time.perf_counter()
            for batch_idx, (images, labels) in enumerate(train_loader):
                optimizer.zero_grad(set_to_none=True)
                logits = model(images)
                loss = loss_fn(logits, labels)
                loss.backward()
                optimizer.step()
                step += 1

                running_loss += loss.detach()
                correct += (logits.detach().argmax(dim=1) == labels).sum()
                if batch_idx % cfg.train.log_interval == 0:
                    value = loss.item()  # .item() syncs with the device; only on log steps
                    check_finite(value, epoch, batch_idx, run_dir)
                    progress.console.print(f"Epoch [{epoch + 1}/{epochs}], "
                                           f"Batch [{batch_idx}/{steps}], Loss: {value:.4f}")
                progress.advance(batch_bar)
            if device.type == "cuda":
                torch.cuda.synchronize()  # so the epoch time covers the queued kernels
            epoch_seconds = time.perf_counter() - started
            train_seconds += epoch_seconds

            avg_loss = running_loss.item() / steps
            check_finite(avg_loss, epoch, steps - 1, run_dir)
            train_acc = correct.item() / len(dataset.train)
            test = evaluate(model, test_loader, loss_fn, num_classes)
            record = {"epoch": epoch + 1, "step": step, "train_loss": avg_loss,
                      "train_accuracy": train_acc, "test_loss": test["loss"],
                      "test_accuracy": test["accuracy"], "lr": current_lr(optimizer),
                      "epoch_seconds": epoch_seconds}
            if scheduler is not None:
                scheduler.step()  # every scheduler here steps once per epoch
            history.append(record)
            append_jsonl(metrics_path, record)
            save_checkpoint(run_dir / "checkpoints" / "last.safetensors", model, optimizer,
                            dict(meta, epoch=epoch + 1, step=step, metrics=record))
            progress.console.print(
                f"Epoch {epoch + 1} finished. Average Loss: {avg_loss:.4f} | "
                f"train acc {100 * train_acc:.2f}% | test loss {test['loss']:.4f}, "
                f"test acc {100 * test['accuracy']:.2f}% | {epoch_seconds:.1f} s")
            progress.advance(epoch_bar)

    console.print(f"Test Accuracy: {100 * test['accuracy']:.2f}%")
    save_predictions(model, dataset, cfg, device, run_dir / "plots" / "predictions.png")
    summary = {
        "status": "completed",
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "train_loss": history[-1]["train_loss"],
        "train_accuracy": history[-1]["train_accuracy"],
        "train_seconds": train_seconds,
        "samples_per_second": epochs * len(dataset.train) / train_seconds,
        "epochs": epochs,
        "steps": step,
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
    write_json(run_dir / "summary.json", summary)
    console.print(f"{dataset.title}: test accuracy {100 * test['accuracy']:.2f}% after "
                  f"{epochs} epochs, {train_seconds:.1f} s of training "
                  f"({summary['samples_per_second']:,.0f} samples/s). Run saved to {run_dir}")
    return summary


def check_finite(value: float, epoch: int, batch_idx: int, run_dir: Path) -> None:
    if math.isfinite(value):
        return
    write_json(run_dir / "summary.json", {"status": "failed", "error": "non-finite loss",
                                          "epoch": epoch + 1, "batch": batch_idx})
    raise TrainingError(
        f"the loss became {value} in epoch {epoch + 1}, batch {batch_idx}; training stopped. "
        f"Lower optim.lr (e.g. --set optim.lr=1e-4). The last good checkpoint is kept in "
        f"{run_dir / 'checkpoints'}"
    )


@torch.no_grad()
def save_predictions(model, dataset: Dataset, cfg: Config, device, path: Path) -> None:
    """The tutorial's figure: the first test batch, True vs Pred for its first images."""
    model.eval()
    images = dataset.test.images[: cfg.data.test_batch_size]
    preds = model(normalize(images.to(device), cfg.data.mean, cfg.data.std)).argmax(dim=1).cpu()
    plots.predictions_grid(images, dataset.test.labels[: len(images)], preds, dataset.classes,
                           path)
