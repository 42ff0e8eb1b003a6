"""Live metrics: train.log_every_steps writes RUN_DIR/steps.jsonl and steps.csv (and TensorBoard
scalars) every N optimizer steps; a resume gives exactly the rows of a run that never stopped;
the batch bar shows the epoch's running loss, accuracy and the learning rate, read only on the
batches the loop syncs on anyway."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
from rich.console import Console

from digitlab.config import build_config
from digitlab.training import loop
from digitlab.training.guards import Guard
from digitlab.training.progress import (
    BAR_EVERY,
    BatchBar,
    make_progress,
    metrics_text,
    running_metrics,
)
from digitlab.training.step import EpochTotals, TrainStep

BASE = ["data.name=digits", "train.device=cpu", "model.name=mlp", "model.hidden=[16]",
        "data.batch_size=128"]


def run(out: Path, *sets: str, resume: bool = False) -> dict:
    cfg, _explicit = build_config(sets=[*BASE, f"train.out={out}", *sets])
    return loop.train(cfg, console=Console(quiet=True), resume=resume)


def jsonl_rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "steps.jsonl").read_text().splitlines()]


def csv_rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "steps.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    types = {"step": int, "epoch": int, "batch": int, "loss": float, "lr": float,
             "seconds": float}
    return [{k: types[k](v) if v != "" else None for k, v in row.items()} for row in rows]


def epoch_steps(run_dir: Path, accum: int) -> list[int]:
    """Optimizer steps per epoch, from the batches metrics.jsonl counts."""
    batches = [json.loads(line)["batches"]
               for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    per_epoch = [b - a for a, b in zip([0, *batches[:-1]], batches, strict=True)]
    return [math.ceil(n / accum) for n in per_epoch]


@pytest.mark.parametrize("accum", [1, 2])
def test_rows_at_every_nth_step_and_csv_equals_jsonl(tmp_path, accum):
    out = tmp_path / "run"
    run(out, "train.epochs=2", "train.log_every_steps=3", f"train.accum_steps={accum}")
    rows = jsonl_rows(out)
    per_epoch = epoch_steps(out, accum)
    assert [r["step"] for r in rows] == list(range(3, sum(per_epoch) + 1, 3))
    assert rows, "the run is long enough for rows"
    for row in rows:
        assert list(row) == ["step", "epoch", "batch", "loss", "lr", "seconds"]
        before = sum(per_epoch[:row["epoch"] - 1])
        assert before < row["step"] <= before + per_epoch[row["epoch"] - 1]
        # the batch that completed the step (the last batch of an epoch may complete it early)
        assert math.ceil(row["batch"] / accum) == row["step"] - before
        assert math.isfinite(row["loss"]) and row["lr"] > 0 and row["seconds"] > 0
    assert [r["seconds"] for r in rows] == sorted(r["seconds"] for r in rows)
    assert csv_rows(out) == rows


def test_off_by_default_writes_no_files(tmp_path):
    out = tmp_path / "run"
    run(out, "train.epochs=1")
    assert not (out / "steps.jsonl").exists() and not (out / "steps.csv").exists()


def test_resume_gives_the_rows_of_an_uninterrupted_run(tmp_path, monkeypatch):
    """Killed in the middle of epoch 2 (rows past the checkpoint on disk), then resumed: the
    files hold exactly the rows of the run that never stopped (timing aside)."""
    sets = ("train.epochs=3", "train.log_every_steps=2", "model.dropout=0.2")
    a, b = tmp_path / "A", tmp_path / "B"
    run(a, *sets)
    per_epoch = epoch_steps(a, 1)
    stop_at = per_epoch[0] + per_epoch[1] // 2 + 1  # batches done when the "kill" comes
    real_call = TrainStep.__call__

    def interrupted(self, images, labels, batch, batches_done):
        if batches_done == stop_at:
            raise KeyboardInterrupt
        return real_call(self, images, labels, batch, batches_done)

    with monkeypatch.context() as patch:
        patch.setattr(TrainStep, "__call__", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run(b, *sets)
    assert max(r["step"] for r in jsonl_rows(b)) > per_epoch[0]  # rows after the checkpoint
    run(b, *sets, resume=True)

    def untimed(rows):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]

    assert untimed(jsonl_rows(b)) == untimed(jsonl_rows(a))
    assert untimed(csv_rows(b)) == untimed(csv_rows(a))
    assert len(jsonl_rows(b)) == sum(per_epoch) // 2


def test_step_scalars_go_to_tensorboard(tmp_path):
    pytest.importorskip("torch.utils.tensorboard")
    accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator")
    out = tmp_path / "run"
    run(out, "train.epochs=1", "train.log_every_steps=2", "train.tensorboard=true")
    events = accumulator.EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    rows = jsonl_rows(out)
    for name in ("loss", "lr"):
        scalars = events.Scalars(f"step/{name}")
        assert [s.step for s in scalars] == [r["step"] for r in rows]
        assert [s.value for s in scalars] == pytest.approx([r[name] for r in rows])




def test_good_log_every_steps():
    cfg, _explicit = build_config(sets=["train.log_every_steps=50"])
    assert cfg.train.log_every_steps == 50


# ---- the progress bar's fields --------------------------------------------------------------

def test_running_metrics_of_the_epoch_so_far():
    totals = EpochTotals(torch.device("cpu"))
    labels = torch.tensor([0, 1, 1, 0])
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [2.0, 0.0]])  # 3 of 4 right
    totals.add(logits[:2], labels[:2], torch.tensor(0.2))
    totals.add(logits[2:], labels[2:], torch.tensor(0.6))
    loss, accuracy = totals.running()
    assert loss == pytest.approx(0.4) and accuracy == 0.75
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    text = running_metrics(totals, optimizer)
    assert text == metrics_text(0.4, 0.75, 0.01) == "loss 0.4000 | acc 75.00% | lr 0.01"


def test_progress_shows_the_fields_in_a_terminal():
    console = Console(record=True, force_terminal=True, width=160)
    with make_progress(console) as progress:
        assert not progress.disable
        epochs = progress.add_task("epochs", total=3)  # no fields: renders without them
        batches = progress.add_task("epoch 1", total=10)
        progress.update(batches, advance=4, metrics=metrics_text(0.1234, 0.9, 3e-4))
        progress.advance(epochs)
        progress.refresh()
    text = console.export_text()
    assert "loss 0.1234 | acc 90.00% | lr 0.0003" in text
    assert "4/10" in text and "1/3" in text


def test_progress_is_off_outside_a_terminal():
    with make_progress(Console(file=open("/dev/null", "w"))) as progress:  # noqa: SIM115
        assert progress.disable


@pytest.mark.parametrize("log_interval,every", [(5, 35), (1, BAR_EVERY), (40, 40)])
def test_progress_fields_are_read_only_on_the_synced_batches(tmp_path, monkeypatch,
                                                              log_interval, every):
    """As on a GPU: the loop syncs every train.log_interval batches, and the bar reads the
    running totals only on some of those (about every BAR_EVERY batches) and after the last.
    Before, it read them on every synced batch: every batch on a CPU."""
    monkeypatch.setattr(Guard, "interval", staticmethod(lambda device, world, every: every))
    calls = []
    real_running = EpochTotals.running
    monkeypatch.setattr(EpochTotals, "running",
                        lambda self: calls.append(self.seen) or real_running(self))
    out = tmp_path / "run"
    run(out, "train.epochs=1", f"train.log_interval={log_interval}", "data.batch_size=8")
    batches = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])["batches"]
    assert batches > 2 * every
    read_after = sorted({*range(0, batches, every), batches - 1})  # 0-based batch indices
    assert [seen // 8 - 1 for seen in calls[:-1]] == read_after[:-1]
    assert calls[-1] > calls[-2]  # the last batch (it may be a partial one)


def test_batch_bar_moves_to_the_batch_done():
    console = Console(record=True, force_terminal=True, width=160)
    totals = EpochTotals(torch.device("cpu"))
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    with make_progress(console) as progress:
        bar = BatchBar(progress, 70, 1)
        bar.start(0, 70)
        for batch in range(40):
            totals.add(torch.tensor([[1.0, 0.0]]), torch.tensor([0]), torch.tensor(0.5))
            bar(batch, totals, optimizer)
        assert progress.tasks[bar.task].completed == 33  # moved after batches 0 and 32
        bar(69, totals, optimizer)
        assert progress.tasks[bar.task].completed == 70  # the last one
        assert progress.tasks[bar.task].description == "epoch 1"
