"""What a run shows and records: the progress bars, the tutorial's lines, metrics.jsonl and
TensorBoard. Rank 0 alone writes; the other ranks get a quiet console."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

import digitlab
from digitlab.config import Config, to_toml
from digitlab.data import Dataset, Split
from digitlab.i18n import _
from digitlab.io import append_jsonl, atomic_write_text, write_jsonl
from digitlab.training.optim import current_lr
from digitlab.training.step import EpochTotals


class MetricsColumn(ProgressColumn):
    """The batch bar's running loss, accuracy and learning rate (its "metrics" field)."""

    def render(self, task: Task) -> Text:
        return Text(task.fields.get("metrics", ""))


def make_progress(console: Console) -> Progress:
    """The epoch and batch bars, in a terminal and in Jupyter (rich draws there through
    ipywidgets); elsewhere (a log file, a pipe) only the lines are printed."""
    live = console.is_terminal or (console.is_jupyter and
                                   importlib.util.find_spec("ipywidgets") is not None)
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                    MetricsColumn(), console=console, disable=not live)


BAR_EVERY = 32  # batches between moves of the batch bar (BatchBar)


class BatchBar:
    """The batch bar of a Progress: `start(epoch, num_batches)` each epoch, then
    `bar(batch, totals, optimizer)` after every batch. It moves about every BAR_EVERY batches
    and after the last: rich redraws about ten times a second, while a CPU step of the seed MLP
    takes under a millisecond. Only on the batches the loop syncs on anyway (every
    `check_every`-th from 0), since its running metrics read the device (a host sync on a GPU)."""

    def __init__(self, progress: Progress, num_batches: int, check_every: int):
        self.progress, self.num_batches = progress, num_batches
        self.every = check_every * -(-BAR_EVERY // check_every)  # a multiple of check_every
        self.task = progress.add_task("batches", total=num_batches)

    def start(self, epoch: int, num_batches: int) -> None:
        self.num_batches = num_batches
        self.progress.reset(self.task, total=num_batches,
                            description=_("epoch {epoch}").format(epoch=epoch + 1))

    def __call__(self, batch: int, totals: EpochTotals, optimizer) -> None:
        if batch % self.every == 0 or batch + 1 == self.num_batches:
            self.progress.update(self.task, completed=batch + 1,
                                 metrics=running_metrics(totals, optimizer))



def metrics_text(loss: float, accuracy: float, lr: float) -> str:
    return _("loss {loss:.4f} | acc {accuracy:.2f}% | lr {lr:.3g}").format(
        loss=loss, accuracy=100 * accuracy, lr=lr)


def running_metrics(totals: EpochTotals, optimizer) -> str:
    """The epoch so far and the current learning rate, for the batch bar: a host sync, so the
    loop asks only on the batches it checks (train.log_interval, every one on a CPU)."""
    return metrics_text(*totals.running(), current_lr(optimizer))


def header(dataset: Dataset, train: Split, val: Split | None, cfg: Config, device,
           run_dir: Path) -> str:
    """The run's first line: version, data and its splits, model, device, run directory."""
    sizes = (_("{train:,} train / {val:,} val / {test:,} test") if val else
             _("{train:,} train / {test:,} test")).format(
        train=len(train), val=len(val) if val else 0, test=len(dataset.test))
    return _("digitlab {version}: {dataset} ({sizes}, from {origin}) | model {model} | "
             "device {device} | run {run_dir}").format(
        version=digitlab.__version__, dataset=dataset.title, sizes=sizes, origin=dataset.origin,
        model=cfg.model.name, device=device, run_dir=run_dir)


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


class RunLog:
    """`log(record)` after each epoch: its line on the console, a line of RUN_DIR/metrics.jsonl
    (rank 0) and its scalars in RUN_DIR/tensorboard (train.tensorboard, rank 0)."""

    def __init__(self, console: Console, run_dir: Path, cfg: Config, main: bool):
        self.console, self.main, self.epochs = console, main, cfg.train.epochs
        self.log_interval, self.patience = cfg.train.log_interval, cfg.train.early_stop_patience
        self.metrics_path = run_dir / "metrics.jsonl"
        self.tensorboard = None
        if cfg.train.tensorboard and main:
            from torch.utils.tensorboard import SummaryWriter  # check_runtime made sure it imports

            self.tensorboard = SummaryWriter(log_dir=str(run_dir / "tensorboard"))

    def restart(self, history: list[dict], cfg: Config) -> None:
        """On resume (rank 0): metrics.jsonl as the checkpoint knows it, later lines dropped;
        config.toml as resumed (e.g. its new epoch count)."""
        if self.main:
            write_jsonl(self.metrics_path, history)
            atomic_write_text(self.metrics_path.parent / "config.toml", to_toml(cfg))

    def batch(self, epoch: int, batch: int, num_batches: int, loss: float) -> None:
        """The tutorial's batch line, every train.log_interval batches."""
        if batch % self.log_interval == 0:
            self.console.print(_("Epoch [{epoch}/{epochs}], Batch [{batch}/{batches}], "
                                 "Loss: {loss:.4f}").format(epoch=epoch + 1, epochs=self.epochs,
                                                           batch=batch, batches=num_batches,
                                                           loss=loss))

    def __call__(self, record: dict) -> None:
        if self.main:
            append_jsonl(self.metrics_path, record)
        if self.tensorboard is not None:
            for name, value in record.items():
                self.tensorboard.add_scalar(name, value, global_step=record["epoch"])
            self.tensorboard.flush()
        self.console.print(epoch_line(record))

    def early_stop(self, metric: str, state: dict) -> None:
        self.console.print(_("Early stopping: {metric} has not improved for {patience} epochs "
                             "(best {best:.4f} at epoch {best_epoch})").format(
            metric=metric, patience=self.patience, best=state["best"],
            best_epoch=state["best_epoch"]))

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
