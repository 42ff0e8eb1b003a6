"""What photos add to a scan: ruled and squared paper, specks, marks beside the digit.

Both steps work on an ink map (float [0, 1], ink bright), with distances in units of the
measured stroke width, of the digit's own size, or of the image for printed lines.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from digitlab.inference.strokes import dilate, odd

MAX_TILT = 6.0  # degrees: ruled lines in a hand-held photo are rarely tilted more
TILT_STEP = 0.5
LINE_COVER = 0.6  # a ruled line runs across at least 60% of the image
LINE_ALONE = 0.9  # ... and 90%, away from the image's edge, if it is the only one
LINE_MARGIN = 0.05  # ... and past the rest of the ink on both sides by 5% of the image
LINE_THICKEST = 0.015  # ... and is at most 1.5% of the image thick (4 pixels at least)
NEAR = 0.3  # a part of the digit lies within 30% of the digit's size from the rest of it
SMALL_PART = 0.1  # ... and has at least 10% of the main part's area (closer ones join it)
FAINT = 0.25  # ink map level from which a pixel belongs to a stroke (its anti-aliased rim)
PRINTED = 0.1  # ... and from which it may belong to a printed line, often fainter than a pen


# ---------------------------------------------------------------- ruled and squared paper


def _best_tilt(across: np.ndarray, along: np.ndarray) -> tuple[float, np.ndarray]:
    """The tilt whose projection across the lines is sharpest (sum of squared bin counts),
    and each ink pixel's bin at that tilt."""
    best = (-1.0, 0.0, across)
    for degrees in np.arange(-MAX_TILT, MAX_TILT + TILT_STEP / 2, TILT_STEP):
        bins = np.rint(across - along * np.tan(np.radians(degrees))).astype(np.intp)
        bins -= bins.min()
        score = float((np.bincount(bins).astype(np.float64) ** 2).sum())
        if score > best[0]:
            best = (score, float(np.tan(np.radians(degrees))), bins)
    return best[1], best[2]


def _bands(profile: np.ndarray, threshold: float, thickest: int) -> list[tuple[int, int]]:
    """Line-like peaks of the profile: around each run of bins at or above threshold, the
    bins within 60% of its highest, if no thicker than `thickest` (a long straight stroke
    of the digit beside a line is less than 60% as long, and not part of it)."""
    high = np.concatenate([[False], profile >= threshold, [False]])
    edges = np.flatnonzero(np.diff(high.astype(np.int8)))
    bands = []
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        peak = start + int(np.argmax(profile[start:stop]))
        first = last = peak
        while first > start and profile[first - 1] >= 0.6 * profile[peak]:
            first -= 1
        while last < stop - 1 and profile[last + 1] >= 0.6 * profile[peak]:
            last += 1
        if last - first + 1 <= thickest:
            bands.append((first, last))
    return bands


def _erase_band(ink: np.ndarray, slope: float, low: float, high: float) -> None:
    """Erase the line between across = low and high (at `slope`), in place. Its pixels take
    what lies on both sides of it, so a stroke that crosses the line is bridged and the line
    becomes paper; pixels much darker than the line itself (the pen running along it, as
    the foot of a digit on ruled paper does) are kept."""
    along = np.arange(ink.shape[1])
    top = np.floor(low + along * slope).astype(np.intp)
    bottom = np.ceil(high + along * slope).astype(np.intp)

    def value(rows: np.ndarray) -> np.ndarray:  # ink at (rows, along), paper off the image
        inside = (rows >= 0) & (rows < ink.shape[0])
        return np.where(inside, ink[np.clip(rows, 0, ink.shape[0] - 1), along], 0.0)

    above = np.maximum(value(top - 1), value(top - 2))
    below = np.maximum(value(bottom + 1), value(bottom + 2))
    bridge = np.minimum(above, below)
    rows = top + np.arange(int((bottom - top).max()) + 1)[:, None]  # [band row, along]
    band = (rows <= bottom) & (rows >= 0) & (rows < ink.shape[0])
    values = np.where(band, value(rows), 0.0)
    level = float(np.median(values.max(axis=0)))  # the printed line's own darkness
    pen = values > level + 0.5 * (1.0 - level)
    cols = np.broadcast_to(along, rows.shape)
    ink[rows[band], cols[band]] = np.where(pen, values, bridge)[band]


def _find_lines(ink: np.ndarray) -> tuple[list[tuple], np.ndarray]:
    """Near-horizontal straight lines across at least LINE_COVER of the image: a list of
    (slope, top, bottom, first column, last column, share of the columns covered), and the
    mask of their pixels."""
    rows, cols = np.nonzero(ink > PRINTED)
    bands_mask = np.zeros(ink.shape, dtype=bool)
    if rows.size == 0:
        return [], bands_mask
    slope, bins = _best_tilt(rows.astype(np.float64), cols.astype(np.float64))
    offset = float((rows - cols * slope - bins).mean())  # from bins back to rows at column 0
    width = ink.shape[1]
    lines = []
    for first, last in _bands(np.bincount(bins), 0.5 * LINE_COVER * width,
                              max(4, round(LINE_THICKEST * width))):
        members = (bins >= first - 1) & (bins <= last + 1)
        cover = np.unique(cols[members]).size / width
        if cover >= LINE_COVER:
            lines.append((slope, first - 1.5 + offset, last + 1.5 + offset,
                          int(cols[members].min()), int(cols[members].max()), cover))
            bands_mask[rows[members], cols[members]] = True
    return lines, bands_mask


def remove_ruled_lines(ink: np.ndarray, stroke: float) -> np.ndarray:
    """Long straight lines (ruled paper; both directions on squared paper) that run past the
    digit on both sides, removed; strokes that cross them bridged. The digit is what
    `digit_components` finds in the ink that is not on such a line; a line that ends where
    the digit ends (a 7's bar, a 1 alone) is the digit's own. Works on a copy."""
    across, across_mask = _find_lines(ink)
    down, down_mask = _find_lines(np.ascontiguousarray(ink.T))
    if not across and not down:
        return ink
    rest = (ink > FAINT) & ~across_mask & ~down_mask.T
    if rest.sum() < 4:
        return ink  # all the ink is lines: that is the digit
    rows, cols = np.nonzero(digit_components(np.where(rest, ink, 0.0), stroke, photo=True))
    ink = _erase_lines(ink.copy(), across, (cols.min(), cols.max()), stroke)
    # the vertical pass sees the horizontal lines gone, so grid crossings go too
    return _erase_lines(np.ascontiguousarray(ink.T), down, (rows.min(), rows.max()), stroke).T


def _erase_lines(ink: np.ndarray, lines: list[tuple], digit: tuple[float, float],
                 stroke: float) -> np.ndarray:
    """Erase the lines that are ruling: they run past the digit on both sides, and either
    there are several of them (ruled or squared paper) or one runs across the whole image
    away from its edge. A single stroke that merely overshoots the rest of the digit (a T's
    bar, the top of a 7 drawn against the edge) is the digit's own."""
    margin = max(2 * stroke, LINE_MARGIN * ink.shape[1])
    inner = (LINE_MARGIN * ink.shape[0], (1 - LINE_MARGIN) * ink.shape[0])
    for slope, top, bottom, start, end, cover in lines:
        middle = (top + bottom) / 2 + slope * ink.shape[1] / 2
        alone = cover >= LINE_ALONE and inner[0] < middle < inner[1]
        if (len(lines) >= 2 or alone) and start <= digit[0] - margin and \
                end >= digit[1] + margin:
            _erase_band(ink, slope, top, bottom)
    return ink


# ---------------------------------------------------------------- the digit's components


def _box_gap(boxes: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Distance in pixels between each of `boxes` and `box` (rows of y0, x0, y1, x1)."""
    dy = np.maximum(0, np.maximum(boxes[:, 0] - box[2], box[0] - boxes[:, 2]))
    dx = np.maximum(0, np.maximum(boxes[:, 1] - box[3], box[1] - boxes[:, 3]))
    return np.hypot(dy, dx)


def _component_table(labels: np.ndarray, count: int, ink: np.ndarray):
    """Per component: area (pixels over half contrast), mass (summed ink), boxes (y0, x0,
    y1, x1 inclusive, of its ink), centre."""
    flat = labels.ravel()
    area = np.bincount(flat, weights=(ink > 0.5).ravel(), minlength=count + 1)[1:]
    mass = np.bincount(flat, weights=ink.ravel(), minlength=count + 1)[1:]
    slices = ndimage.find_objects(np.where(ink > FAINT, labels, 0), max_label=count)
    boxes = np.array([[s[0].start, s[1].start, s[0].stop - 1, s[1].stop - 1] if s else
                      [0, 0, -1, -1] for s in slices], dtype=np.float64)
    centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], 1)
    return area, mass, boxes, centres


def digit_components(ink: np.ndarray, stroke: float, photo: bool) -> np.ndarray:
    """The digit's own ink (pixels over FAINT): the main component (by mass, favouring the
    centre and parts that do not touch the border) and the parts near it. Ink within two
    stroke widths (at most 4 pixels) is one component, so a thin stroke broken by the
    reduction or a light pen stays whole. Specks smaller than half a stroke's square and
    marks far from the digit are left out; in a photo, so is everything else that touches
    the border (a line, a shadow's corner, the table)."""
    faint = ink > FAINT
    # gaps left by a reduction in strokes of a pixel or two, not the paper beside a pen
    joined = dilate(faint.astype(np.float32), odd(min(2 * stroke, 4) + 1)) > 0
    labels, count = ndimage.label(joined, structure=np.ones((3, 3)))
    if count <= 1:
        return faint
    area, mass, boxes, centres = _component_table(labels, count, ink)
    height, width = ink.shape
    off_centre = np.hypot((centres[:, 0] - height / 2) / height, (centres[:, 1] - width / 2)
                          / width)
    touches = ((boxes[:, 0] == 0) | (boxes[:, 1] == 0) | (boxes[:, 2] == height - 1)
               | (boxes[:, 3] == width - 1))
    score = mass * (1 - off_centre) * np.where(touches, 0.5, 1.0) * (area > 0)
    main = int(np.argmax(score))
    keep = np.zeros(count, dtype=bool)
    keep[main] = True
    candidate = (area >= max(2.0, 0.5 * stroke ** 2)) & ~(touches & photo)
    box = boxes[main].copy()
    while True:
        size = max(box[2] - box[0], box[3] - box[1]) + 1
        near = _box_gap(boxes, box) <= max(2 * stroke, NEAR * size)
        grow = candidate & ~keep & near & (area >= SMALL_PART * area[main])
        if not grow.any():
            break
        keep |= grow
        chosen = boxes[keep]
        box = np.array([chosen[:, 0].min(), chosen[:, 1].min(), chosen[:, 2].max(),
                        chosen[:, 3].max()])
    return np.concatenate([[False], keep])[labels] & faint
