"""LeNet-5 (LeCun et al., 1998), on 28x28 inputs padded to the original 32x32 field."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from digitlab.models.activations import build_activation
from digitlab.models.init import initialize
from digitlab.models.registry import MODELS

if TYPE_CHECKING:
    from digitlab.config import ModelConfig


class LeNet5(nn.Module):
    def __init__(self, cfg: ModelConfig, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, kernel_size=5, padding=2),  # 28x28 -> 28x28 (as 32x32 unpadded)
            build_activation(cfg, 6),
            nn.AvgPool2d(2),  # the paper's subsampling: -> 14x14
            nn.Conv2d(6, 16, kernel_size=5),  # -> 10x10
            build_activation(cfg, 16),
            nn.AvgPool2d(2),  # -> 5x5
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120), build_activation(cfg, 120),
            nn.Linear(120, 84), build_activation(cfg, 84),
            nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity(),
            nn.Linear(84, num_classes),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images))


@MODELS.register("lenet5", "LeNet-5: two 5x5 convolutions with average pooling, then 120-84")
def build_lenet5(cfg: ModelConfig, num_classes: int) -> nn.Module:
    return initialize(LeNet5(cfg, num_classes), cfg.init)
