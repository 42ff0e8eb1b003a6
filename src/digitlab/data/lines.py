"""Lines of digits: the synthetic line generator, and the normalization every line goes through.

`normalize(ink)` is THE normalization of the read task, shared by training and inference: a
line's ink map (ink bright, any size) is cropped to its ink, scaled so that the ink band is
BAND rows tall (antialiased), thin strokes are thickened and the stroke level set as
preprocess.fit_frame does for one digit, and the band is placed in HEIGHT rows with a small
margin left and right. `compose(...)` draws lines from MNIST-style digits on their device, all
lines of a batch at once, and passes them through the same code (normalize_batch), so that a
photo read at inference looks like training data.

    digits [N, 28, 28] -> picked, augmented, scaled 0.8-1.2 -> placed left to right with
    random gaps (free pixels between neighbours' ink, row by row), baseline jitter, touching
    pairs -> canvas [B, h, w] -> normalize_batch -> images [B, 1, HEIGHT, W]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from digitlab.data.augment import Augment
from digitlab.inference.preprocess import thickening
from digitlab.inference.strokes import stroke_width

HEIGHT = 32  # rows of a normalized line: the model's input height
BAND = 24  # rows of the ink band (the tallest digit plus baseline jitter); digits ~20 px tall
TOP = (HEIGHT - BAND) // 2  # blank rows above the band
MARGIN = 4  # blank columns left and right of the ink
MIN_WIDTH = 16  # columns of the narrowest line (a lone "1")
CORE = 0.5  # ink above this share of the line's peak: boxes, stroke cores, profiles
FRAME = 28  # the digits' frame (MNIST: a 20x20 box inside 28x28)
SCALES = (0.8, 1.2)  # each digit's size, relative to the 20 px box
SIDE = math.ceil(FRAME * SCALES[1])  # the frame a scaled digit is drawn in
JITTER = 2  # baseline jitter, +- pixels at the digits' scale
GAPS = (1, 7)  # free pixels between neighbours' ink in their closest row, inclusive
OVERLAP = 4  # at most this many columns of neighbours' boxes overlap (not touching)
TOUCH = 2  # touching pairs: their ink meets, or overlaps by up to this many pixels
FAR = 10_000  # "no ink in this row" in the profiles


@dataclass(frozen=True)
class Placement:
    """Where a normalized line came from: its ink band was input rows [top, bottom) and
    columns [left, right), scaled by `scale` (normalized pixels per input pixel)."""
    top: int
    bottom: int
    left: int
    right: int
    scale: float

    @property
    def rows(self) -> tuple[int, int]:
        return self.top, self.bottom

    def to_input(self, x0: float, x1: float) -> tuple[int, int]:
        """Columns [x0, x1) of the normalized line as input columns, within the ink box."""
        def back(x: float) -> float:
            return self.left + (x - MARGIN) / self.scale

        start = min(max(math.floor(back(x0)), self.left), self.right)
        return start, min(max(math.ceil(back(x1)), start), self.right)


@dataclass(frozen=True)
class Lines:
    images: torch.Tensor  # float [B, 1, HEIGHT, W], ink 1 on 0, zero-padded to the widest
    widths: torch.Tensor  # long [B], columns of each line
    targets: torch.Tensor  # long [sum of lengths], every line's labels, concatenated
    lengths: torch.Tensor  # long [B], digits per line
    texts: list[list[int]]  # each line's class indices
    spans: torch.Tensor  # long [sum of lengths, 2], each digit's ink columns [x0, x1)

    def __len__(self) -> int:
        return len(self.lengths)

    def select(self, index: torch.Tensor) -> Lines:
        """The lines at `index` (long, on the CPU), trimmed to the widest of them."""
        starts = torch.cumsum(self.lengths, 0) - self.lengths  # each line's first target
        lengths = self.lengths[index]
        line = torch.repeat_interleave(torch.arange(len(index)), lengths)
        rows = starts[index][line] + torch.arange(len(line)) - (torch.cumsum(lengths, 0) -
                                                                lengths)[line]
        width = int(self.widths[index].max())
        return Lines(self.images[index.to(self.images.device), :, :, :width],
                     self.widths[index], self.targets[rows], lengths,
                     [self.texts[i] for i in index.tolist()], self.spans[rows])


def ink_boxes(ink: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """[B, 4] (top, bottom, left, right) of the pixels above each line's threshold, the
    bottom and right exclusive; all zero for a line without any. ink: [B, h, w]."""
    mask = ink > threshold.view(-1, 1, 1)
    rows, cols = mask.any(2), mask.any(1)
    h, w = ink.shape[1:]
    boxes = torch.stack([rows.int().argmax(1), h - rows.flip(1).int().argmax(1),
                         cols.int().argmax(1), w - cols.flip(1).int().argmax(1)], 1)
    return boxes * rows.any(1, keepdim=True)


def cut(ink: torch.Tensor, top: int, left: int, bottom: int, right: int) -> torch.Tensor:
    """ink[top:bottom, left:right], with zeros where that reaches past the image."""
    window = ink.new_zeros(bottom - top, right - left)
    rows = slice(max(top, 0), min(bottom, ink.shape[0]))
    cols = slice(max(left, 0), min(right, ink.shape[1]))
    if rows.stop > rows.start and cols.stop > cols.start:
        window[rows.start - top: rows.stop - top, cols.start - left: cols.stop - left] = \
            ink[rows, cols]
    return window


def dilate(window: torch.Tensor, size: int) -> torch.Tensor:
    """A size x size grey dilation; a pixel spreads size // 2 up and left (as fit_frame grows
    the box) and the rest down and right."""
    before, after = size // 2, size - 1 - size // 2
    padded = F.pad(window[None, None], (after, before, after, before))
    return F.max_pool2d(padded, size, stride=1)[0, 0]


def resample(ink: torch.Tensor, box: tuple[int, int, int, int], stroke: float
             ) -> tuple[torch.Tensor, Placement]:
    """One line's band, BAND rows tall: thin strokes thickened as preprocess.fit_frame does
    (a grey dilation before the resize, the box grown with it), then an antialiased bicubic
    resize of the box."""
    top, bottom, left, right = box
    grow = thickening(stroke, BAND / (bottom - top))
    top, left = top - grow // 2, left - grow // 2
    bottom, right = bottom + grow - 1 - grow // 2, right + grow - 1 - grow // 2
    window = cut(ink, top, left, bottom, right)
    if grow > 1:  # with the ink around the box, which the dilation may pull in
        window = dilate(cut(ink, top - grow, left - grow, bottom + grow, right + grow),
                        grow)[grow:-grow, grow:-grow]
    scale = BAND / (bottom - top)
    width = max(1, round((right - left) * scale))
    band = F.interpolate(window[None, None], size=(BAND, width), mode="bicubic",
                         antialias=True, align_corners=False)[0, 0].clamp(min=0)
    return band, Placement(top, bottom, left, right, scale)


def normalize_batch(ink: torch.Tensor, strokes: list[float | None]
                    ) -> tuple[torch.Tensor, torch.Tensor, list[Placement | None]]:
    """normalize() for a batch of line canvases [B, h, w] (ink bright, [0, 1]): (images
    [B, 1, HEIGHT, W] padded with zeros, widths [B], placements; None for a blank line, which
    becomes MIN_WIDTH blank columns). Each line is processed on its own, so a line comes out
    the same alone or in a batch."""
    peaks = ink.flatten(1).amax(1)
    boxes = ink_boxes(ink, CORE * peaks).tolist()  # the one host sync of the boxes
    mask = None
    bands, placements = [], []
    for i, (top, bottom, left, right) in enumerate(boxes):
        if bottom <= top:
            bands.append(None)
            placements.append(None)
            continue
        stroke = strokes[i]
        if stroke is None:  # measured on the stroke cores, as preprocess measures a digit
            if mask is None:
                mask = (ink > CORE * peaks.view(-1, 1, 1)).cpu().numpy()
            stroke = stroke_width(np.ascontiguousarray(mask[i, top:bottom, left:right]))
        band, placement = resample(ink[i], (top, bottom, left, right), stroke)
        bands.append(band)
        placements.append(placement)
    widths = [MIN_WIDTH if band is None else max(band.shape[1] + 2 * MARGIN, MIN_WIDTH)
              for band in bands]
    images = torch.zeros(len(bands), HEIGHT, max(widths), device=ink.device)
    for i, band in enumerate(bands):
        if band is not None:
            images[i, TOP: TOP + BAND, MARGIN: MARGIN + band.shape[1]] = band
    return stroke_levels(images).unsqueeze(1), torch.tensor(widths), placements


def stroke_levels(images: torch.Tensor) -> torch.Tensor:
    """Each line divided by its stroke level and capped at 1, as preprocess.stroke_level: the
    median of the stroke cores (pixels above half the line's peak) becomes full ink."""
    peaks = images.flatten(1).amax(1)
    cores = images.flatten(1)
    cores = torch.where(cores > CORE * peaks[:, None], cores, torch.nan)
    levels = cores.nanmedian(dim=1).values.nan_to_num(1.0).clamp(min=1e-6)
    return (images / levels.view(-1, 1, 1)).clamp(max=1.0)


def normalize(ink: torch.Tensor, stroke: float | None = None) -> tuple[torch.Tensor, Placement]:
    """A line's ink map (float [h, w], [0, 1], ink bright) as the model reads it: ([1, HEIGHT,
    W], its Placement). stroke: the stroke width in input pixels; None measures it. A blank
    map raises ValueError."""
    images, widths, placements = normalize_batch(ink.float()[None], [stroke])
    if placements[0] is None:
        raise ValueError("normalize: the ink map is blank")
    return images[0, :, :, : int(widths[0])], placements[0]


def scaled_digits(digits: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """[n, SIDE, SIDE]: each digit resized by its scale about the frame's centre (bilinear)."""
    n = len(digits)
    zoom = SIDE / (FRAME * scales)  # output normalized coordinates -> input ones
    zero = torch.zeros_like(zoom)
    theta = torch.stack([zoom, zero, zero, zero, zoom, zero], 1).view(n, 2, 3)
    grid = F.affine_grid(theta, [n, 1, SIDE, SIDE], align_corners=False)
    return F.grid_sample(digits[:, None], grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)[:, 0]


def profiles(frames: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per frame [n, SIDE]: the first and last ink column of each row (FAR, -FAR where the
    row has none), and the ink box (top, bottom, left, right) [n] of the frame."""
    ink = frames > CORE
    cols = torch.arange(SIDE, device=frames.device)
    first = torch.where(ink, cols, FAR).amin(2)
    last = torch.where(ink, cols, -FAR).amax(2)
    top, bottom, left, right = ink_boxes(frames, torch.full((len(frames),), CORE,
                                                            device=frames.device)).unbind(1)
    return first, last, top, bottom, left, right


def advances(first: torch.Tensor, last: torch.Tensor, box: tuple[torch.Tensor, ...],
             rows: torch.Tensor, gaps: torch.Tensor, touching: torch.Tensor) -> torch.Tensor:
    """How far right each digit's frame sits from the previous one's: `gaps` free pixels
    between their ink in the rows where both have ink (negative: overlapping), and for pairs
    that do not touch at most OVERLAP columns of overlap between their boxes. Arguments are
    per digit; the result for the first digit of each line is meaningless."""
    left, right = box
    dy = rows - rows.roll(1)  # the frame's rows relative to the previous digit's
    index = torch.arange(SIDE, device=rows.device)[None] - dy[:, None]  # [n, SIDE]
    inside = (index >= 0) & (index < SIDE)
    starts = first.gather(1, index.clamp(0, SIDE - 1)).masked_fill(~inside, FAR)
    reach = (last.roll(1, 0) - starts).amax(1)  # the ink's closest approach, row by row
    boxed = right.roll(1) - left  # columns that put the boxes edge to edge
    near = torch.where(reach > -FAR // 2, reach + 1 + gaps, boxed + gaps)
    return torch.where(touching, near, torch.maximum(near, boxed - OVERLAP))


def compose(digits: torch.Tensor, labels: torch.Tensor, count: int, gen: torch.Generator,
            min_digits: int = 1, max_digits: int = 10, touching: float = 0.0,
            augment: Augment | None = None) -> Lines:
    """`count` lines of min_digits..max_digits random digits from `digits` (uint8 or float
    [N, 28, 28], white ink on black) with their `labels` [N], on the digits' device; the same
    `gen` (a generator on that device) draws the same lines. augment: applied to the picked
    digits first (data.augment_*). touching: the share of neighbour pairs whose ink touches."""
    device = digits.device
    lengths = torch.randint(min_digits, max_digits + 1, (count,), device=device, generator=gen)
    n = int(lengths.sum())
    pick = torch.randint(0, len(digits), (n,), device=device, generator=gen)
    chosen = digits[pick].float() / (255 if digits.dtype == torch.uint8 else 1)
    if augment is not None and augment.active:
        augmented = augment(chosen[:, None], gen, 0.0, 1.0)[:, 0].clamp(0, 1)
        # a thin stroke thinned, turned and resampled can fade below the ink level (CORE): a
        # label without ink, and a blank line when it stood alone; such a digit stays as written
        faded = augmented.flatten(1).amax(1) < CORE
        chosen = torch.where(faded[:, None, None], chosen, augmented)
    scales = SCALES[0] + (SCALES[1] - SCALES[0]) * torch.rand(n, device=device, generator=gen)
    frames = scaled_digits(chosen, scales)
    first, last, top, bottom, left, right = profiles(frames)
    jitter = torch.randint(-JITTER, JITTER + 1, (n,), device=device, generator=gen)
    rows = SIDE - bottom + JITTER + jitter  # bottoms on one baseline, give or take the jitter
    gaps = torch.randint(GAPS[0], GAPS[1] + 1, (n,), device=device, generator=gen)
    pushed = torch.rand(n, device=device, generator=gen) < touching
    gaps = torch.where(pushed, -torch.randint(0, TOUCH + 1, (n,), device=device,
                                              generator=gen), gaps)
    steps = advances(first, last, (left, right), rows, gaps, pushed)
    line = torch.repeat_interleave(torch.arange(count, device=device), lengths)
    starts = torch.cumsum(lengths, 0) - lengths
    steps[starts] = 0
    x = torch.cumsum(steps, 0)
    x = x - x[starts][line] - left[starts][line] + SIDE  # each line's first ink at column SIDE
    width = int((x + SIDE).amax()) + 1
    canvas = torch.zeros(count, 2 * SIDE + 2 * JITTER, width, device=device)
    grid = torch.arange(SIDE, device=device)
    flat = ((line[:, None, None] * canvas.shape[1] + rows[:, None, None] + grid[None, :, None])
            * width + x[:, None, None] + grid[None, None, :])
    canvas.view(-1).scatter_reduce_(0, flat.view(-1), frames.reshape(-1), "amax")
    images, widths, placements = normalize_batch(canvas, [None] * count)
    origin = torch.tensor([[p.left, p.scale] for p in placements], device=device)[line]
    spans = (MARGIN + (torch.stack([x + left, x + right], 1) - origin[:, :1]) * origin[:, 1:])
    targets = labels[pick].long()
    texts = torch.split(targets.cpu(), lengths.cpu().tolist())
    return Lines(images, widths, targets.cpu(), lengths.cpu(), [t.tolist() for t in texts],
                 spans.round().long().cpu())
