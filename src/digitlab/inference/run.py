"""`load_run`: the one way to load a trained run for inference.

A run directory or one of its checkpoint files gives the model the run reports (see
`digitlab.training.checkpoint.reported_checkpoint`), with what it needs to be used: config,
class names, the normalization it was trained with and the temperature its probabilities are
divided by (training.calibration; 1 when none was fitted). Nothing is unpickled, and nothing in
the file is trusted: `load_model` checks the metadata, the shapes and the weights first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from digitlab.config import Config
from digitlab.training.checkpoint import checked_temperature, load_model
from digitlab.training.distributed import resolve_device


@dataclass(frozen=True)
class Run:
    model: torch.nn.Module  # eval mode, on `device`
    cfg: Config
    classes: tuple[str, ...]
    mean: float  # the Normalize the model was trained with, in pixel units / 255
    std: float
    device: torch.device
    meta: dict = field(default_factory=dict)  # the checkpoint's metadata; {} for a model in memory
    path: Path | None = None  # the checkpoint file; None for a model in memory
    temperature: float = 1.0  # probabilities are softmax(logits / temperature); > 0


def load_run(source: str | Path, device: str = "auto") -> Run:
    """The run's reported model on `device`; a CheckpointError naming the file otherwise."""
    model, cfg, meta, path = load_model(source)  # classes, mean and std are checked there
    dev = resolve_device(device)
    return Run(model.to(dev), cfg, tuple(meta["classes"]), float(meta["mean"]),
               float(meta["std"]), dev, meta, path, checked_temperature(meta, path))
