"""A photo or scan of one line of handwritten digits -> one 28x28 frame per digit, left to right.

The `segment` method of `digitlab read`; any single-digit run reads the frames it gives.

1. the line's ink at a working scale set by the input (small scans upsampled first; large
   photos reduced, and the band of digits redone from the full-resolution pixels when the
   digits came out small), with predict's polarity, paper, ruled-line and shadow handling;
2. connected components of the ink; specks, and marks far above or below the line, dropped;
3. broken strokes merged: a short piece that lies mostly above or below another component
   (a 5's flag, the top of a 4) joins it; taller neighbours that share most of their
   columns (a 9's loop and its stem) may be read as one (`unions`), if the model agrees;
4. touching digits split: a component wider than one digit may be cut along paths from its
   top to its bottom that cross the least ink (`cut_paths`; straight down between digits
   apart, along the slant where they touch or overlap sideways); the reader decides between
   the whole and the cut versions of a doubtful component by the model's confidence;
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
DOUBT = 0.8  # a component this wide (in line heights) may hold touching digits
NARROWEST = 0.12  # a digit ("1") is at least this wide, in line heights ...
WIDEST = 1.3  # ... and at most this wide
CORE = 0.5  # components are found in the ink over this level (the stroke cores)
MAX_CUTS = 14  # cut candidates per component, those crossing the least ink
JOIN = 0.5  # neighbouring pieces that share this much of the narrower one's columns ...
JOINED = 3  # ... may be read as one digit (reader.segmented), up to this many of them
REACH = 0.25  # a cut path strays at most this far (in line heights) from where it starts ...
SIDEWAYS = 0.5  # ... and each column it moves costs as much as half a pixel of ink crossed


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


def cut_candidates(piece: Piece, line: Line) -> list[int]:
    """Columns (the piece's own) where the ink is thinnest among its neighbours a stroke or
    two either side: where a straight cut would cross the least ink."""
    profile = ndimage.uniform_filter1d(piece.mask.sum(axis=0).astype(np.float64), 3)
    width = profile.size
    reach = max(2, int(round(line.stroke)))
    local_min = profile <= ndimage.minimum_filter1d(profile, 2 * reach + 1)
    gap = max(2, int(NARROWEST * line.height))
    return sorted(int(x) for x in np.flatnonzero(local_min) if gap <= x <= width - gap)


def paths_from(ink: np.ndarray, starts: np.ndarray, reach: int) -> tuple[np.ndarray, np.ndarray]:
    """For each start column, the path from the top row to the bottom one, a column per row
    within `reach` of the start and moving at most one column from row to row, that crosses
    the least ink (a dynamic programme over the rows, all starts at once; each column moved
    costs SIDEWAYS). Returns (costs [S], paths [S, rows])."""
    rows, width = ink.shape
    offsets = np.arange(-reach, reach + 1)
    cols = starts[:, None] + offsets[None, :]  # [S, 2 * reach + 1]
    inside = (cols >= 0) & (cols < width)
    cols = cols.clip(0, width - 1)
    blocked = np.where(inside, 0.0, np.inf)
    cost = ink[0][cols] + blocked + SIDEWAYS * np.abs(offsets)
    moves = np.zeros((rows, *cols.shape), dtype=np.int8)
    edge = np.full((len(starts), 1), np.inf)
    for r in range(1, rows):
        options = np.stack([np.hstack([edge, cost[:, :-1]]) + SIDEWAYS, cost,
                            np.hstack([cost[:, 1:], edge]) + SIDEWAYS])
        step = options.argmin(axis=0)
        moves[r] = step - 1
        cost = np.take_along_axis(options, step[None], axis=0)[0] + ink[r][cols] + blocked
    at = cost.argmin(axis=1)
    total = cost[np.arange(len(starts)), at]
    paths = np.empty((len(starts), rows), dtype=np.int64)
    for r in range(rows - 1, -1, -1):
        paths[:, r] = cols[np.arange(len(starts)), at]
        at = at + moves[r, np.arange(len(starts)), at]
    return total, paths


def cut_paths(piece: Piece, line: Line) -> list[np.ndarray]:
    """Where the piece may be cut between two digits, left to right: paths from its top row
    to its bottom one (the first column right of the cut, per row) that cross the least ink
    near each column, so that digits which overlap sideways or touch along a slant come
    apart; the straight cuts at the thinnest columns are candidates too. At most MAX_CUTS of
    the cheapest, none closer to an edge or to each other than the narrowest digit."""
    ink = piece.mask.astype(np.float64)
    rows, width = ink.shape
    gap = max(2, int(NARROWEST * line.height))
    if width < 2 * gap:
        return []
    starts = np.arange(gap, width - gap + 1, max(1, int(line.stroke / 2)))
    costs, paths = paths_from(ink, starts, max(3, int(REACH * line.height)))
    straight = cut_candidates(piece, line)
    costs = np.concatenate([costs, ink[:, straight].sum(axis=0)])
    paths = np.concatenate([paths, np.repeat(np.array(straight, dtype=np.int64)[:, None],
                                             rows, axis=1)])
    chosen: list[np.ndarray] = []
    for i in np.argsort(costs, kind="stable"):
        mean = paths[i].mean()
        if gap <= mean <= width - gap and all(abs(mean - c.mean()) >= gap for c in chosen):
            chosen.append(paths[i])
        if len(chosen) == MAX_CUTS:
            break
    return sorted(chosen, key=lambda path: path.mean())


def part(piece: Piece, left: np.ndarray, right: np.ndarray, line: Line) -> Piece | None:
    """The piece's ink between two boundaries (per row: from column left[row] up to, not
    including, right[row]), trimmed to its box; None when there is none."""
    columns = np.arange(piece.mask.shape[1])[None, :]
    mask = piece.mask & (columns >= left[:, None]) & (columns < right[:, None])
    if not mask.any():
        return None
    top, x0, bottom, x1 = bounding_box(mask)
    y, x = piece.top + top, piece.left + x0
    return Piece(mask[top:bottom, x0:x1], y, x, line.box(y, x, y + bottom - top, x + x1 - x0))


def segments(piece: Piece, line: Line) -> tuple[int, list[tuple[int, int, Piece]]]:
    """The parts a piece may be read in, as (number of boundaries - 1, [(i, j, part)]):
    the part between its boundaries i < j (0 its left edge, then the cut paths, the last
    its right edge). A piece narrower than DOUBT line heights is one part; a wider one is
    also every run of parts as wide as a digit can be, and the reader chooses."""
    rows, width = piece.mask.shape
    edges = [np.zeros(rows, dtype=np.int64), np.full(rows, width, dtype=np.int64)]
    if width >= DOUBT * line.height:
        edges[1:1] = cut_paths(piece, line)
    last = len(edges) - 1
    low, high = NARROWEST * line.height, WIDEST * line.height
    found = []
    for i in range(last):
        for j in range(i + 1, last + 1):
            one = part(piece, edges[i], edges[j], line)
            if one is not None and ((i, j) == (0, last) or low <= one.mask.shape[1] <= high):
                found.append((i, j, one))
    return last, found


def side_overlap(a: Piece, b: Piece) -> float:
    """The columns two pieces share, as a share of the narrower one's width."""
    shared = min(a.box[2], b.box[2]) - max(a.box[0], b.box[0])
    return max(shared, 0) / max(min(a.box[2] - a.box[0], b.box[2] - b.box[0]), 1)


def joined(pieces: list[Piece], line: Line) -> Piece:
    """Several pieces as one (their masks in the box around them all)."""
    top = min(p.top for p in pieces)
    left = min(p.left for p in pieces)
    bottom = max(p.top + p.mask.shape[0] for p in pieces)
    right = max(p.left + p.mask.shape[1] for p in pieces)
    mask = np.zeros((bottom - top, right - left), dtype=bool)
    for p in pieces:
        rows, cols = p.mask.shape
        mask[p.top - top:p.top - top + rows, p.left - left:p.left - left + cols] |= p.mask
    return Piece(mask, top, left, line.box(top, left, bottom, right))


def unions(pieces: list[Piece], line: Line) -> list[tuple[int, int, Piece]]:
    """Runs of neighbouring pieces, k to m inclusive, that may be one digit drawn in strokes
    apart (a 9's loop and its stem, the two halves of an 8), as (k, m, the pieces joined):
    each shares at least JOIN of the narrower one's columns with the next, there are at
    most JOINED of them, and together they are no wider than a digit can be."""
    found = []
    for k in range(len(pieces) - 1):
        for m in range(k + 1, min(k + JOINED, len(pieces))):
            if side_overlap(pieces[m - 1], pieces[m]) < JOIN:
                break
            union = joined(pieces[k:m + 1], line)
            if union.mask.shape[1] <= WIDEST * line.height:
                found.append((k, m, union))
    return found


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
