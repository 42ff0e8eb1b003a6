"""A photo or scan of one line of handwritten digits -> one 28x28 frame per digit, left to right.

The `segment` method of `digitlab read`; any single-digit run reads the frames it gives.

1. the line's ink at a working scale set by the input (small scans upsampled first; large
   photos reduced, and the band of digits redone from the full-resolution pixels when the
   digits came out small), with predict's polarity, paper, ruled-line and shadow handling;
2. connected components of the ink; specks, and marks far above or below the line, dropped;
3. broken strokes merged: a short piece that lies mostly above or below another component
   (a 5's flag, the top of a 4) joins it;
4. touching digits split and strokes drawn apart joined: inference.cuts gives the candidate
   parts, and the reader chooses among them by the model's confidence;
5. every digit alone through predict's normalization (preprocess.fit_frame).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from digitlab.i18n import _
from digitlab.inference.photo import FAINT, remove_ruled_lines
from digitlab.inference.preprocess import PHOTO_FROM, ImageError, bounding_box, fit_frame
from digitlab.inference.strokes import dark_ink_on_light, dilate, ink_map, odd

MAX_SIDE = 12_000  # input pixels: a longer side is refused (a line of 20 digits needs far less)
LINE_MIN = 64  # the working copy is at least this tall (short scans are upsampled) ...
LINE_MAX = 1600  # ... and at most this long (large photos are reduced by a whole factor)
DIGIT_MIN = 40  # digits shorter than this in a reduced copy are redone at full resolution
SPECK = 0.15  # a component smaller than 15% of the line's height on both sides is a speck
FAR = 0.6  # ... and one whose centre is further than 60% of it from the line's band, a stray mark
STRAY = 0.35  # a piece lower than 35% of the line's height, left alone after merging, is dropped
PIECE = 0.6  # a component lower than 60% of the line's height may be a broken stroke ...
OVER = 0.5  # ... joined to the component over or under at least half of its width,
NEAR = 0.1  # ... or to the nearest one beside it, if it is this close (in line heights)
CORE = 0.5  # components are found in the ink over this level (the stroke cores)


@dataclass(frozen=True)
class Piece:
    """One digit's ink in the working copy: a boolean mask over rows top:bottom and columns
    left:right, and the box in input pixels (x0, y0, x1, y1; exclusive at the end)."""

    mask: np.ndarray
    top: int
    left: int
    box: tuple[int, int, int, int]


@dataclass(frozen=True)
class Line:
    """The cleaned ink of a line (working scale), its stroke width, its scale (working pixels
    per input pixel) and origin (the working copy's top left, in input pixels), its digit
    height, and the label image of all its ink components (`components`, 0 = no ink), kept
    or not as digits."""

    ink: np.ndarray
    stroke: float
    scale: float
    origin: tuple[int, int]
    height: float  # the line's digit height in working pixels
    labels: np.ndarray

    def box(self, top: int, left: int, bottom: int, right: int) -> tuple[int, int, int, int]:
        """A working box as (x0, y0, x1, y1) in input pixels."""
        return (int(left / self.scale) + self.origin[0], int(top / self.scale) + self.origin[1],
                int(np.ceil(right / self.scale)) + self.origin[0],
                int(np.ceil(bottom / self.scale)) + self.origin[1])

    def frame(self, piece: Piece) -> np.ndarray:
        """uint8 [28, 28]: the piece alone, normalized as predict normalizes a digit."""
        rows, cols = piece.mask.shape
        ink = self.ink[piece.top:piece.top + rows, piece.left:piece.left + cols]
        if self.scale >= 1:  # binary, as preprocess.find_digit does at native resolution
            digit = (piece.mask & (ink > 0.5)).astype(np.float32)
            if not digit.any():
                digit = piece.mask.astype(np.float32)
        else:
            peak = np.maximum(dilate(ink, odd(2 * self.stroke + 1)), 2 * FAINT)
            digit = np.where(piece.mask, np.minimum(ink / peak, 1.0), 0.0).astype(np.float32)
        return fit_frame(digit, bounding_box(digit > 0), self.stroke)


def check_size(image: Image.Image, name: str) -> None:
    if max(image.size) > MAX_SIDE:
        raise ImageError(_("{name}: {width}x{height} pixels is too long for one line of digits "
                           "(at most {limit:,} on a side); crop or shrink it").format(
            name=name, width=image.width, height=image.height, limit=MAX_SIDE))


def working_scale(width: int, height: int) -> float:
    """Working pixels per input pixel: short lines upsampled by a whole factor, long
    inputs reduced by one (a factor below 1)."""
    if height < LINE_MIN:
        return float(min(-(-LINE_MIN // height), max(1, LINE_MAX * 4 // width)))
    if max(width, height) > LINE_MAX:
        return 1.0 / -(-max(width, height) // LINE_MAX)
    return 1.0


def working_copy(grey: Image.Image, scale: float) -> np.ndarray:
    if scale > 1:
        grey = grey.resize((round(grey.width * scale), round(grey.height * scale)),
                           Image.Resampling.BICUBIC)
    elif scale < 1:
        grey = grey.reduce(round(1 / scale))
    values = np.asarray(grey, dtype=np.float32)
    return np.clip(values if grey.mode == "F" else values / 255.0, 0.0, 1.0)


def components(ink: np.ndarray, stroke: float, reduced: bool) -> tuple[np.ndarray, int]:
    """Labels of the ink (pixels over FAINT). Components are found in the stroke cores (over
    half contrast), so that digits whose blurred rims nearly touch stay apart, and each rim
    pixel joins the core nearest to it; faint ink far from any core (what is left of a shadow
    or a printed line) is dropped. In a reduced copy, gaps of a pixel or two that the
    reduction opened in thin strokes are bridged first."""
    faint = ink > FAINT
    if reduced:
        joined = dilate(faint.astype(np.float32), odd(min(2 * stroke, 4) + 1)) > 0
        labels, count = ndimage.label(joined, structure=np.ones((3, 3)))
        return np.where(faint, labels, 0), count
    labels, count = ndimage.label(ink > CORE, structure=np.ones((3, 3)))
    if count == 0:
        return ndimage.label(faint, structure=np.ones((3, 3)))
    distance, (rows, cols) = ndimage.distance_transform_edt(labels == 0, return_indices=True)
    rim = faint & (distance <= max(2.0, stroke / 2))  # a stroke's own rim, not faint patches
    return np.where(rim, labels[rows, cols], 0), count


def line_height(boxes: np.ndarray) -> float:
    """The digits' height: the median height of the components at least half as tall as
    the tallest (specks and broken pieces do not count)."""
    heights = boxes[:, 2] - boxes[:, 0]
    return float(np.median(heights[heights >= 0.5 * heights.max()]))


def keep_line(boxes: np.ndarray, area: np.ndarray, stroke: float, photo: bool,
              shape: tuple[int, int]) -> np.ndarray:
    """Which components belong to the line: not specks, not far above or below it, and in a
    photo not touching its edge."""
    height = line_height(boxes)
    size = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    big = size >= 0.5 * (boxes[:, 2] - boxes[:, 0]).max()
    top, bottom = np.median(boxes[big, 0]), np.median(boxes[big, 2])
    centre = (boxes[:, 0] + boxes[:, 2]) / 2
    near = (centre >= top - FAR * height) & (centre <= bottom + FAR * height)
    keep = near & (size >= SPECK * height) & (area >= max(2.0, 0.5 * stroke ** 2))
    edge = ((boxes[:, 0] == 0) | (boxes[:, 1] == 0) | (boxes[:, 2] == shape[0])
            | (boxes[:, 3] == shape[1]))
    if photo and (keep & ~edge).any():  # the table, a shadow's corner, a line cut by the
        keep &= ~edge  # frame; unless every digit touches it (a photo cropped to the number)
    return keep


def apart(a: list[int], b: list[int], height: float) -> float:
    """How far box b is from box a sideways: the gap in line heights when they do not
    overlap, minus the share of a's width that b covers when they do."""
    overlap = min(a[3], b[3]) - max(a[1], b[1])
    return -overlap / max(a[3] - a[1], 1) if overlap > 0 else -overlap / height


def merge_pieces(boxes: list[list[int]], members: list[list[int]], height: float) -> None:
    """Short components join the nearest one that lies over or under them, or beside them
    within NEAR line heights (in place). A small digit joined so to its neighbour is cut
    off again by the reader: the gap between them is the thinnest column there is."""
    changed = True
    while changed:
        changed = False
        for i, a in enumerate(boxes):
            if a[2] - a[0] >= PIECE * height or len(boxes) == 1:
                continue
            gaps = [(apart(a, b, height), j) for j, b in enumerate(boxes) if j != i]
            gap, j = min(gaps)
            if gap <= -OVER or 0 <= gap <= NEAR:
                b = boxes[j]
                boxes[j] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                members[j] += members[i]
                del boxes[i], members[i]
                changed = True
                break


def clean_ink(grey: Image.Image, dark_ink: bool, scale: float) -> tuple[np.ndarray, float]:
    values = working_copy(grey, scale)
    photo = max(grey.size) >= PHOTO_FROM
    ink, stroke = ink_map(1.0 - values if dark_ink else values, photo, dark_ink)
    if photo and ink.any():
        ink = remove_ruled_lines(ink, stroke)
    return ink, stroke


def find_line(grey: Image.Image, dark_ink: bool | None, name: str) -> tuple[Line, list[Piece]]:
    """The line's ink and its digits' pieces, left to right (before any doubtful cut)."""
    check_size(grey, name)
    scale = working_scale(grey.width, grey.height)
    if dark_ink is None:
        dark_ink = dark_ink_on_light(working_copy(grey, scale), max(grey.size) >= PHOTO_FROM)
    ink, stroke = clean_ink(grey, dark_ink, scale)
    origin = (0, 0)
    labels, count = components(ink, stroke, scale < 1)
    if count and scale < 1:
        boxes = np.array([[s[0].start, s[1].start, s[0].stop, s[1].stop]
                          for s in ndimage.find_objects(labels) if s])
        if line_height(boxes) < DIGIT_MIN:  # small digits in a large photo: zoom in
            top, left, bottom, right = (int(v / scale) for v in bounding_box(labels > 0))
            margin = int(line_height(boxes) / scale)
            region = (max(left - margin, 0), max(top - margin, 0),
                      min(right + margin, grey.width), min(bottom + margin, grey.height))
            crop = grey.crop(region)
            scale = min(1.0, DIGIT_MIN * 2 * scale / line_height(boxes))
            scale = 1.0 / round(1 / scale) if scale < 1 else 1.0
            ink, stroke = clean_ink(crop, dark_ink, scale)
            origin = region[:2]
            labels, count = components(ink, stroke, scale < 1)
    if count == 0 or (ink > 0.5).sum() < 4:
        raise ImageError(_("{name}: no digits found (the image looks blank)").format(name=name))
    slices = ndimage.find_objects(labels)
    index = [i for i, s in enumerate(slices) if s]
    boxes = np.array([[s[0].start, s[1].start, s[0].stop, s[1].stop]
                      for s in (slices[i] for i in index)])
    area = ndimage.sum_labels(ink > 0.5, labels, [i + 1 for i in index])
    keep = keep_line(boxes, np.asarray(area), stroke, max(grey.size) >= PHOTO_FROM, ink.shape)
    height = line_height(boxes[keep]) if keep.any() else line_height(boxes)
    line = Line(ink, stroke, scale, origin, height, labels)
    kept_boxes = [list(map(int, b)) for b, k in zip(boxes, keep, strict=True) if k]
    members = [[index[i] + 1] for i, k in enumerate(keep) if k]
    merge_pieces(kept_boxes, members, height)
    pieces = []
    for box, labels_of in sorted(zip(kept_boxes, members, strict=True), key=lambda p: p[0][1]):
        top, left, bottom, right = box
        if bottom - top < STRAY * height:
            continue  # a dot, a dash, what is left of a printed line: no digit is this low
        mask = np.isin(labels[top:bottom, left:right], labels_of)
        pieces.append(Piece(mask, top, left, line.box(top, left, bottom, right)))
    return line, pieces
