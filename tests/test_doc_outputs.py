"""The marked console-output blocks of the docs match a real run (tools/doc_outputs.py)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from helpers import REPO, mnist_dir_or_skip

TOOL = REPO / "tools" / "doc_outputs.py"
spec = importlib.util.spec_from_file_location("doc_outputs_under_test", TOOL)
doc_outputs = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = doc_outputs  # dataclasses look their module up there
spec.loader.exec_module(doc_outputs)


def test_every_registered_output_is_used_and_every_marker_is_registered():
    # blocks() exits on an unknown name, so reaching the comparison means all are registered
    assert doc_outputs.marked_names() == set(doc_outputs.OUTPUTS)


def test_masks_hide_durations_and_timestamps_only():
    a = "Epoch 1 finished. Loss: 0.2687 | 2.3 s\nrun runs/20261122-201500-mnist-seed-mlp, 9.5 s of"
    b = "Epoch 1 finished. Loss: 0.2687 | 0.8 s\nrun runs/20261130-072733-mnist-seed-mlp, 13 s of"
    assert doc_outputs.masked(a) == doc_outputs.masked(b)
    assert doc_outputs.masked(a) != doc_outputs.masked(a.replace("0.2687", "0.2686"))


def test_hidden_lines_become_one_ellipsis():
    lines = ["head", "Epoch [1/5], Batch [200/938]", "Epoch [2/5], Batch [0/938]", "tail"]
    assert doc_outputs.shown(lines, r"head|tail") == ["head", "...", "tail"]


@pytest.mark.parametrize("name", sorted(doc_outputs.OUTPUTS))
def test_block_matches_a_real_run(name, monkeypatch):
    if doc_outputs.OUTPUTS[name].mnist:
        folder = mnist_dir_or_skip()
        monkeypatch.setenv("DIGITLAB_DATA", str(folder))
    done = subprocess.run([sys.executable, str(TOOL), "--check", name],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
