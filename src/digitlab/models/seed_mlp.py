"""The tutorial's DigitClassifier: 784 -> 128 -> 64 -> 10, ReLU, raw logits out.

Layer names (fc1, fc2, fc3) match the tutorial, so its state_dict loads here unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from digitlab.models.activations import build_activation
from digitlab.models.registry import MODELS

if TYPE_CHECKING:
    from digitlab.config import ModelConfig


class SeedMLP(nn.Module):
    def __init__(self, num_classes: int = 10, act1: nn.Module | None = None,
                 act2: nn.Module | None = None):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(28 * 28, 128)
        # The tutorial shares one ReLU between both layers; two modules allow learned ones (PReLU)
        self.act1 = act1 or nn.ReLU()
        self.fc2 = nn.Linear(128, 64)
        self.act2 = act2 or nn.ReLU()
        self.fc3 = nn.Linear(64, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.flatten(images)  # [N, 1, 28, 28] -> [N, 784]
        x = self.act1(self.fc1(x))
        x = self.act2(self.fc2(x))
        return self.fc3(x)  # logits; the loss applies (log-)softmax itself


@MODELS.register("seed-mlp", "the tutorial's MLP 784-128-64-10, ReLU by default; the default model")
def build_seed_mlp(cfg: ModelConfig, num_classes: int) -> nn.Module:
    return SeedMLP(num_classes, build_activation(cfg, 128), build_activation(cfg, 64))
