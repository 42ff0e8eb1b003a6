"""Training guards: a non-finite loss stops the run with advice and keeps the last good
checkpoint; a model that already applies softmax gets one clear warning."""

from __future__ import annotations

import json
import re
import warnings

import pytest
import torch
from torch import nn

from digitlab.training import losses, setup
from digitlab.training.checkpoint import load_checkpoint
from digitlab.training.losses import looks_like_probabilities
from digitlab.viz import analysis
from helpers import TINY, cli


@pytest.fixture(autouse=True)
def _no_analysis(no_analysis, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)


# ---- NaN guard ------------------------------------------------------------------------------

def test_nan_loss_stops_with_advice(tmp_path, capsys):
    run = tmp_path / "run"
    code, output = cli(capsys, "train", "--device", "cpu", "--dataset", "digits", "--epochs", "2",
                       "--set", "optim.name=sgd", "--set", "optim.lr=1e6", "--out", str(run))
    assert code == 1, output
    match = re.search(r"loss became (nan|inf|-inf) in epoch (\d+), batch (\d+)", output)
    assert match, output
    assert "optim.lr" in output and "clip" in output
    assert "Traceback" not in output
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed"
    assert summary["epoch"] == int(match.group(2)) and summary["batch"] == int(match.group(3))


def test_nan_after_a_good_epoch_keeps_its_checkpoint(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.safetensors"
    real_build_loss = losses.build_loss

    class PoisonAfterEpochOne(nn.Module):
        """The real loss, until epoch 1's checkpoint exists; then NaN."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, logits, targets):
            loss = self.inner(logits, targets)
            return loss * float("nan") if last.exists() else loss

    monkeypatch.setattr(losses, "build_loss",
                        lambda *args, **kwargs: PoisonAfterEpochOne(real_build_loss(*args,
                                                                                    **kwargs)))
    code, output = cli(capsys, "train", "--dataset", "digits", *TINY, "--epochs", "3",
                       "--out", str(run))
    assert code == 1, output
    assert re.search(r"loss became nan in epoch 2, batch 0\b", output), output
    assert "checkpoint" in output
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["epoch"] == 2

    tensors, meta = load_checkpoint(last)
    assert meta["epoch"] == 1
    weights = {k: t for k, t in tensors.items() if k.startswith("model.")}
    assert weights and all(torch.isfinite(t).all() for t in weights.values())
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1]
    for path in (run / "checkpoints").iterdir():
        load_checkpoint(path)  # every file left behind is whole


# ---- double softmax -------------------------------------------------------------------------

def test_looks_like_probabilities():
    gen = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(16, 10, generator=gen)
    assert looks_like_probabilities(logits.softmax(dim=1))
    assert looks_like_probabilities(logits.log_softmax(dim=1))
    assert not looks_like_probabilities(logits)
    assert not looks_like_probabilities(logits.sigmoid())  # in [0, 1] but rows do not sum to 1
    assert not looks_like_probabilities(-logits.abs())  # <= 0 but not log-probabilities


@pytest.mark.parametrize("dtype", [pytest.param(torch.bfloat16, id="bf16"),
                                   pytest.param(torch.float16, id="fp16")])
def test_looks_like_probabilities_low_precision(dtype):
    logits = 3 * torch.randn(64, 10, generator=torch.Generator().manual_seed(0))
    assert looks_like_probabilities(logits.softmax(dim=1).to(dtype))
    assert looks_like_probabilities(logits.log_softmax(dim=1).to(dtype))
    assert not looks_like_probabilities(logits.to(dtype))


def double_softmax_warnings(record) -> list:
    return [w for w in record if issubclass(w.category, UserWarning)
            and "softmax" in str(w.message)]


def train_softmax_models(monkeypatch) -> None:
    """Make train() build the configured model with a softmax on top. Its checkpoints do not
    fit the config any more, so the command's analysis (which reloads them) is skipped."""
    real_build_model = setup.build_model  # training.setup.initial_model builds it for train()
    monkeypatch.setattr(setup, "build_model", lambda *args, **kwargs: nn.Sequential(
        real_build_model(*args, **kwargs), nn.Softmax(dim=1)))
    monkeypatch.setattr(analysis, "evaluate_run", lambda *args, **kwargs: {})


def test_softmax_model_warns_once(tmp_path, capsys, monkeypatch):
    train_softmax_models(monkeypatch)
    with pytest.warns(UserWarning, match="softmax") as record:
        warnings.simplefilter("always")
        code, output = cli(capsys, "train", "--dataset", "digits", *TINY, "--epochs", "2",
                           "--out", str(tmp_path / "run"))
    assert code == 0, output
    assert len(double_softmax_warnings(record)) == 1
    assert "logits" in str(double_softmax_warnings(record)[0].message)
    assert output.count("softmax") >= 1  # also shown on the console


def test_softmax_model_warns_under_bf16_autocast(tmp_path, capsys, monkeypatch):
    train_softmax_models(monkeypatch)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        code, output = cli(capsys, "train", "--dataset", "digits", *TINY, "--epochs", "1",
                           "--set", "train.amp=bf16", "--out", str(tmp_path / "run"))
    assert code == 0, output
    assert len(double_softmax_warnings(record)) == 1


def test_logit_model_does_not_warn(tmp_path, capsys):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        code, output = cli(capsys, "train", "--dataset", "digits", *TINY, "--epochs", "1",
                           "--out", str(tmp_path / "run"))
    assert code == 0, output
    assert double_softmax_warnings(record) == []
