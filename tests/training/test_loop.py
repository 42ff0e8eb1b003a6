"""The training loop end to end: what it guards, the run directory it claims, and its shape.

- a checkpoint is written only from finite weights and a finite evaluation (the NaN repro);
- summary.json and metrics.jsonl are strict JSON: never NaN or Infinity;
- the early-stopping line names the monitored metric, TensorBoard on or off;
- a run directory is locked for the whole run: a second run on it (another process, or
  --resume) gets one line and exit 2, and writes nothing; a resume removes orphan temps;
- an unwritable destination is one clear line, never a traceback;
- train() stays short and training/ imports nothing from viz/, serve/ or inference/.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from rich.console import Console
from safetensors.torch import save

import digitlab
from digitlab.errors import TrainingError
from digitlab.io import FolderLock
from digitlab.training import evaluate, loop
from digitlab.training.checkpoint import load_checkpoint
from digitlab.training.guards import Guard
from helpers import TINY, cli, snapshot

SRC = Path(digitlab.__file__).parent
DIGITS = ["--dataset", "digits", *TINY]


@pytest.fixture(autouse=True)
def _in_tmp(no_analysis, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)


def strict_json(text: str):
    """json.loads that refuses NaN and Infinity, as strict parsers (JavaScript, jq) do."""
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def read_metrics(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    return [strict_json(line) for line in path.read_text().splitlines()] if path.exists() else []


def model_tensors(path: Path) -> dict[str, torch.Tensor]:
    tensors, _meta = load_checkpoint(path)
    return {k: v for k, v in tensors.items() if k.startswith("model.")}


# ---- the shape of the code ------------------------------------------------------------------

def test_train_reads_top_to_bottom_in_at_most_150_lines():
    tree = ast.parse((SRC / "training" / "loop.py").read_text())
    (train,) = [node for node in tree.body
                if isinstance(node, ast.FunctionDef) and node.name == "train"]
    assert train.end_lineno - train.lineno + 1 <= 150


def test_training_imports_nothing_from_the_layers_above():
    above = ("digitlab.viz", "digitlab.serve", "digitlab.inference")
    for path in sorted((SRC / "training").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):  # function-level imports too
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert not name.startswith(above), f"{path.name} imports {name}"


# ---- NaN and Infinity -----------------------------------------------------------------------

NAN_REPRO = ["--dataset", "digits", "--epochs", "3", "--set", "optim.name=sgd",
             "--set", "optim.lr=1e38", "--set", "train.accum_steps=100"]


def test_nan_weights_are_never_checkpointed(tmp_path, capsys):
    """The issue's repro: one optimizer step at the end of epoch 1 (23 batches < 100) blows the
    weights up (test loss NaN) while the epoch's loss stays finite. Epoch 1 used to become the
    "last good checkpoint"; it must not."""
    run = tmp_path / "run"
    code, output = cli(capsys, "train", *NAN_REPRO, "--out", str(run))
    assert code == 1, output
    assert re.search(r"(weights became NaN or infinite|test_loss became nan) in epoch 1", output)
    assert "no checkpoint" in output and "Traceback" not in output
    assert not list((run / "checkpoints").iterdir())  # no "last good checkpoint" of NaNs
    assert read_metrics(run) == []
    summary = strict_json((run / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["epoch"] == 1


def test_nan_evaluation_keeps_the_last_good_checkpoint(tmp_path, capsys, monkeypatch):
    """Epoch 1 is good; epoch 2's evaluation is NaN: epoch 1's checkpoint stays, untouched."""
    run = tmp_path / "run"
    real = evaluate.evaluate_splits

    def nan_in_epoch_2(*args, **kwargs):
        record = real(*args, **kwargs)
        if (run / "checkpoints" / "last.safetensors").exists():
            record["test_loss"] = float("nan")
        return record

    monkeypatch.setattr(loop, "evaluate_splits", nan_in_epoch_2)
    code, output = cli(capsys, "train", *DIGITS, "--epochs", "3", "--out", str(run))
    assert code == 1, output
    assert "test_loss became nan in epoch 2" in output
    assert "The last good checkpoint (end of epoch 1) is kept" in output
    _tensors, meta = load_checkpoint(run / "checkpoints" / "last.safetensors")
    assert meta["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in model_tensors(
        run / "checkpoints" / "last.safetensors").values())
    assert [r["epoch"] for r in read_metrics(run)] == [1]
    summary = strict_json((run / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["error"] == "non-finite evaluation"


def test_nan_weights_stop_before_their_checkpoint(tmp_path):
    guard = Guard(tmp_path, main=True, console=Console(quiet=True))
    model = torch.nn.Linear(3, 2)
    record = {"epoch": 1, "train_loss": 0.5, "test_loss": 0.4, "test_accuracy": 0.9}
    guard.epoch(record, model, epoch=0)  # finite: goes on
    with torch.no_grad():
        model.weight[0, 0] = float("inf")
    with pytest.raises(TrainingError, match="weights became NaN or infinite in epoch 1"):
        guard.epoch(record, model, epoch=0)
    assert strict_json((tmp_path / "summary.json").read_text()) == {
        "status": "failed", "error": "non-finite weights", "epoch": 1, "batch": None}


# ---- early stopping, TensorBoard --------------------------------------------------------------

STOPS_AFTER_2 = ["--set", "data.val_size=0.2", "--set", "train.early_stop_patience=1",
                 "--set", "train.min_delta=100", "--set", "train.monitor=val_loss"]


@pytest.mark.parametrize("tensorboard", [False, True])
def test_early_stopping_names_the_monitored_metric(tmp_path, capsys, tensorboard):
    if tensorboard:
        pytest.importorskip("torch.utils.tensorboard")
    run = tmp_path / "run"
    code, output = cli(capsys, "train", *DIGITS, *STOPS_AFTER_2, "--epochs", "4",
                       "--set", f"train.tensorboard={str(tensorboard).lower()}",
                       "--out", str(run))
    assert code == 0, output
    assert "Early stopping: val_loss has not improved for 1 epochs (best " in output
    assert "at epoch 1)" in output
    assert bool(list(run.glob("tensorboard/events.out.tfevents.*"))) == tensorboard


# ---- the run directory lock -----------------------------------------------------------------

HOLD_LOCK = ("import sys\nfrom digitlab.io import FolderLock\n"
             "lock = FolderLock(sys.argv[1])\nassert lock.acquire()\n"
             "print('locked', flush=True)\nsys.stdin.read()\n")


@pytest.fixture
def locked_by_another_process():
    """lock(folder): another process takes folder's lock and holds it until the test ends."""
    holders = []

    def lock(folder: Path) -> subprocess.Popen:
        holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(folder)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        holders.append(holder)
        assert holder.stdout.readline().strip() == "locked"
        return holder

    yield lock
    for holder in holders:
        holder.stdin.close()
        holder.wait(timeout=30)


def test_out_locked_by_another_process(tmp_path, capsys, locked_by_another_process):
    run = tmp_path / "run"
    run.mkdir()
    holder = locked_by_another_process(run)
    before = snapshot(run)
    code, output = cli(capsys, "train", *DIGITS, "--epochs", "1", "--out", str(run))
    assert code == 2, output
    assert output.strip().splitlines() == [
        f"digitlab: error: {run} is in use by another digitlab run; wait for it to finish or "
        "choose another folder"]
    assert snapshot(run) == before  # nothing written
    holder.kill()  # kill -9: the kernel drops the lock, nothing is left to clean up
    holder.wait(timeout=30)
    code, output = cli(capsys, "train", *DIGITS, "--epochs", "1", "--out", str(run))
    assert code == 0, output


def test_resume_locked_by_another_process(tmp_path, capsys, locked_by_another_process):
    run = tmp_path / "run"
    code, output = cli(capsys, "train", *DIGITS, "--epochs", "1", "--out", str(run))
    assert code == 0, output
    locked_by_another_process(run)
    (run / "checkpoints" / ".last.safetensors.x1y2.tmp").write_bytes(b"a live writer's temp")
    before = snapshot(run)
    code, output = cli(capsys, "train", "--resume", str(run), "--epochs", "2")
    assert code == 2, output
    assert "in use by another digitlab run" in output
    assert snapshot(run) == before  # not even the temp of the lock holder is touched


def test_two_concurrent_runs_on_one_out(tmp_path):
    """Started together on one --out: one trains, the other is refused and writes nothing."""
    run = tmp_path / "run"
    argv = [sys.executable, "-m", "digitlab", "train", "--dataset", "synthetic", *TINY,
            "--epochs", "1", "--out", str(run)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=tmp_path, env=env) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in procs]
    assert sorted(code for code, _, _ in results) == [0, 2], results
    (_, _, refused_err), = [r for r in results if r[0] == 2]
    assert refused_err.startswith("digitlab: error: ") and str(run) in refused_err
    assert len(refused_err.strip().splitlines()) == 1
    assert strict_json((run / "summary.json").read_text())["status"] == "completed"
    assert len(read_metrics(run)) == 1


def test_fresh_out_filled_while_taking_the_lock(tmp_path, capsys, monkeypatch):
    """After the lock, --out is checked again: a run that got there first keeps it."""
    run = tmp_path / "run"
    real_acquire = FolderLock.acquire

    def someone_else_first(lock):
        (run / "config.toml").write_text("# another run's\n")
        return real_acquire(lock)

    monkeypatch.setattr(FolderLock, "acquire", someone_else_first)
    code, output = cli(capsys, "train", *DIGITS, "--epochs", "1", "--out", str(run))
    assert code == 2, output
    assert "already exists and is not empty" in output
    assert sorted(p.name for p in run.iterdir()) == [".lock", "config.toml"]
    assert (run / "config.toml").read_text() == "# another run's\n"


def test_resume_removes_orphan_temps(tmp_path, capsys):
    """A kill during an atomic write leaves `.<name>.<random>.tmp` behind; resume clears them."""
    run = tmp_path / "run"
    code, output = cli(capsys, "train", *DIGITS, "--epochs", "1", "--out", str(run))
    assert code == 0, output
    orphans = [run / "checkpoints" / ".last.safetensors.k1ll3d.tmp",
               run / ".metrics.jsonl.a8b9c0.tmp", run / "plots" / ".curves.png.zz.tmp"]
    for path in orphans:
        path.write_bytes(b"half a file")
    keep = run / "notes.tmp"  # not an atomic write's temp: left alone
    keep.write_text("mine")
    code, output = cli(capsys, "train", "--resume", str(run), "--epochs", "2")
    assert code == 0, output
    assert not any(path.exists() for path in orphans)
    assert keep.read_text() == "mine"
    assert [r["epoch"] for r in read_metrics(run)] == [1, 2]


# ---- unwritable destinations ------------------------------------------------------------------

def assert_one_clear_line(code: int, output: str, path) -> None:
    assert code == 2, output
    assert "Traceback" not in output
    (line,) = [line for line in output.splitlines() if line.startswith("digitlab: error:")]
    assert f"cannot write to {path}" in line


def test_out_under_a_file(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code, output = cli(capsys, "train", *DIGITS, "--epochs", "1", "--out",
                       str(blocker / "run"))
    assert_one_clear_line(code, output, blocker / "run")
    assert blocker.read_text() == "x"


def test_default_runs_folder_is_a_file(tmp_path, capsys):
    (tmp_path / "runs").write_text("not a folder")
    code, output = cli(capsys, "train", *DIGITS, "--epochs", "1")
    assert_one_clear_line(code, output, "runs")


def unwritable(folder: Path, monkeypatch) -> None:
    """folder refuses writes: by its mode bits, and where they bind nobody (root), by the
    answer the kernel gives a non-root user (EACCES) from the calls digitlab.io makes."""
    folder.chmod(0o555)
    if os.geteuid() != 0:
        return
    real_access, real_mkstemp = os.access, tempfile.mkstemp

    def inside(path) -> bool:
        return Path(path).resolve().is_relative_to(folder.resolve())

    def access(path, mode, *args, **kwargs):
        return False if inside(path) and mode & os.W_OK else real_access(path, mode, *args,
                                                                          **kwargs)

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and inside(dir):
            raise PermissionError(13, "Permission denied", str(dir))
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(os, "access", access)
    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


@pytest.fixture
def trained(tmp_path, capsys):
    run = tmp_path / "run"
    code, output = cli(capsys, "train", *DIGITS, "--epochs", "1", "--out", str(run))
    assert code == 0, output
    yield run
    for path in (run, run / "plots"):
        path.chmod(0o755)


def test_resume_of_an_unwritable_run(trained, capsys, monkeypatch):
    unwritable(trained, monkeypatch)
    before = snapshot(trained)
    code, output = cli(capsys, "train", "--resume", str(trained), "--epochs", "2")
    assert_one_clear_line(code, output, trained)
    assert snapshot(trained) == before


@pytest.mark.parametrize("command", [["evaluate"], ["plot", "run"]])
def test_evaluate_into_an_unwritable_run(trained, capsys, monkeypatch, command):
    unwritable(trained, monkeypatch)
    code, output = cli(capsys, *command, str(trained))
    assert_one_clear_line(code, output, trained)


# ---- resuming a checkpoint written before "step" became "batches" ----------------------------

def rewrite_as_legacy(path: Path) -> None:
    """The checkpoint as digitlab wrote it before the rename: batches counted under "step",
    and no digest (files of that time load unchecked)."""
    tensors, meta = load_checkpoint(path)
    for entry in (meta, meta["state"], meta["metrics"], *meta["state"]["history"]):
        entry["step"] = entry.pop("batches")
    path.write_bytes(save(tensors, metadata={"digitlab": json.dumps(meta)}))


def test_legacy_checkpoint_resumes_exactly(tmp_path, capsys):
    a, b = tmp_path / "A", tmp_path / "B"
    code, output = cli(capsys, "train", *DIGITS, "--epochs", "2", "--out", str(a))
    assert code == 0, output
    code, output = cli(capsys, "train", *DIGITS, "--epochs", "1", "--out", str(b))
    assert code == 0, output
    rewrite_as_legacy(b / "checkpoints" / "last.safetensors")
    code, output = cli(capsys, "train", "--resume", str(b), "--epochs", "2")
    assert code == 0, output
    ta, tb = (model_tensors(run / "checkpoints" / "last.safetensors") for run in (a, b))
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
    records = read_metrics(b)
    assert [r["batches"] for r in records] == [r["batches"] for r in read_metrics(a)]
    assert all("step" not in r for r in records)
