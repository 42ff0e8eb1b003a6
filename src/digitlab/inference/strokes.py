"""The measuring tools of preprocessing: a grey image in, an ink map out, every window sized
from the strokes themselves.

An "ink map" is float32 in [0, 1] with 1 for ink and 0 for paper, whatever the input's
polarity. The morphology here is separable and runs in O(log window) whole-array numpy
operations, so a stroke-sized window costs the same as a 3-pixel one.
"""

from __future__ import annotations

import numpy as np

MIN_CONTRAST = 0.08  # ink must differ from the paper by ~20 grey levels, or the image is blank
NOISE_SIGMAS = 3.0  # the paper's noise floor: median + 3 robust standard deviations
NOISE_PEAK = 6.0  # ink stands out 6 of them above it (noise alone reaches ~4.5 in 10^5 pixels)
MIN_INK_PIXELS = 4  # ... in at least this many pixels, or the image is blank
UNEVEN = 0.12  # paper whose large-scale brightness spans more than 12% of the ink contrast
BINS = 1024  # histogram resolution for quantiles of [0, 1] maps (one grey level is 4 bins)


# ---------------------------------------------------------------- statistics


def histogram(values: np.ndarray) -> np.ndarray:
    """Counts of [0, 1] values in BINS bins: quantiles from a histogram are an O(n) pass,
    a sort-based np.percentile is several times slower on a 320x240 map."""
    index = np.clip(values * (BINS - 1) + 0.5, 0, BINS - 1).astype(np.intp)
    return np.bincount(index.ravel(), minlength=BINS)


def quantile(counts: np.ndarray, q: float) -> float:
    cumulative = np.cumsum(counts)
    if cumulative[-1] == 0:
        return 0.0
    return float(np.searchsorted(cumulative, q * cumulative[-1])) / (BINS - 1)


def otsu(counts: np.ndarray) -> float:
    """The threshold that best separates a histogram into two classes (Otsu, 1979)."""
    levels = np.arange(BINS, dtype=np.float64)
    weight = np.cumsum(counts, dtype=np.float64)
    total = weight[-1]
    if total == 0:
        return 0.5
    mass = np.cumsum(counts * levels)
    below, above = weight, total - weight
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mass[-1] * below - total * mass) ** 2 / (below * above)
    between[~np.isfinite(between)] = -1.0
    return (float(np.argmax(between)) + 0.5) / (BINS - 1)


# ---------------------------------------------------------------- morphology


def _along(axis: int, start: int | None, stop: int | None) -> tuple:
    return (slice(None),) * axis + (slice(start, stop),)


def extreme_filter1d(values: np.ndarray, size: int, axis: int, op) -> np.ndarray:
    """op (np.minimum or np.maximum) over a centred window of `size` along `axis`, edges
    repeated. Windows double (1, 2, 4, ...) so a size-k window costs ~log2(k) array ops."""
    if size <= 1:
        return values
    before = size // 2
    pad = [(0, 0)] * values.ndim
    pad[axis] = (before, size - 1 - before)
    result = np.pad(values, pad, mode="edge")
    span = 1
    while span * 2 <= size:
        result = op(result[_along(axis, None, -span)], result[_along(axis, span, None)])
        span *= 2
    length = values.shape[axis]
    if span < size:  # two overlapping windows of `span` cover the remaining `size`
        rest = size - span
        result = op(result[_along(axis, None, length)], result[_along(axis, rest, rest + length)])
    return result[_along(axis, None, length)]


def erode(values: np.ndarray, size: int) -> np.ndarray:
    """Grey erosion by a size x size square: bright structures narrower than it vanish."""
    return extreme_filter1d(extreme_filter1d(values, size, 0, np.minimum), size, 1, np.minimum)


def dilate(values: np.ndarray, size: int) -> np.ndarray:
    return extreme_filter1d(extreme_filter1d(values, size, 0, np.maximum), size, 1, np.maximum)


def opening(values: np.ndarray, size: int) -> np.ndarray:
    """Grey opening: removes bright (ink) structures narrower than the window and keeps
    everything wider, so a hard shadow edge or a dark corner stays in the background exactly
    and never turns into ink."""
    return dilate(erode(values, size), size)


def odd(value: float) -> int:
    return int(value) // 2 * 2 + 1


# ---------------------------------------------------------------- stroke width


def run_lengths(mask: np.ndarray) -> np.ndarray:
    """For each True pixel, the length of the horizontal run of True pixels it lies in."""
    padded = np.zeros((mask.shape[0], mask.shape[1] + 1), dtype=np.int8)
    padded[:, :-1] = mask
    flat = padded.ravel()
    edges = np.diff(flat, prepend=np.int8(0))
    lengths = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
    runs = np.zeros(flat.size, dtype=np.float32)
    runs[flat.astype(bool)] = np.repeat(lengths, lengths)
    return runs.reshape(padded.shape)[:, :-1]


def local_widths(mask: np.ndarray) -> np.ndarray:
    """Each ink pixel's local stroke width, h*v/sqrt(h^2+v^2) from its horizontal and
    vertical runs: exact for a straight stroke at any angle."""
    horizontal = run_lengths(mask)[mask]
    vertical = run_lengths(np.ascontiguousarray(mask.T)).T[mask]
    return horizontal * vertical / np.sqrt(horizontal ** 2 + vertical ** 2)


def stroke_width(mask: np.ndarray) -> float:
    """Typical stroke width of a binary ink mask, in pixels: the median of the local widths
    weighted by 1/width, i.e. by stroke length, so that a few wide blobs (a shadow kept as
    ink, a filled loop) do not outvote the pen."""
    if not mask.any():
        return 1.0
    local = np.sort(local_widths(mask))
    weights = np.cumsum(1.0 / local)
    return max(float(local[np.searchsorted(weights, 0.5 * weights[-1])]), 0.7)


def thickest_strokes(mask: np.ndarray) -> float:
    """The width of the thickest 2% of the ink by area: what a window must exceed to keep
    every stroke, however much thin ruled line surrounds the digit."""
    return max(float(np.percentile(local_widths(mask), 98)), 0.7) if mask.any() else 1.0


# ---------------------------------------------------------------- polarity and ink


def _ink_tail_is_dark(counts: np.ndarray, paper: float) -> bool | None:
    """Ink is the minority that lies outside the paper's range of brightness, however
    unevenly lit: with the paper taken as the middle (1 - 2 * paper) of all pixels, whether
    the darkest pixel stands out further below it than the lightest above it (by 2x), or
    None when neither side clearly does. Extremes, not quantiles: a 1-pixel stroke may be
    0.1% of a photo; noise reaches out equally on both sides."""
    levels = np.flatnonzero(counts) / (BINS - 1)
    dark = quantile(counts, paper) - levels[0]
    light = levels[-1] - quantile(counts, 1 - paper)
    if max(dark, light) > max(2 * min(dark, light), MIN_CONTRAST):
        return dark > light
    return None


def dark_ink_on_light(grey: np.ndarray, photo: bool) -> bool:
    """True when the paper is lighter than the ink.

    A scan votes with its border (mostly paper, weight 2) and its median (paper is the
    majority), each against the midpoint of the darkest and lightest 2% (or of the darkest
    and lightest pixel, when the ink is less than 2%). In a photo a shadow can darken most
    of the border, so first the ink's tail decides, against the middle 80% and the middle
    50% of pixels as the paper (a digit may cover more than 10% of the image; a shadow,
    more than a quarter); if those disagree or are unclear, the border's brighter quarter
    votes, which a shadow over up to 3/4 of the border leaves lit."""
    counts = histogram(grey)
    border_quantile = 0.5
    if photo:
        wide, narrow = _ink_tail_is_dark(counts, 0.1), _ink_tail_is_dark(counts, 0.25)
        if wide is not None and narrow in (None, wide):
            return wide
        if wide is None and narrow is not None:
            return narrow
        border_quantile = 0.75
    low, high = quantile(counts, 0.02), quantile(counts, 0.98)
    if high - low < MIN_CONTRAST:  # the ink is under 2% of the image: take the extremes
        levels = np.flatnonzero(counts) / (BINS - 1)
        low, high = levels[0], levels[-1]
    middle = (low + high) / 2
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    border_level = float(np.quantile(border, border_quantile))
    return 2.0 * (border_level - middle) + (quantile(counts, 0.5) - middle) >= 0


def normalize_ink(ink: np.ndarray, gain: np.ndarray | float = 1.0) -> tuple[np.ndarray, float]:
    """Ink above the paper's noise floor, scaled so that a typical stroke's core is 1; and
    the contrast (core minus floor) in the input's units, 0 when nothing stands out.

    The floor is measured on the paper's side of an Otsu split, which holds however much of
    the image is ink. The core is the 90th percentile of the ink's side: a typical stroke,
    not the darkest crossing of two. There is ink at all when MIN_INK_PIXELS stand out by
    NOISE_PEAK standard deviations of the paper's noise and by MIN_CONTRAST in brightness
    (`ink * gain`); then a faint core (a few pixels of digit among fainter ruled lines)
    still counts as MIN_CONTRAST."""
    counts = histogram(ink)
    split = otsu(counts)
    paper = counts.copy()
    paper[int(split * (BINS - 1)) + 1:] = 0
    median = quantile(paper, 0.5)
    sigma = (median - quantile(paper, 0.25)) / 0.6745  # from the lower quartile
    floor = median + NOISE_SIGMAS * sigma
    above = ink - floor
    standing_out = (above >= NOISE_PEAK * sigma) & (above * gain >= MIN_CONTRAST)
    if np.count_nonzero(standing_out) < MIN_INK_PIXELS:
        return np.zeros_like(ink), 0.0  # nothing stands out of the paper and its noise
    strong = ink[ink > max(floor, split)]
    core = quantile(histogram(strong), 0.9) if strong.size else float(ink.max())
    contrast = max(core - floor, MIN_CONTRAST)
    return np.clip((ink - floor) / contrast, 0.0, 1.0), contrast


def above_paper(brightness: np.ndarray, paper: np.ndarray | float,
                dark_ink: bool) -> tuple[np.ndarray, np.ndarray | float]:
    """How far each pixel stands out from the paper, and the factor back to brightness.
    Dark ink on paper absorbs a fraction of the light that falls on it, so it is measured as
    a ratio to the paper's brightness: a stroke in a shadow keeps its full contrast. Light
    ink (chalk, a screen) is a difference."""
    if dark_ink:
        lit = np.maximum(1.0 - paper, 0.05)
        return np.clip((brightness - paper) / lit, 0.0, 1.0), lit
    return np.clip(brightness - paper, 0.0, 1.0), 1.0


def ink_map(brightness: np.ndarray, photo: bool, dark_ink: bool) -> tuple[np.ndarray, float]:
    """Ink-bright grey [0, 1] -> (ink map, stroke width in pixels).

    Scans and drawings (photo False) just have their paper level subtracted. In a photo, an
    opening a quarter of the image wide, which no pen stroke survives, gives the paper's
    large-scale brightness and the strokes above it are measured; only if that paper is
    uneven (a gradient, a shadow, a dark corner) is a background removed, by an opening 3
    times as wide as the thickest strokes, which keeps every stroke and keeps hard shadow
    edges out of the ink."""
    if float(brightness.max() - brightness.min()) < MIN_CONTRAST:
        return np.zeros_like(brightness), 1.0  # one flat colour: blank
    if photo:
        paper = opening(brightness, odd(max(3, min(brightness.shape) / 4)))
        rough, contrast = normalize_ink(*above_paper(brightness, paper, dark_ink))
        if contrast == 0:
            return rough, 1.0
        counts = histogram(paper)
        if quantile(counts, 0.98) - quantile(counts, 0.02) > UNEVEN * contrast:
            window = odd(3 * thickest_strokes(rough > 0.5) + 3)
            if window < min(brightness.shape) / 4:
                paper = opening(brightness, window)
        else:
            paper = quantile(counts, 0.5)
    else:
        counts = histogram(brightness)
        counts[int(otsu(counts) * (BINS - 1)) + 1:] = 0
        paper = quantile(counts, 0.5)
    ink, _ = normalize_ink(*above_paper(brightness, paper, dark_ink))
    return ink, stroke_width(ink > 0.5) if ink.any() else 1.0
