"""Augmentation on the device, a whole batch at a time: no per-sample Python, no PIL.

Every op draws its random numbers from one generator seeded per (seed, epoch), in a fixed
order and only when the op is on, so a resumed run draws the same images, and a run with only
`data.augment_shift` draws exactly what it drew before the other ops existed. Images are
normalized [N, 1, H, W] with ink brighter than the background (as MNIST stores them).

    shift      whole-pixel translation (exact, no resampling)
    stretch    the digit's box stretched to fill a square, as box-normalized scans are
    affine     rotation, scale, horizontal stretch, shear, sub-pixel translation  } one
    elastic    a smooth random displacement field                                 } resample
    thickness  strokes made thicker or thinner by a blend with a 3x3 dilation or erosion
    lowres     the digit resampled down to 8-16 px and back up, as a small scan is read
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from digitlab.data.balance import epoch_generator

AUGMENT_SEED_OFFSET = 15485863  # keeps the shifts independent of the epoch permutations
ELASTIC_GRID = 4  # control points per side of the elastic field (features ~ H / 4 px)
LOWRES_SIZES = (8, 16)  # the digit's box is resampled to this many pixels, inclusive
DIGIT_BOX = 20  # MNIST fits each digit into a 20x20 box inside the 28x28 image
CUT = 0.35  # preprocessing cuts at half a stroke's typical contrast, about 0.35 of the peak
LEVELS = 16  # grey levels of a small scan above paper (scikit-learn's 8x8 digits: 0..16)


def augment_generator(device: torch.device, seed: int, epoch: int) -> torch.Generator:
    """Seeded per epoch, so a resumed run draws the same shifts."""
    return epoch_generator(seed, epoch, AUGMENT_SEED_OFFSET, device)


def random_shift(images: torch.Tensor, max_shift: int, gen: torch.Generator,
                 fill: float) -> torch.Tensor:
    """Translate each image [N, 1, H, W] by its own random (dy, dx) in [-max_shift, max_shift];
    uncovered pixels get `fill` (the normalized background)."""
    n, _, h, w = images.shape
    padded = F.pad(images, (max_shift,) * 4, value=fill)
    offsets = torch.randint(0, 2 * max_shift + 1, (2, n, 1), device=images.device, generator=gen)
    rows = torch.arange(h, device=images.device) + offsets[0]  # [N, H]
    cols = torch.arange(w, device=images.device) + offsets[1]  # [N, W]
    batch = torch.arange(n, device=images.device)[:, None, None]
    return padded[batch, 0, rows[:, :, None], cols[:, None, :]].unsqueeze(1)


def ink_box(ink: torch.Tensor, threshold: float) -> tuple[torch.Tensor, ...]:
    """Each image's ink bounding box, as (top, bottom, left, right) pixel edges [N], the
    bottom and right exclusive; the whole image for a blank one. ink: [N, 1, H, W]."""
    n, _, h, w = ink.shape
    rows, cols = ink.amax(3)[:, 0] > threshold, ink.amax(2)[:, 0] > threshold  # [N, H], [N, W]
    blank = ~rows.any(1)
    top, bottom = rows.int().argmax(1), h - rows.flip(1).int().argmax(1)
    left, right = cols.int().argmax(1), w - cols.flip(1).int().argmax(1)
    top, left = top.masked_fill(blank, 0), left.masked_fill(blank, 0)
    bottom, right = bottom.masked_fill(blank, h), right.masked_fill(blank, w)
    return top, bottom, left, right


def stretch_to_box(images: torch.Tensor, probability: float, gen: torch.Generator,
                   background: float, ink: float) -> torch.Tensor:
    """With the given probability per image, the digit's bounding box stretched to fill a
    DIGIT_BOX square in the middle, as scans size-normalized to fill their box (each side on
    its own) are: a "1" becomes a wide slab, as preprocessing then reads it."""
    n, _, h, w = images.shape
    chosen = torch.rand(n, device=images.device, generator=gen) < probability
    top, bottom, left, right = (v.to(images.dtype) for v in
                                ink_box(images - background, 0.3 * (ink - background)))
    scale_y = DIGIT_BOX / (bottom - top).clamp(min=1)
    scale_x = DIGIT_BOX / (right - left).clamp(min=1)
    centre_y, centre_x = (top + bottom) / 2, (left + right) / 2  # in pixel edges
    # output pixel centre c reads input at centre + (c - size / 2) / scale, in pixel edges;
    # grid_sample (align_corners=False) wants 2 * edges / size - 1
    # sampled at twice the resolution, cut at half contrast and box-averaged back: a stretched
    # thin stroke is a solid slab with anti-aliased edges, as preprocessing reads a scan
    ys = (torch.arange(2 * h, device=images.device, dtype=images.dtype) + 0.5) / 2
    xs = (torch.arange(2 * w, device=images.device, dtype=images.dtype) + 0.5) / 2
    src_y = centre_y[:, None] + (ys[None] - h / 2) / scale_y[:, None]  # [N, 2H]
    src_x = centre_x[:, None] + (xs[None] - w / 2) / scale_x[:, None]  # [N, 2W]
    grid = torch.stack([(2 * src_x / w - 1)[:, None, :].expand(n, 2 * h, 2 * w),
                        (2 * src_y / h - 1)[:, :, None].expand(n, 2 * h, 2 * w)], -1)
    large = F.grid_sample(images - background, grid, mode="bilinear", padding_mode="zeros",
                          align_corners=False)
    solid = (large > 0.5 * (ink - background)).to(images.dtype)
    stretched = background + F.avg_pool2d(solid, 2) * (ink - background)
    return torch.where(chosen.view(n, 1, 1, 1), stretched, images)


def uniform(n: int, bound: float, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    """n draws from U(-bound, bound)."""
    return (torch.rand(n, device=device, generator=gen) * 2 - 1) * bound


def affine_grid(n: int, size: tuple[int, int], rotate: float, scale: float, aspect: float,
                shear: float, translate: float, gen: torch.Generator,
                device: torch.device) -> torch.Tensor:
    """A sampling grid [N, H, W, 2] for grid_sample: each image rotated by up to `rotate`
    degrees, scaled by 1 +- `scale`, stretched horizontally by 1 +- `aspect`, sheared by up to
    `shear` degrees and moved by up to `translate` pixels, about the image centre.

    The image is transformed by A = rotation @ shear @ diag(scale * stretch, scale); grid_sample
    needs where each output pixel comes from, which is A's inverse."""
    h, w = size
    angle = torch.deg2rad(uniform(n, rotate, gen, device))
    slant = torch.tan(torch.deg2rad(uniform(n, shear, gen, device)))
    sy = 1 + uniform(n, scale, gen, device)
    sx = sy * (1 + uniform(n, aspect, gen, device))
    move = uniform(2 * n, translate, gen, device).view(2, n)  # pixels
    cos, sin, one, zero = torch.cos(angle), torch.sin(angle), torch.ones_like(angle), \
        torch.zeros_like(angle)
    unrotate = torch.stack([cos, sin, -sin, cos], 1).view(n, 2, 2)  # rotation by -angle
    unshear = torch.stack([one, -slant, zero, one], 1).view(n, 2, 2)
    unscale = torch.stack([1 / sx, zero, zero, 1 / sy], 1).view(n, 2, 2)
    inverse = unscale @ unshear @ unrotate
    offset = torch.stack([move[0] * 2 / w, move[1] * 2 / h], 1)  # normalized units
    theta = torch.cat([inverse, -(inverse @ offset[:, :, None])], 2)  # [N, 2, 3]
    return F.affine_grid(theta, [n, 1, h, w], align_corners=False)


def cubic_weights(points: int, size: int, device: torch.device) -> torch.Tensor:
    """[size, points]: bicubic interpolation from `points` evenly spaced control points
    (the first and last on the edge pixels) to `size` pixels, as a matrix."""
    eye = torch.eye(points, device=device).view(points, 1, points, 1)
    return F.interpolate(eye, size=(size, 1), mode="bicubic", align_corners=True)[:, 0, :, 0].T


def elastic_field(n: int, size: tuple[int, int], pixels: float, gen: torch.Generator,
                  device: torch.device) -> torch.Tensor:
    """A smooth displacement [N, H, W, 2] of up to about `pixels` pixels: random control
    points on a coarse grid, interpolated bicubically (Simard et al.'s elastic distortion,
    without the large Gaussian convolution); two small matrix products per batch."""
    h, w = size
    coarse = torch.rand(n, 2, ELASTIC_GRID, ELASTIC_GRID, device=device, generator=gen) * 2 - 1
    rows, cols = cubic_weights(ELASTIC_GRID, h, device), cubic_weights(ELASTIC_GRID, w, device)
    field = rows @ coarse @ cols.T  # [N, 2, H, W]
    scale = torch.tensor([2 * pixels / w, 2 * pixels / h], device=device)
    return (field.permute(0, 2, 3, 1) * scale).contiguous()  # grid_sample is slow on strides


def dilate3(images: torch.Tensor) -> torch.Tensor:
    """A 3x3 grey dilation (the max over each pixel's neighbourhood), as two 1-D maxima over
    shifted views: many times faster than max_pool2d with stride 1 on CPU."""
    padded = F.pad(images, (1, 1, 1, 1), value=float("-inf"))
    rows = torch.maximum(torch.maximum(padded[:, :, :-2], padded[:, :, 1:-1]), padded[:, :, 2:])
    return torch.maximum(torch.maximum(rows[..., :-2], rows[..., 1:-1]), rows[..., 2:])


def thickness(images: torch.Tensor, strength: float, gen: torch.Generator) -> torch.Tensor:
    """Each image's strokes thickened (towards a 3x3 dilation) or thinned (towards a 3x3
    erosion) by a random blend in [-strength, strength]."""
    t = uniform(len(images), strength, gen, images.device).view(-1, 1, 1, 1)
    grow, shrink = t.clamp(min=0), (-t).clamp(min=0)
    return images + grow * (dilate3(images) - images) + shrink * (-dilate3(-images) - images)


def low_resolution(images: torch.Tensor, probability: float, gen: torch.Generator,
                   low: float, high: float) -> torch.Tensor:
    """With the given probability per image, a small scan as preprocessing reads one: the
    digit binarized (a scanner's bitmap), its 20-pixel box averaged down to 8-16 pixels with 16
    grey levels (as scikit-learn's 8x8 digits count the ink of 4x4 blocks), upsampled
    (bicubic, at twice the size), cut at half its peak contrast and box-averaged back, which
    is the blocky, anti-aliased digit an 8x8 input becomes. `low` and `high` are the
    normalized values of blank paper and full ink."""
    n, _, h, w = images.shape
    chosen = torch.rand(n, device=images.device, generator=gen) < probability
    boxes = torch.randint(LOWRES_SIZES[0], LOWRES_SIZES[1] + 1, (n,), device=images.device,
                          generator=gen)
    out = images.clone()
    for box in boxes[chosen].unique().tolist():
        idx = (chosen & (boxes == box)).nonzero().squeeze(1)
        side = round(box * h / DIGIT_BOX)
        ink = (images[idx] - low) / (high - low) > 0.5  # a scanner's binary bitmap
        small = F.interpolate(ink.to(images.dtype), size=(side, side), mode="area")
        small = (small * LEVELS).round() / LEVELS  # the scan's grey levels
        large = F.interpolate(small, size=(2 * h, 2 * w), mode="bicubic", align_corners=False)
        peak = large.amax(dim=(2, 3), keepdim=True).clamp(min=1e-6)
        binary = (large > CUT * peak).to(images.dtype)
        out[idx] = low + F.avg_pool2d(binary, 2) * (high - low)
    return out


@dataclass(frozen=True)
class Augment:
    """The `data.augment_*` knobs, applied to training batches. All zero = off."""
    shift: int = 0  # pixels
    stretch: float = 0.0  # probability
    rotate: float = 0.0  # degrees
    scale: float = 0.0  # fraction
    aspect: float = 0.0  # fraction, horizontal
    shear: float = 0.0  # degrees
    translate: float = 0.0  # pixels
    elastic: float = 0.0  # pixels
    thickness: float = 0.0  # blend strength, 0..1
    lowres: float = 0.0  # probability

    @classmethod
    def from_config(cls, data) -> Augment:
        return cls(*(getattr(data, f"augment_{name}") for name in cls.__dataclass_fields__))

    @property
    def active(self) -> bool:
        return any(getattr(self, name) for name in self.__dataclass_fields__)

    @property
    def resamples(self) -> bool:
        return any((self.rotate, self.scale, self.aspect, self.shear, self.translate,
                    self.elastic))

    def __call__(self, images: torch.Tensor, gen: torch.Generator, background: float,
                 ink: float) -> torch.Tensor:
        """Augmented normalized images; `background` and `ink` are the normalized values of
        a blank pixel and of full ink."""
        if self.shift:
            images = random_shift(images, self.shift, gen, background)
        if self.stretch:
            images = stretch_to_box(images, self.stretch, gen, background, ink)
        if self.resamples:
            n, _, h, w = images.shape
            grid = affine_grid(n, (h, w), self.rotate, self.scale, self.aspect, self.shear,
                               self.translate, gen, images.device)
            if self.elastic:
                grid = grid + elastic_field(n, (h, w), self.elastic, gen, images.device)
            # zeros padding is the background once the background is moved to zero
            images = F.grid_sample(images - background, grid.to(images.dtype), mode="bilinear",
                                   padding_mode="zeros", align_corners=False) + background
        if self.thickness:
            images = thickness(images, self.thickness, gen)
        if self.lowres:
            images = low_resolution(images, self.lowres, gen, background, ink)
        return images
