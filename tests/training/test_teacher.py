"""Distillation: the teacher must speak the student's classes."""

from __future__ import annotations

import pytest
from rich.console import Console

from digitlab.config import Config, apply_overrides, to_dict, to_toml
from digitlab.errors import ConfigError
from digitlab.models import build_model
from digitlab.training import train
from digitlab.training.checkpoint import save_checkpoint


def write_teacher(folder, classes: list[str]):
    """A run directory holding an untrained mlp whose checkpoint names `classes`."""
    cfg = apply_overrides(Config(), {"model.name": "mlp", "model.hidden": [8]})
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "config.toml").write_text(to_toml(cfg))
    meta = {"config": to_dict(cfg), "classes": classes, "mean": 0.1307, "std": 0.3081}
    save_checkpoint(folder / "checkpoints" / "last.safetensors",
                    build_model(cfg.model, len(classes)), None, meta)
    return folder


def student(teacher, out):
    return apply_overrides(Config(), {
        "data.name": "synthetic", "model.name": "mlp", "model.hidden": [8],
        "loss.name": "kl-div", "loss.teacher": str(teacher), "train.epochs": 1,
        "train.device": "cpu", "train.out": str(out)})


def test_a_teacher_of_other_classes_is_refused_before_anything_is_written(tmp_path):
    teacher = write_teacher(tmp_path / "teacher", list("abcdefghij"))
    with pytest.raises(ConfigError, match="trained on other classes"):
        train(student(teacher, tmp_path / "run"), console=Console(quiet=True))
    assert not (tmp_path / "run").exists()


def test_a_teacher_of_the_same_classes_is_used(tmp_path):
    teacher = write_teacher(tmp_path / "teacher", [str(d) for d in range(10)])
    summary = train(student(teacher, tmp_path / "run"), console=Console(quiet=True))
    assert summary["status"] == "completed"
