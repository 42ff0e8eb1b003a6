"""A small configurable convnet: one conv block per entry of model.channels, then a linear head.

Each block is conv(kernel_size, same padding) -> [batchnorm] -> activation -> 2x2 pool, so
28x28 becomes 14x14, 7x7, 3x3, 1x1 after 1..4 blocks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from digitlab.models.activations import build_activation
from digitlab.models.init import initialize
from digitlab.models.registry import MODELS

if TYPE_CHECKING:
    from digitlab.config import ModelConfig


def conv_block(cfg: ModelConfig, c_in: int, c_out: int) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, cfg.kernel_size, padding=cfg.kernel_size // 2,
                  bias=not cfg.batchnorm),
        nn.BatchNorm2d(c_out) if cfg.batchnorm else nn.Identity(),
        build_activation(cfg, c_out),
        nn.MaxPool2d(2) if cfg.pool == "max" else nn.AvgPool2d(2),
    ]


@MODELS.register("cnn", "small convnet: model.channels conv blocks with pooling, then linear")
def build_cnn(cfg: ModelConfig, num_classes: int) -> nn.Module:
    layers: list[nn.Module] = []
    c_in, size = 1, 28
    for c_out in cfg.channels:
        layers += conv_block(cfg, c_in, c_out)
        c_in, size = c_out, size // 2
    layers += [nn.Flatten(), nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity(),
               nn.Linear(c_in * size * size, num_classes)]
    return initialize(nn.Sequential(*layers), cfg.init)
