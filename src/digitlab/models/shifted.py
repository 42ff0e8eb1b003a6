"""Test-time shifts (data.test_shifts): a classifier that reads each digit at five positions,
as given and moved N pixels up, down, left and right, and answers with the mean of the five
logits. Preprocessing centres a digit by its mass, which is off by a pixel or so for a digit
unlike the training ones; the mean over nearby positions is steadier there. A sequence model
(crnn, train.task = "read") reads each line at three heights instead, as given and N pixels up
and down (a sideways move would move its steps), averaging each step's log-probabilities.

Only evaluation goes through the wrapper (the final test, calibration, the report, predict,
serve, read, export); training steps and checkpoints see the plain model."""

from __future__ import annotations

import torch
from torch import nn

MAX_TEST_SHIFT = 2  # pixels; a 28x28 digit has a 4-pixel blank border


class ShiftAveraged(nn.Module):
    def __init__(self, model: nn.Module, pixels: int):
        super().__init__()
        self.model = model
        self.pixels = pixels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """[N, 1, H, W] -> the mean of the five views' logits [N, C]. torch.roll wraps the
        moved-out border round to the other side: blank background, like what it replaces."""
        p = self.pixels
        views = [images] + [torch.roll(images, shift, dims=dim)
                            for dim in (2, 3) for shift in (p, -p)]
        logits = self.model(torch.cat(views))  # one batch of 5N: one pass through the net
        return logits.unflatten(0, (len(views), -1)).mean(dim=0)  # -1: traced exports too


class LineShiftAveraged(nn.Module):
    def __init__(self, model: nn.Module, pixels: int):
        super().__init__()
        self.model = model
        self.pixels = pixels
        self.columns_per_step = model.columns_per_step  # what decoding and export ask for

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """[N, 1, H, W] -> [N, T, C + 1]: the mean over three heights of each step's
        log-probabilities (a log-softmax, so decoding reads it as logits)."""
        p = self.pixels
        views = [images, torch.roll(images, p, dims=2), torch.roll(images, -p, dims=2)]
        logits = self.model(torch.cat(views)).float().log_softmax(dim=-1)
        return logits.unflatten(0, (len(views), -1)).mean(dim=0)


def with_test_shifts(model: nn.Module, pixels: int) -> nn.Module:
    """The model as evaluation reads it: itself when pixels is 0, else shift-averaged (a
    sequence model at three heights, a classifier at five positions)."""
    if pixels == 0:
        return model
    if hasattr(model, "columns_per_step"):
        return LineShiftAveraged(model, pixels)
    return ShiftAveraged(model, pixels)
