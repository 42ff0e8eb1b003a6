"""The small CNN of the public "99% on MNIST in about a second" recipes, and fast99's model.

    conv 5x5 (model.channels[0], no padding): 28 -> 24, 2x2 pool -> 12, activation
    conv 3x3 (model.channels[1], no padding): 12 -> 10, 2x2 pool -> 5, activation
    flatten (channels[1] x 5 x 5) -> a linear layer and the activation per model.hidden width
    -> dropout -> linear to the classes

Pooling comes before the activation: for max pooling and a non-decreasing activation (ReLU and
most others) the result is the same as activation-then-pool, and the activation touches a
quarter of the values. Unpadded convolutions and the hidden layer make it cheaper than `cnn`
at the same accuracy (docs/benchmarks.md, fast99).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from digitlab.models.activations import build_activation
from digitlab.models.init import initialize
from digitlab.models.registry import MODELS

if TYPE_CHECKING:
    from digitlab.config import ModelConfig

KERNELS = (5, 3)  # one per conv block; model.channels names their widths
SIDE = 5  # the feature map's side after both blocks: (28 - 4) / 2 = 12, (12 - 2) / 2 = 5


def block(cfg: ModelConfig, c_in: int, c_out: int, kernel: int) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, kernel, bias=not cfg.batchnorm),
        nn.BatchNorm2d(c_out) if cfg.batchnorm else nn.Identity(),
        nn.MaxPool2d(2) if cfg.pool == "max" else nn.AvgPool2d(2),
        build_activation(cfg, c_out),
    ]


@MODELS.register("smallcnn", "the public small CNN: 5x5 and 3x3 unpadded convs (model.channels, "
                 "two widths), pooling before the activation, linear layers of model.hidden")
def build_smallcnn(cfg: ModelConfig, num_classes: int) -> nn.Module:
    (c1, c2) = cfg.channels  # the config check refuses other lengths
    layers = [*block(cfg, 1, c1, KERNELS[0]), *block(cfg, c1, c2, KERNELS[1]), nn.Flatten()]
    width = c2 * SIDE * SIDE
    for hidden in cfg.hidden:
        layers += [nn.Linear(width, hidden), build_activation(cfg, hidden)]
        width = hidden
    layers += [nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity(),
               nn.Linear(width, num_classes)]
    return initialize(nn.Sequential(*layers), cfg.init)
