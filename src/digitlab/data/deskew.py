"""Moment-based deskewing (`data.deskew`), one function for every place a digit meets a model.

LeCun et al. measured that removing each digit's slant roughly halves the error of simple
classifiers. The slant is read from the ink's second moments: each row is shifted sideways in
proportion to its distance from the centre of mass, so that row and column no longer
correlate. The same torch code runs on the training tensors (once, when the data is loaded),
in `digitlab predict`, `serve` and `evaluate` (on each preprocessed 28x28), and inside an
exported ONNX or TorchScript model, so all of them apply exactly what training saw: bilinear
resampling, then rounding to whole uint8 levels, as the training tensors are stored.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MAX_SLANT = 1.0  # a shift of at most one pixel per row (45 degrees): beyond is not a slant


def deskew(images: torch.Tensor) -> torch.Tensor:
    """[..., H, W] pixels (uint8 or float, ink bright, background 0) with each image's slant
    removed; the same dtype, values rounded to whole levels and clipped to 0..255."""
    shape, dtype = images.shape, images.dtype
    h, w = shape[-2], shape[-1]
    ink = images.reshape(-1, 1, h, w).to(torch.float32)
    total = ink.sum((2, 3), keepdim=True).clamp(min=1e-6)
    rows = torch.arange(h, dtype=torch.float32, device=images.device).view(1, 1, h, 1)
    cols = torch.arange(w, dtype=torch.float32, device=images.device).view(1, 1, 1, w)
    cy = (ink * rows).sum((2, 3), keepdim=True) / total
    cx = (ink * cols).sum((2, 3), keepdim=True) / total
    mu11 = (ink * (rows - cy) * (cols - cx)).sum((2, 3), keepdim=True) / total
    mu02 = (ink * (rows - cy) ** 2).sum((2, 3), keepdim=True) / total
    slant = (mu11 / mu02.clamp(min=1e-6)).clamp(-MAX_SLANT, MAX_SLANT)  # [N, 1, 1, 1]
    # output pixel (r, c) reads input (r, c + slant * (r - cy)); in grid_sample's units
    # (align_corners=False) pixel p sits at (2p + 1) / size - 1
    ys = ((2 * rows + 1) / h - 1).expand(-1, -1, h, w)
    xs = (2 * (cols + slant * (rows - cy)) + 1) / w - 1
    grid = torch.stack([xs.expand(-1, 1, h, w), ys.expand(ink.shape[0], 1, h, w)], -1)[:, 0]
    out = F.grid_sample(ink, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    out = out.round().clamp(0, 255)
    return out.to(dtype).reshape(shape)
