"""Accuracy gates: the tutorial's recipe on the real MNIST files, through the CLI.

Marked slow (deselect with -m "not slow"); skipped when the shared MNIST folder is absent.

One run of the default recipe (5 epochs) serves both gates: the recipe has a constant learning
rate and each epoch's order depends only on (seed, epoch), so its first epoch is exactly what
`digitlab train --epochs 1` computes; metrics.jsonl records the test accuracy after each epoch.
"""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from digitlab.cli import main
from digitlab.config import Config
from digitlab.training.bench import CONFIGS
from helpers import block_network, mnist_dir_or_skip

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def default_run(tmp_path_factory, session_cache):
    folder = mnist_dir_or_skip()
    base = tmp_path_factory.mktemp("accuracy")
    run = base / "run"
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DIGITLAB_CACHE", str(session_cache))
        mp.delenv("DIGITLAB_DATA", raising=False)
        mp.chdir(base)
        block_network(mp)  # the files are local: nothing may be downloaded
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["train", "--data-dir", str(folder), "--out", str(run)])
    assert code == 0, err.getvalue()
    summary = json.loads((run / "summary.json").read_text())
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return summary, metrics


def test_default_recipe_is_mnist_for_5_epochs(default_run):
    summary, metrics = default_run
    assert summary["status"] == "completed"
    assert summary["dataset"] == "mnist"
    assert summary["epochs"] == Config().train.epochs == 5
    assert [m["epoch"] for m in metrics] == [1, 2, 3, 4, 5]


def test_one_epoch_reaches_95_percent(default_run):
    _, metrics = default_run
    assert metrics[0]["test_accuracy"] >= 0.95, metrics[0]


def test_five_epochs_reach_97_percent(default_run):
    summary, metrics = default_run
    assert summary["test_accuracy"] == metrics[-1]["test_accuracy"]
    assert summary["test_accuracy"] >= 0.97, summary


def test_fast99_reaches_99_percent_in_one_epoch(tmp_path, session_cache):
    """configs/fast99.toml (seed 42, the default): one epoch to >= 99.0% (99.1-99.2% measured
    over seeds; docs/benchmarks.md)."""
    folder = mnist_dir_or_skip()
    run = tmp_path / "fast99"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DIGITLAB_CACHE", str(session_cache))
        with contextlib.redirect_stdout(io.StringIO()):
            code = main(["train", "--config", str(CONFIGS / "fast99.toml"), "--data-dir",
                         str(folder), "--out", str(run)])
    assert code == 0
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["epochs"], summary["model"], summary["test_shifts"]) == (1, "smallcnn", 1)
    assert summary["test_accuracy"] >= 0.99
