"""A configurable MLP: hidden sizes, activation, dropout, batchnorm, init scheme."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from digitlab.models.activations import build_activation
from digitlab.models.init import initialize
from digitlab.models.registry import MODELS

if TYPE_CHECKING:
    from digitlab.config import ModelConfig


@MODELS.register("mlp", "MLP with model.hidden sizes, activation, dropout, batchnorm, init")
def build_mlp(cfg: ModelConfig, num_classes: int) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    width = 28 * 28
    for hidden in cfg.hidden:
        layers.append(nn.Linear(width, hidden, bias=not cfg.batchnorm))
        if cfg.batchnorm:
            layers.append(nn.BatchNorm1d(hidden))
        layers.append(build_activation(cfg, hidden))
        if cfg.dropout > 0:
            layers.append(nn.Dropout(cfg.dropout))
        width = hidden
    layers.append(nn.Linear(width, num_classes))
    return initialize(nn.Sequential(*layers), cfg.init)
