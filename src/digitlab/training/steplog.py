"""Per-step rows: with train.log_every_steps = N, every N-th optimizer step writes one row to
RUN_DIR/steps.jsonl and the same row to RUN_DIR/steps.csv; with train.tensorboard its loss
and learning rate go to TensorBoard too (step/loss, step/lr). Rank 0 alone writes.

A row: step (optimizer steps done in the run), epoch (1-based, as in metrics.jsonl), batch
(batches done in that epoch), loss (of the batch that completed the step), lr (after the
step), seconds (training seconds of the run so far: evaluation excluded, resumes included).
Reading the loss is one host sync per row and none on the other steps. A resume keeps the
rows up to the checkpoint's step count and drops the later ones, as metrics.jsonl does.
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import torch

from digitlab.config import TrainConfig
from digitlab.io import append_jsonl, atomic_write_text, finite_json, write_jsonl
from digitlab.training.optim import Schedule, current_lr

FIELDS = ("step", "epoch", "batch", "loss", "lr", "seconds")


def read_rows(path: Path) -> list[dict]:
    """The rows of steps.jsonl; a line a kill cut short is skipped."""
    rows = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
    return rows


def csv_text(rows: list[dict], header: bool) -> str:
    """Rows as CSV (null, a non-finite value, is an empty cell)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, FIELDS, lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(finite_json(rows))
    return out.getvalue()


class StepLog:
    """`steps(epoch, batch, loss, seconds_before, started)` after every batch; it writes only
    when an optimizer step has just completed a multiple of train.log_every_steps."""

    def __init__(self, run_dir: Path, cfg: TrainConfig, main: bool, schedule: Schedule,
                 optimizer: torch.optim.Optimizer, tensorboard=None):
        self.every = cfg.log_every_steps if main else 0
        self.jsonl, self.csv = run_dir / "steps.jsonl", run_dir / "steps.csv"
        self.schedule, self.optimizer, self.tensorboard = schedule, optimizer, tensorboard
        self.logged = schedule.steps  # the step of the last row (or the checkpoint's)
        if main:
            self.restart(schedule.steps)

    def restart(self, steps: int) -> None:
        """The rows as the checkpoint knows them: step <= steps; the CSV rebuilt from them."""
        if not (self.jsonl.exists() or self.csv.exists()):
            return
        rows = [r for r in read_rows(self.jsonl) if r.get("step", steps + 1) <= steps]
        write_jsonl(self.jsonl, rows)
        atomic_write_text(self.csv, csv_text(rows, header=True))

    def __call__(self, epoch: int, batch: int, loss: torch.Tensor, seconds_before: float,
                 started: float) -> None:
        step = self.schedule.steps
        if not self.every or step == self.logged or step % self.every:
            return
        self.logged = step
        row = {"step": step, "epoch": epoch + 1, "batch": batch + 1, "loss": loss.item(),
               "lr": current_lr(self.optimizer),
               "seconds": seconds_before + time.perf_counter() - started}
        append_jsonl(self.jsonl, row)
        with open(self.csv, "a", encoding="utf-8", newline="") as f:
            f.write(csv_text([row], header=f.tell() == 0))
        if self.tensorboard is not None:
            for name in ("loss", "lr"):
                self.tensorboard.add_scalar(f"step/{name}", row[name], global_step=step)
