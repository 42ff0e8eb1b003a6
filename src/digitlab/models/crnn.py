"""CRNN for whole numbers: a conv stack reads a normalized line (data.lines: [B, 1, 32, W]),
1-d convolutions over its columns read the digits in context, and every step scores the C
classes and the CTC blank (index C, the last).

    conv blocks (model.channels): conv(kernel_size) -> batchnorm -> activation -> max pool,
        the first two pooling 2x2, later ones the height only: 32 rows -> 32 / 2**blocks
    columns: a conv over the remaining rows and 3 steps -> model.hidden[0] features, then a
        conv over 5 steps; dropout (model.dropout) before and after it
    head: a 1x1 conv to C + 1 outputs -> logits [B, T, C + 1], T = ceil(W / 4)

Receptive field: about 34 columns, two digits of a normalized line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from digitlab.models.activations import build_activation
from digitlab.models.init import initialize
from digitlab.models.registry import MODELS

if TYPE_CHECKING:
    from digitlab.config import ModelConfig

HEIGHT = 32  # input rows (data.lines.HEIGHT)
# convolutions extend the edge pixels past the border: zeros would draw a line of faint ink
# (the standardized background is below 0) and make the first and last digits harder to read
PAD = "replicate"


class CRNN(nn.Module):
    columns_per_step = 4  # input columns per output step: T = ceil(W / 4)

    def __init__(self, cfg: ModelConfig, num_classes: int):
        super().__init__()
        layers: list[nn.Module] = []
        c_in, rows = 1, HEIGHT
        for i, c_out in enumerate(cfg.channels):
            layers += [nn.Conv2d(c_in, c_out, cfg.kernel_size, padding=cfg.kernel_size // 2,
                                 padding_mode=PAD, bias=False),
                       nn.BatchNorm2d(c_out), build_activation(cfg, c_out),
                       nn.MaxPool2d((2, 2 if i < 2 else 1), ceil_mode=True)]
            c_in, rows = c_out, rows // 2
        if len(cfg.channels) == 1:  # still 4 columns per step
            layers.append(nn.MaxPool2d((1, 2), ceil_mode=True))
        self.features = nn.Sequential(*layers)
        hidden = cfg.hidden[0]
        # the column layers are convs of one row (kernel (1, k)), so that model.init and
        # channels-last treat them as every conv
        self.columns = nn.Sequential(
            nn.Conv2d(c_in, hidden, (rows, 3), padding=(0, 1), padding_mode=PAD, bias=False),
            nn.BatchNorm2d(hidden), build_activation(cfg, hidden))
        self.context = nn.Sequential(
            nn.Dropout(cfg.dropout),
            nn.Conv2d(hidden, hidden, (1, 5), padding=(0, 2), padding_mode=PAD, bias=False),
            nn.BatchNorm2d(hidden), build_activation(cfg, hidden), nn.Dropout(cfg.dropout))
        self.head = nn.Conv2d(hidden, num_classes + 1, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.context(self.columns(self.features(images)))  # [B, hidden, 1, T]
        return self.head(x).flatten(1, 2).transpose(1, 2)  # [B, T, C + 1]


@MODELS.register("crnn", "whole numbers (train.task = 'read'): conv stack, 1-d convs over the "
                 "columns, CTC blank last")
def build_crnn(cfg: ModelConfig, num_classes: int) -> nn.Module:
    return initialize(CRNN(cfg, num_classes), cfg.init)
