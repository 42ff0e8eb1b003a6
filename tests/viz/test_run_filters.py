"""`digitlab plot filters RUN_DIR` draws the model the run reports: best.safetensors after
early stopping, else last.safetensors (the one rule, checkpoint.reported_checkpoint)."""

from __future__ import annotations

import pytest
import torch

from digitlab.config import Config, apply_overrides, to_dict, to_toml
from digitlab.models import build_model
from digitlab.training.checkpoint import save_checkpoint
from digitlab.viz import figures


@pytest.mark.parametrize("patience,drawn", [(2, "best"), (0, "last")])
def test_filters_come_from_the_reported_checkpoint(patience, drawn, tmp_path, monkeypatch):
    cfg = apply_overrides(Config(), {"model.name": "mlp", "model.hidden": [16],
                                     "data.val_size": 0.1,
                                     "train.early_stop_patience": patience})
    (tmp_path / "config.toml").write_text(to_toml(cfg))
    meta = {"config": to_dict(cfg), "classes": list("0123456789"), "mean": 0.1307, "std": 0.3081}
    first_layers = {}
    for seed, name in enumerate(("best", "last")):
        torch.manual_seed(seed)
        model = build_model(cfg.model, 10)
        first_layers[name] = next(v for k, v in model.state_dict().items() if k.endswith("weight"))
        save_checkpoint(tmp_path / "checkpoints" / f"{name}.safetensors", model, None, meta)
    drawn_weights = []
    monkeypatch.setattr(figures, "filters",
                        lambda weight, path, title: drawn_weights.append(weight))
    figures.run_filters(tmp_path, tmp_path / "filters.png")
    (weight,) = drawn_weights
    assert torch.equal(weight, first_layers[drawn])
