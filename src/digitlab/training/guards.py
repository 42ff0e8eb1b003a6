"""Training guards. A loss, weights or an evaluation that stop being finite end the run with
advice, and no checkpoint is written from them: the last checkpoint on disk is always a good
one (finite weights, finite evaluation). A model whose outputs look like probabilities gets
one warning: the losses apply softmax themselves.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import torch
from rich.console import Console

from digitlab.errors import TrainingError
from digitlab.i18n import N_, _
from digitlab.io import write_json
from digitlab.training.distributed import World
from digitlab.training.losses import looks_like_probabilities

DOUBLE_SOFTMAX = N_("the model's outputs look like probabilities (or log-probabilities), but the "
                  "loss applies softmax itself: remove the final softmax and return raw logits")


def finite_weights(model: torch.nn.Module) -> bool:
    """Every floating-point parameter and buffer is finite: one host sync."""
    checks = [t.isfinite().all() for t in model.state_dict().values() if t.is_floating_point()]
    return bool(torch.stack(checks).all()) if checks else True


class Guard:
    """`guard.batch(...)` on the batches the loop checks, `guard.epoch(...)` before each
    checkpoint. Both raise TrainingError (after writing a failed summary.json on rank 0)."""

    def __init__(self, run_dir: Path, main: bool, console: Console):
        self.run_dir, self.main, self.console = run_dir, main, console
        self.warned = False

    @staticmethod
    def interval(device: torch.device, world: World, log_interval: int) -> int:
        """Which batches to check: .item() is free on the CPU, so every one there; on GPUs and
        under DDP it syncs with the device, so the log steps only (batch 0 among them)."""
        return 1 if device.type == "cpu" and not world.distributed else log_interval

    def batch(self, loss: torch.Tensor, logits: torch.Tensor, epoch: int, batch: int) -> float:
        """The batch loss as a float (.item() syncs with the device); stops on NaN or Inf."""
        value = loss.item()
        if not math.isfinite(value):
            self.stop(N_("non-finite loss"), epoch, batch, value)
        if batch == 0 and not self.warned and looks_like_probabilities(logits):
            self.warned = True  # once per run: one sync at the first batch of each epoch
            warnings.warn(_(DOUBLE_SOFTMAX), stacklevel=1)
            self.console.print(_("warning: {message}").format(message=_(DOUBLE_SOFTMAX)),
                               style="yellow")
        return value

    def epoch(self, record: dict, model: torch.nn.Module, epoch: int) -> None:
        """Stops unless the epoch's average loss, the weights and every evaluation are finite:
        only then may its checkpoint be written."""
        if not math.isfinite(record["train_loss"]):
            self.stop(N_("non-finite loss"), epoch, None, record["train_loss"])
        if not finite_weights(model):
            self.stop(N_("non-finite weights"), epoch, None, math.nan)
        for name, value in record.items():
            if isinstance(value, float) and not math.isfinite(value):
                self.stop(N_("non-finite evaluation"), epoch, None, value, name)

    def stop(self, error: str, epoch: int, batch: int | None, value: float,
             metric: str = "") -> None:
        if self.main:
            write_json(self.run_dir / "summary.json", {"status": "failed", "error": error,
                                                       "epoch": epoch + 1, "batch": batch})
        last = self.run_dir / "checkpoints" / "last.safetensors"
        kept = (_("The last good checkpoint (end of epoch {epoch}) is kept: {path}").format(
                    epoch=epoch, path=last) if last.exists()
                else _("No epoch has ended with finite weights and evaluation yet, so there "
                       "is no checkpoint."))
        raise TrainingError(_(
            "{problem}; training stopped. Lower optim.lr (e.g. --set optim.lr=1e-4) or clip "
            "gradients (--set train.clip_norm=1.0). {checkpoint}").format(
                problem=self.problem(error, epoch, batch, value, metric), checkpoint=kept))

    @staticmethod
    def problem(error: str, epoch: int, batch: int | None, value: float, metric: str) -> str:
        if error == "non-finite weights":
            return _("the model's weights became NaN or infinite in epoch {epoch}").format(
                epoch=epoch + 1)
        if error == "non-finite evaluation":
            return _("{metric} became {value} in epoch {epoch}").format(
                metric=metric, value=value, epoch=epoch + 1)
        where = (_("epoch {epoch}, batch {batch}") if batch is not None
                 else _("epoch {epoch} (seen in its average loss)")).format(epoch=epoch + 1,
                                                                           batch=batch)
        return _("the loss became {value} in {where}").format(value=value, where=where)
