"""A small residual network: a 3x3 stem, then two basic blocks per stage (model.channels),
each later stage halving the resolution; global average pooling and a linear head."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from digitlab.models.activations import build_activation
from digitlab.models.init import initialize
from digitlab.models.registry import MODELS

if TYPE_CHECKING:
    from digitlab.config import ModelConfig


class BasicBlock(nn.Module):
    def __init__(self, cfg: ModelConfig, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.act1 = build_activation(cfg, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.act2 = build_activation(cfg, c_out)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:  # match shape so the sum is defined
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        return self.act2(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, cfg: ModelConfig, num_classes: int):
        super().__init__()
        widths = cfg.channels
        self.stem = nn.Sequential(nn.Conv2d(1, widths[0], 3, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0]), build_activation(cfg, widths[0]))
        blocks, c_in = [], widths[0]
        for i, c_out in enumerate(widths):
            blocks += [BasicBlock(cfg, c_in, c_out, stride=1 if i == 0 else 2),
                       BasicBlock(cfg, c_out, c_out, stride=1)]
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity(),
                                  nn.Linear(c_in, num_classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(images)))


@MODELS.register("resnet", "small ResNet: two basic blocks per model.channels stage")
def build_resnet(cfg: ModelConfig, num_classes: int) -> nn.Module:
    return initialize(ResNet(cfg, num_classes), cfg.init)
