"""The tutorial's DigitClassifier: 784 -> 128 -> 64 -> 10, ReLU, raw logits out.

Layer names (fc1, fc2, fc3) match the tutorial, so its state_dict loads here unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from digitlab.models.registry import MODELS

if TYPE_CHECKING:
    from digitlab.config import ModelConfig


class SeedMLP(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(28 * 28, 128)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(128, 64)
        self.fc3 = nn.Linear(64, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.flatten(images)  # [N, 1, 28, 28] -> [N, 784]
        x = self.relu(self.fc1(x))
        x = self.relu(self.fc2(x))
        return self.fc3(x)  # logits; the loss applies (log-)softmax itself


@MODELS.register("seed-mlp", "the tutorial's MLP 784-128-64-10 with ReLU (the default)")
def build_seed_mlp(cfg: ModelConfig, num_classes: int) -> nn.Module:
    return SeedMLP(num_classes)
