"""Exact resume on the CPU: a run stopped after epoch k (cleanly, or by SIGKILL mid-epoch) and
resumed with `digitlab train --resume RUN_DIR` ends bit-identical to one that never stopped.

The end-of-run analysis (plots, report.html) is switched off in this process; it runs after
the summary and does not touch the checkpoints.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from digitlab.data import DeviceLoader
from digitlab.training.checkpoint import load_checkpoint
from helpers import TINY, cli, snapshot


@pytest.fixture(autouse=True)
def _no_analysis(no_analysis, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)


def read_metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def without_timing(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in records]


def last_tensors(run: Path) -> dict[str, torch.Tensor]:
    tensors, _ = load_checkpoint(run / "checkpoints" / "last.safetensors")
    return tensors


def assert_same_tensors(a: dict, b: dict, prefixes=("model.", "optim.", "rng.")) -> None:
    keys_a = sorted(k for k in a if k.startswith(prefixes))
    keys_b = sorted(k for k in b if k.startswith(prefixes))
    assert keys_a == keys_b
    assert any(k.startswith("model.") for k in keys_a)
    for key in keys_a:
        assert a[key].dtype == b[key].dtype, key
        assert torch.equal(a[key], b[key]), f"{key} differs"


def assert_no_tmp_files(run: Path) -> None:
    leftovers = [p for p in run.rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers, leftovers


# ---- clean stop after epoch 1, resume to 3 ---------------------------------------------------

RESUME_ARGS = ["--device", "cpu", "--dataset", "digits", "--set", "model.name=mlp",
               "--set", "model.hidden=[64]", "--set", "model.dropout=0.2"]


def test_resume_is_bit_exact(tmp_path, capsys):
    a, b = tmp_path / "A", tmp_path / "B"
    code, output = cli(capsys, "train", *RESUME_ARGS, "--epochs", "3", "--out", str(a))
    assert code == 0, output
    code, output = cli(capsys, "train", *RESUME_ARGS, "--epochs", "1", "--out", str(b))
    assert code == 0, output
    assert len(read_metrics(b)) == 1
    code, output = cli(capsys, "train", "--resume", str(b), "--epochs", "3")
    assert code == 0, output
    assert "Resuming" in output

    assert_same_tensors(last_tensors(a), last_tensors(b))
    summary_a = json.loads((a / "summary.json").read_text())
    summary_b = json.loads((b / "summary.json").read_text())
    assert summary_b["status"] == "completed"
    assert summary_a["test_loss"] == summary_b["test_loss"]
    assert summary_a["test_accuracy"] == summary_b["test_accuracy"]
    assert summary_a["batches"] == summary_b["batches"]
    assert summary_b["epochs"] == 3
    metrics_a, metrics_b = read_metrics(a), read_metrics(b)
    assert len(metrics_a) == len(metrics_b) == 3
    assert without_timing(metrics_a) == without_timing(metrics_b)
    assert "epochs = 3" in (b / "config.toml").read_text()  # the new epoch count is recorded
    assert_no_tmp_files(b)


def test_resume_a_finished_run_changes_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    code, output = cli(capsys, "train", "--dataset", "digits", *TINY, "--epochs", "1",
                       "--out", str(run))
    assert code == 0, output
    before = last_tensors(run)
    code, output = cli(capsys, "train", "--resume", str(run))
    assert code == 0, output
    assert_same_tensors(before, last_tensors(run))
    assert len(read_metrics(run)) == 1


# ---- interrupted (Ctrl-C) after epoch 1 of 3, resumed: augmentation, class balance ----------

def interrupt_before_epoch(epoch: int, monkeypatch) -> None:
    """A Ctrl-C just as `epoch` (0-based) starts: the run stops after epoch `epoch`'s
    predecessor, with its planned length (and balance schedule) unchanged."""
    real_set_epoch = DeviceLoader.set_epoch

    def set_epoch(self, number, *args, **kwargs):
        if self.shuffle and number == epoch:
            raise KeyboardInterrupt
        return real_set_epoch(self, number, *args, **kwargs)

    monkeypatch.setattr(DeviceLoader, "set_epoch", set_epoch)


@pytest.mark.parametrize("sets", [
    ["data.augment_shift=2"],
    ["data.balance=sampler", "data.imbalance_ratio=5", "data.balance_finetune_epochs=1"],
    ["data.balance=lecun", "data.imbalance_ratio=5", "data.balance_finetune_epochs=1",
     "data.augment_shift=1"],
    ["data.augment_shift=1", "data.augment_stretch=0.3", "data.augment_rotate=10",
     "data.augment_scale=0.1", "data.augment_aspect=0.2", "data.augment_shear=10",
     "data.augment_translate=1.5", "data.augment_elastic=1.5", "data.augment_thickness=0.5",
     "data.augment_lowres=0.3", "data.deskew=true"],
], ids=["augment", "sampler", "lecun-augment", "augment-all"])
def test_interrupted_resume_is_bit_exact(sets, tmp_path, capsys, monkeypatch):
    """Epoch 2 draws balanced (or shifted) batches and epoch 3 fine-tunes at the true
    frequencies: both must match a run that never stopped, batch for batch."""
    argv = [*RESUME_ARGS, "--epochs", "3"]
    for item in sets:
        argv += ["--set", item]
    a, b = tmp_path / "A", tmp_path / "B"
    code, output = cli(capsys, "train", *argv, "--out", str(a))
    assert code == 0, output
    with monkeypatch.context() as patch:
        interrupt_before_epoch(1, patch)
        code, output = cli(capsys, "train", *argv, "--out", str(b))
    assert code == 130, output
    assert [r["epoch"] for r in read_metrics(b)] == [1]
    code, output = cli(capsys, "train", "--resume", str(b))
    assert code == 0, output
    assert_same_tensors(last_tensors(a), last_tensors(b))
    metrics_a, metrics_b = without_timing(read_metrics(a)), without_timing(read_metrics(b))
    assert metrics_a == metrics_b and len(metrics_b) == 3
    if "data.balance=lecun" in sets:  # lecun's balanced epochs are longer than the last one
        batches = [r["batches"] for r in metrics_b]
        assert batches[0] == batches[1] - batches[0] > batches[2] - batches[1]


# ---- SIGKILL mid-epoch ----------------------------------------------------------------------

# (epochs, batch size): if a run ever finishes before the kill lands, the next, longer one is
# tried; the test never skips.
KILL_PLANS = [(3, 16), (4, 8), (6, 4)]
KILL_ARGS = ["--device", "cpu", "--dataset", "synthetic", "--set", "model.name=mlp",
             "--set", "model.hidden=[16]", "--set", "model.dropout=0.1"]


def kill_mid_epoch(run: Path, epochs: int, batch: int, log: Path) -> bool:
    """Start a training subprocess, SIGKILL it in epoch 2; False if it got to its last epoch
    (or finished) first."""
    argv = [sys.executable, "-m", "digitlab", "train", *KILL_ARGS, "--epochs", str(epochs),
            "--set", f"data.batch_size={batch}", "--out", str(run)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                env=dict(os.environ), cwd=run.parent)
        try:
            metrics = run / "metrics.jsonl"
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                if metrics.is_file() and metrics.read_text().count("\n") >= 1:
                    break
                if proc.poll() is not None:
                    break
                time.sleep(0.02)
            else:
                pytest.fail(f"no epoch finished within 180 s; log:\n{log.read_text()}")
            if proc.poll() is None:
                # about half way into epoch 2: half of epoch 1's length
                first = json.loads(metrics.read_text().splitlines()[0])
                time.sleep(min(1.0, first["epoch_seconds"] / 2))
                os.kill(proc.pid, signal.SIGKILL)
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    summary = run / "summary.json"
    completed = summary.is_file() and json.loads(summary.read_text()).get("status") == "completed"
    if completed or len(read_metrics(run)) >= epochs:
        return False
    assert code == -signal.SIGKILL, f"exit {code}; log:\n{log.read_text()}"
    return True


def test_resume_after_sigkill(tmp_path, capsys):
    for epochs, batch in KILL_PLANS:
        b = tmp_path / f"B-{epochs}-{batch}"
        if kill_mid_epoch(b, epochs, batch, tmp_path / f"log-{epochs}-{batch}.txt"):
            break
    else:
        pytest.fail("every run finished before SIGKILL could interrupt it")

    killed_epochs = len(read_metrics(b))
    assert 1 <= killed_epochs < epochs
    code, output = cli(capsys, "train", "--resume", str(b))
    assert code == 0, output
    summary = json.loads((b / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs"] == epochs

    a = tmp_path / "A"
    code, output = cli(capsys, "train", *KILL_ARGS, "--epochs", str(epochs),
                       "--set", f"data.batch_size={batch}", "--out", str(a))
    assert code == 0, output

    assert_same_tensors(last_tensors(a), last_tensors(b), prefixes=("model.",))
    assert_same_tensors(last_tensors(a), last_tensors(b))
    metrics_b = read_metrics(b)
    assert [r["epoch"] for r in metrics_b] == list(range(1, epochs + 1))
    assert without_timing(read_metrics(a)) == without_timing(metrics_b)
    assert_no_tmp_files(b)
    checkpoints = sorted((b / "checkpoints").iterdir())
    assert checkpoints
    for path in checkpoints:
        tensors, meta = load_checkpoint(path)
        assert 1 <= meta["epoch"] <= epochs
        assert all(torch.isfinite(t).all() for k, t in tensors.items() if k.startswith("model."))


# ---- refusals -------------------------------------------------------------------------------

def test_resume_refusals(tmp_path, capsys):
    run = tmp_path / "run"
    code, output = cli(capsys, "train", "--dataset", "digits", *TINY, "--epochs", "2",
                       "--out", str(run))
    assert code == 0, output
    before = snapshot(run)

    code, output = cli(capsys, "train", "--resume", str(run), "--epochs", "1")
    assert code == 2
    assert "2 epochs" in output and "--epochs" in output

    code, output = cli(capsys, "train", "--resume", str(run), "--set", "optim.lr=0.1")
    assert code == 2
    assert "--set" in output

    code, output = cli(capsys, "train", "--resume", str(run), "--dataset", "digits")
    assert code == 2
    assert "--dataset" in output

    assert snapshot(run) == before  # a refused resume writes nothing


def test_resume_of_a_non_run_dir(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    for target in (empty, tmp_path / "missing"):
        code, output = cli(capsys, "train", "--resume", str(target))
        assert code == 2
        assert "not a run directory" in output
    assert not any(empty.iterdir())


@pytest.mark.parametrize("schedule", ["onecycle", "cosine"])
def test_resume_fixed_length_schedule_with_other_epochs(tmp_path, capsys, schedule):
    run = tmp_path / "run"
    code, output = cli(capsys, "train", "--dataset", "digits", *TINY, "--epochs", "1",
                       "--set", f"sched.name={schedule}", "--out", str(run))
    assert code == 0, output
    before = snapshot(run)
    code, output = cli(capsys, "train", "--resume", str(run), "--epochs", "2")
    assert code == 2
    assert f"a {schedule} schedule" in output and "original --epochs (1)" in output
    assert snapshot(run) == before


# ---- L-BFGS ---------------------------------------------------------------------------------

LBFGS_ARGS = ["--dataset", "digits", *TINY, "--set", "optim.name=lbfgs",
              "--set", "optim.max_iter=5", "--set", "data.batch_size=512", "--set", "optim.lr=1"]


def test_lbfgs_resume_is_bit_exact(tmp_path, capsys):
    a, b = tmp_path / "A", tmp_path / "B"
    code, output = cli(capsys, "train", *LBFGS_ARGS, "--epochs", "2", "--out", str(a))
    assert code == 0, output
    code, output = cli(capsys, "train", *LBFGS_ARGS, "--epochs", "1", "--out", str(b))
    assert code == 0, output
    tensors = last_tensors(b)
    assert any(k.startswith("optim.") for k in tensors)  # L-BFGS's history is saved
    code, output = cli(capsys, "train", "--resume", str(b), "--epochs", "2")
    assert code == 0, output
    assert_same_tensors(last_tensors(a), last_tensors(b))
    assert without_timing(read_metrics(a)) == without_timing(read_metrics(b))
    summary_a = json.loads((a / "summary.json").read_text())
    summary_b = json.loads((b / "summary.json").read_text())
    assert summary_a["test_loss"] == summary_b["test_loss"]
