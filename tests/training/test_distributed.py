"""DDP under torchrun: 2 CPU processes with gloo match one process, and resume works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from digitlab.cli import main
from digitlab.errors import UsageError
from digitlab.training.distributed import resolve_device

# 2,000 synthetic images less a 57-image validation split: the last global batch of each
# epoch holds 43 images and splits 22 + 21 over the two ranks (weighted by EpochOrder.rank_weights)
ARGS = ["--dataset", "synthetic", "--set", "data.batch_size=50", "--set", "model.dropout=0",
        "--set", "data.val_size=57", "--device", "cpu"]


def torchrun(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")  # 2 processes on 2 cores: no oversubscription
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "digitlab", *args]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def weights(run: Path) -> dict[str, torch.Tensor]:
    tensors = load_file(run / "checkpoints" / "last.safetensors")
    return {k: v for k, v in tensors.items() if k.startswith("model.")}


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp") / "single"
    assert main(["train", *ARGS, "--epochs", "2", "--out", str(out)]) == 0
    return out


def test_two_processes_match_one(tmp_path, single):
    out = tmp_path / "ddp"
    result = torchrun("train", *ARGS, "--epochs", "2", "--out", str(out))
    # rank 0 alone printed the run's lines
    assert result.stdout.count("Test Accuracy:") == 1
    a, b = weights(single), weights(out)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)
    ddp_metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    one_metrics = [json.loads(x) for x in (single / "metrics.jsonl").read_text().splitlines()]
    assert [m["batches"] for m in ddp_metrics] == [m["batches"] for m in one_metrics]
    for d, s in zip(ddp_metrics, one_metrics, strict=True):  # all-reduced over both ranks
        assert d["train_accuracy"] == pytest.approx(s["train_accuracy"], abs=1e-3)
        assert d["train_loss"] == pytest.approx(s["train_loss"], rel=1e-3)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs"] == 2
    assert not list(out.rglob("*.tmp"))


def test_resume_under_ddp(tmp_path, single):
    out = tmp_path / "ddp-resume"
    torchrun("train", *ARGS, "--epochs", "1", "--out", str(out))
    torchrun("train", "--resume", str(out), "--epochs", "2")
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]
    a, b = weights(single), weights(out)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)


def test_global_batch_must_divide(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "digitlab", "train", "--dataset", "synthetic", "--set", "data.batch_size=51",
           "--out", str(tmp_path / "x")]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "divide evenly" in result.stderr + result.stdout
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("name", ["bogus", "cuda:x", "meta", "xla", "cpu:"])
def test_unknown_device_is_a_usage_error(name):
    with pytest.raises(UsageError, match="device"):
        resolve_device(name)


@pytest.mark.parametrize("command", [["train", "--dataset", "synthetic", "--epochs", "1"],
                                     ["predict", "RUN", "x.png"]])
def test_unknown_device_from_the_cli(command, capsys, tmp_path, monkeypatch, digits_run):
    monkeypatch.chdir(tmp_path)
    argv = [str(digits_run) if a == "RUN" else a for a in command]
    assert main([*argv, "--device", "bogus"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'bogus'" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()
