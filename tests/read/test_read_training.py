"""`digitlab train --task read` end to end on small data: the run directory, the checkpoint
that load_run reads, the report, exact resume, and the settings a read run refuses."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from digitlab.config import Config, apply_overrides, build_config
from digitlab.errors import ConfigError
from digitlab.training.checkpoint import load_checkpoint
from helpers import cli

SMALL = ["--device", "cpu", "--dataset", "synthetic", "--task", "read",
         "--set", "model.channels=[8, 16]", "--set", "model.hidden=[32]",
         "--set", "data.line_max_digits=4", "--set", "optim.lr=0.003"]


@pytest.fixture(scope="module")
def read_run(tmp_path_factory) -> Path:
    from digitlab.cli import main

    run = tmp_path_factory.mktemp("read") / "run"
    assert main(["train", *SMALL, "--epochs", "3", "--set", "data.val_size=500",
                 "--out", str(run)]) == 0
    return run


def test_a_read_run_has_its_metrics_and_report(read_run):
    summary = json.loads((read_run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["task"] == "read"
    assert summary["model"] == "crnn" and summary["epochs"] == 3
    assert 0 <= summary["test_cer"] < 0.9  # it has started to read
    assert summary["test_accuracy"] == summary["test_sequence_accuracy"]
    records = [json.loads(line) for line in (read_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    for key in ("train_loss", "train_accuracy", "val_loss", "val_cer", "test_loss",
                "test_accuracy", "test_sequence_accuracy", "test_cer", "lr"):
        assert key in records[-1], key
    assert records[-1]["test_loss"] < records[0]["test_loss"]
    evaluation = json.loads((read_run / "evaluation.json").read_text())
    assert evaluation["test_sequence_accuracy"] == pytest.approx(summary["test_accuracy"])
    assert set(evaluation["accuracy_by_length"]) == {"3", "4", "5", "6", "7", "8"}
    assert (read_run / "plots" / "curves.png").is_file()
    assert "test_cer" in (read_run / "report.html").read_text(encoding="utf-8")


def test_a_read_checkpoint_loads_for_inference(read_run):
    from digitlab.data import load_dataset
    from digitlab.data.lines import compose
    from digitlab.inference.run import load_run
    from digitlab.training.sequence import greedy, steps_for

    run = load_run(read_run, device="cpu")
    assert run.meta["task"] == "read" and run.cfg.train.task == "read"
    assert run.meta["columns_per_step"] == run.model.columns_per_step == 4
    assert run.classes == tuple("0123456789") and not run.model.training
    test = apply_overrides(Config(), {"data.name": "synthetic"})
    split = load_dataset(test.data).test
    lines = compose(split.images, split.labels, 8, torch.Generator().manual_seed(0), 3, 4)
    with torch.no_grad():
        logits = run.model((lines.images - run.mean) / run.std)
    decoded = greedy(logits, steps_for(lines.widths, run.model.columns_per_step))
    assert len(decoded) == 8 and all(0 < d.confidence <= 1 for d in decoded)
    assert any(decoded_line.labels for decoded_line in decoded)  # it reads digits


def test_read_resume_is_bit_exact(tmp_path, capsys, no_analysis):
    a, b = tmp_path / "A", tmp_path / "B"
    code, output = cli(capsys, "train", *SMALL, "--epochs", "2", "--out", str(a))
    assert code == 0, output
    code, output = cli(capsys, "train", *SMALL, "--epochs", "1", "--out", str(b))
    assert code == 0, output
    code, output = cli(capsys, "train", "--resume", str(b), "--epochs", "2")
    assert code == 0 and "Resuming" in output, output
    tensors_a, meta_a = load_checkpoint(a / "checkpoints" / "last.safetensors")
    tensors_b, meta_b = load_checkpoint(b / "checkpoints" / "last.safetensors")
    assert sorted(tensors_a) == sorted(tensors_b)
    for key in tensors_a:
        assert torch.equal(tensors_a[key], tensors_b[key]), key
    assert meta_a["metrics"]["test_loss"] == meta_b["metrics"]["test_loss"]


@pytest.mark.parametrize("settings, key", [
    (["train.task=read"], "crnn"),
    (["model.name=crnn"], "crnn"),
    (["train.task=read", "model.name=crnn", "loss.label_smoothing=0.1"], "loss.*"),
    (["train.task=read", "model.name=crnn", "data.deskew=true"], "data.deskew"),
    (["train.task=read", "model.name=crnn", "train.accum_steps=2"], "train.accum_steps"),
    (["train.task=read", "model.name=crnn", "optim.name=lbfgs"], "optim.name"),
    (["train.task=write"], "train.task"),
    (["data.line_max_digits=21"], "data.line_max_digits"),
    (["data.line_min_digits=5", "data.line_max_digits=4"], "data.line_min_digits"),
    (["data.line_touching=1.5"], "data.line_touching"),
])
def test_settings_a_read_run_refuses(settings, key):
    with pytest.raises(ConfigError, match=key.replace("*", r"\*")) as refused:
        build_config(sets=settings)
    assert "\n" not in str(refused.value)


def test_read_preset_loads():
    cfg, _explicit = build_config(Path(__file__).resolve().parents[2] / "configs" / "read.toml")
    assert (cfg.train.task, cfg.model.name, cfg.train.preset) == ("read", "crnn", "read")


def test_the_bengali_read_preset_is_the_read_preset_on_cmaterdb():
    """configs/read-bangla.toml keeps read.toml's model, lines and augmentation: only the
    digits, the number of (shorter) epochs and the log interval differ."""
    configs = Path(__file__).resolve().parents[2] / "configs"
    latin, _explicit = build_config(configs / "read.toml")
    bengali, _explicit = build_config(configs / "read-bangla.toml")
    assert (bengali.data.name, bengali.train.preset) == ("cmaterdb", "read-bangla")
    same = dataclasses.replace(
        bengali, data=dataclasses.replace(bengali.data, name=latin.data.name),
        train=dataclasses.replace(bengali.train, preset=latin.train.preset,
                                  epochs=latin.train.epochs,
                                  log_interval=latin.train.log_interval))
    assert same == latin


def test_plot_schedule_counts_the_batches_of_a_read_run():
    """A read epoch holds lines of about (min + max) / 2 digits, not one image per sample:
    `digitlab plot schedule` drew a read config's schedule over the classification count."""
    import math

    from digitlab.config import build_config
    from digitlab.data import load_dataset
    from digitlab.training.setup import batches_per_epoch, training_splits

    cfg, _sources = build_config(None, ["train.task=read", "model.name=crnn"],
                                 {"dataset": "digits"})
    train, _val = training_splits(load_dataset(cfg.data), cfg)
    expected = math.ceil(len(train) / 5.5 / cfg.data.batch_size)
    assert batches_per_epoch(cfg) == expected
    assert expected < math.ceil(len(train) / cfg.data.batch_size)


def test_a_read_run_with_test_shifts_reports_both_readings(tmp_path):
    """summary.json's test and the report's evaluation.json read the lines at three heights,
    as `digitlab read` does; the plain reading is kept beside them."""
    from digitlab.cli import main

    run = tmp_path / "run"
    assert main(["train", *SMALL, "--epochs", "2", "--set", "data.test_shifts=1",
                 "--out", str(run)]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["test_shifts"] == 1
    assert 0 <= summary["test_sequence_accuracy_read_once"] <= 1
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert evaluation["test_sequence_accuracy"] == pytest.approx(summary["test_accuracy"])
