"""Augmentation on the device, a whole batch at a time: no per-sample Python, no PIL."""

from __future__ import annotations

import torch

from digitlab.data.balance import epoch_generator

AUGMENT_SEED_OFFSET = 15485863  # keeps the shifts independent of the epoch permutations


def augment_generator(device: torch.device, seed: int, epoch: int) -> torch.Generator:
    """Seeded per epoch, so a resumed run draws the same shifts."""
    return epoch_generator(seed, epoch, AUGMENT_SEED_OFFSET, device)


def random_shift(images: torch.Tensor, max_shift: int, gen: torch.Generator,
                 fill: float) -> torch.Tensor:
    """Translate each image [N, 1, H, W] by its own random (dy, dx) in [-max_shift, max_shift];
    uncovered pixels get `fill` (the normalized background)."""
    n, _, h, w = images.shape
    padded = torch.nn.functional.pad(images, (max_shift,) * 4, value=fill)
    offsets = torch.randint(0, 2 * max_shift + 1, (2, n, 1), device=images.device, generator=gen)
    rows = torch.arange(h, device=images.device) + offsets[0]  # [N, H]
    cols = torch.arange(w, device=images.device) + offsets[1]  # [N, W]
    batch = torch.arange(n, device=images.device)[:, None, None]
    return padded[batch, 0, rows[:, :, None], cols[:, None, :]].unsqueeze(1)
