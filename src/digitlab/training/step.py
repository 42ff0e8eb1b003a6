"""One training batch, and the running totals of an epoch.

`TrainStep` does forward and loss in one closure, which L-BFGS calls again as often as it
needs; then backward, scaled for gradient accumulation and for this rank's share of the batch
under DDP; and every train.accum_steps-th batch (and the last of an epoch): unscale, clip,
optimizer step, schedule. `EpochTotals` sums loss and accuracy on the device: no host syncs.
"""

from __future__ import annotations

import contextlib
import functools

import torch

from digitlab.config import TrainConfig
from digitlab.training import distributed
from digitlab.training.fast_adam import fast_adam_step
from digitlab.training.losses import Autocast, Criterion
from digitlab.training.optim import Schedule, is_lbfgs


def make_autocast(device: torch.device, amp: str, cache: bool = True) -> Autocast:
    """train.amp as a context factory: bf16 or fp16 autocast, or nothing ("off"). cache:
    autocast's cache of weights cast in the context (off while a CUDA graph is captured)."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    if dtype is None:
        return contextlib.nullcontext
    return functools.partial(torch.autocast, device.type, dtype=dtype, cache_enabled=cache)


class TrainStep:
    """`step(images, labels, batch, batches_done) -> (logits, loss)` for one batch.

    batch: its index in this epoch; batches_done: batches trained before it in the whole run
    (the temperature schedule follows it). `start_epoch` says how long the epoch is, whether
    its loss is class-balanced, (DDP) each batch's rank weight, and the EpochTotals every step
    adds its loss and accuracy to. A CUDA run may replay the step as a graph instead
    (training/graphs.py, GraphedStep).
    """

    graphs = {"used": False, "reason": None}  # summary.json's "cuda_graphs" (a GraphedStep's)

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 schedule: Schedule, scaler: torch.amp.GradScaler, autocast: Autocast,
                 criterion: Criterion, cfg: TrainConfig):
        self.model, self.optimizer, self.schedule, self.scaler = model, optimizer, schedule, scaler
        self.autocast, self.criterion, self.cfg = autocast, criterion, cfg
        self.lbfgs = is_lbfgs(optimizer)
        self.fast_step = fast_adam_step(optimizer, scaler)  # fused Adam(W): step and zero_grad
        self.num_batches, self.balanced, self.rank_weights = 0, True, None
        self.totals: EpochTotals | None = None
        optimizer.zero_grad(set_to_none=True)

    def start_epoch(self, num_batches: int, balanced: bool, totals: EpochTotals,
                    rank_weights: list[float] | None = None) -> None:
        self.num_batches, self.balanced, self.rank_weights = num_batches, balanced, rank_weights
        self.totals = totals

    def pop_capture_seconds(self) -> float:
        """Seconds spent capturing graphs since the last call, kept out of the epoch's time."""
        return 0.0

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, batch: int,
                 batches_done: int) -> tuple[torch.Tensor, torch.Tensor]:
        targets = self.criterion.targets(images, labels)  # the teacher runs once per batch

        def forward_and_loss() -> tuple[torch.Tensor, torch.Tensor]:
            with self.autocast():
                logits = self.model(images)
                return logits, self.criterion(logits, targets, batches_done, self.balanced)

        if self.lbfgs:
            logits, loss = self._lbfgs_step(forward_and_loss)
        else:
            logits, loss = forward_and_loss()
            rank_weight = self.rank_weights[batch] if self.rank_weights is not None else 1.0
            share = self.cfg.accum_steps / rank_weight
            self.scaler.scale(loss / share if share != 1 else loss).backward()  # x / 1 is x
            if (batch + 1) % self.cfg.accum_steps == 0 or batch + 1 == self.num_batches:
                self._optimizer_step()
        self.totals.add(logits, labels, loss)
        return logits, loss

    def _optimizer_step(self) -> None:
        if self.cfg.clip_norm or self.cfg.clip_value:
            self.scaler.unscale_(self.optimizer)  # clip true gradients, not scaled ones
            self.clip_gradients()
        if self.fast_step is not None:
            self.fast_step()
        else:
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
        self.schedule.after_batch()

    def clip_gradients(self) -> None:
        """train.clip_norm, then train.clip_value, on the gradients as they are."""
        if self.cfg.clip_norm:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip_norm)
        if self.cfg.clip_value:
            torch.nn.utils.clip_grad_value_(self.model.parameters(), self.cfg.clip_value)

    def _lbfgs_step(self, forward_and_loss) -> tuple[torch.Tensor, torch.Tensor]:
        """L-BFGS calls the closure (forward and backward on this batch) up to max_iter times;
        the first evaluation's logits and loss go to the epoch's statistics."""
        evaluations = []

        def closure() -> torch.Tensor:
            self.optimizer.zero_grad(set_to_none=True)
            logits, loss = forward_and_loss()
            loss.backward()
            evaluations.append((logits, loss))
            return loss

        self.optimizer.step(closure)
        self.schedule.after_batch()
        return evaluations[0]


class EpochTotals:
    """Loss x samples, correct predictions and samples seen in one epoch, summed on the device
    (no syncs) and reduced over the ranks once, at the end."""

    def __init__(self, device: torch.device):
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), dtype=torch.long, device=device)
        self.seen = 0

    def add(self, logits: torch.Tensor, labels: torch.Tensor, loss: torch.Tensor) -> None:
        self.loss_sum.add_(loss.detach().float(), alpha=len(labels))  # one op, nothing new
        self.correct += (logits.detach().argmax(dim=1) == labels).sum()
        self.seen += len(labels)

    def running(self) -> tuple[float, float]:
        """(mean loss, accuracy) of this rank's epoch so far: one host sync, so the loop asks
        only on the batches it syncs on anyway (the progress bar's fields)."""
        loss_sum, correct = torch.stack([self.loss_sum, self.correct.float()]).tolist()
        return loss_sum / max(self.seen, 1), correct / max(self.seen, 1)

    def reduce(self, world: distributed.World) -> tuple[float, float, int]:
        """(mean loss, accuracy, samples) over every rank: one sync."""
        seen = torch.tensor(float(self.seen), device=self.loss_sum.device)
        loss_sum, correct, seen = distributed.all_reduce_sum(
            torch.stack([self.loss_sum, self.correct.float(), seen]), world).tolist()
        return loss_sum / seen, correct / seen, int(seen)
