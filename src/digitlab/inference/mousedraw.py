"""Digits drawn with a mouse, seeded: test inputs like those the `digitlab serve` page sends.

The page (serve/static/app.js) draws white, round-capped strokes 20 px wide on a black
280x280 canvas and posts it as a PNG. Here each digit has one or more hand-designed
skeletons; a drawing jitters the skeleton's points, sets its size, aspect ratio, slant,
rotation and place on the pad, adds a hand's tremor, samples the path as mouse events and
strokes them with the page's pen. The same seed and index give the same pixels.

A skeleton is written in a box 100 units wide and 100 high (x to the right, y down), one
string per stroke: the points a smooth curve passes through, "x,y x,y ...", where a point
marked with `*` is a corner (the curve stops there and a new one starts). Two points make
a straight line.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

CANVAS = 280  # px: the page's drawing pad
PEN = 20  # px: the page's STROKE (round caps and joins)
SUPERSAMPLE = 4  # drawn this much larger and box-averaged down: the canvas's anti-aliasing
JITTER = (2.0, 6.0)  # units of the 100-unit box: a drawing's standard deviation of each
# skeleton point is drawn from this range (a careful to a hasty hand)
SHIFT = 3.0  # units: standard deviation of each stroke's own offset (strokes that miss a bit)
STEP = 1.0  # units of the 100-unit box between samples of a smooth path

SKELETONS: dict[int, tuple[tuple[str, ...], ...]] = {
    0: (("50,0 20,12 5,45 15,85 45,100 80,88 95,55 85,15 55,0 40,5",),
        ("70,5 40,0 12,25 5,60 25,95 60,100 90,75 95,35 75,5 55,3",)),
    1: (("50,0 50,100",),
        ("30,20 55,0* 55,100",)),
    2: (("8,25 30,3 65,0 88,20 80,45 45,75 5,100* 95,100",),
        ("10,20 40,0 75,5 85,30 60,60 10,100* 40,95 95,98",)),
    3: (("10,12 45,0 82,10 85,32 45,48* 88,62 88,88 55,100 10,90",),
        ("10,12 45,0 82,10 85,32 50,47 88,62 88,88 55,100 10,90",)),
    4: (("60,0 5,65* 95,65", "72,30 72,100"),
        ("15,0 8,60* 90,60", "72,5 72,100")),
    5: (("80,0 22,0* 18,45* 45,38 78,48 90,72 75,95 45,100 10,88",),
        ("22,0 18,45* 45,38 78,48 90,72 75,95 45,100 10,88", "22,0 85,0")),
    6: (("75,0 40,15 15,50 12,80 35,100 70,95 85,72 70,52 40,50 15,68",),),
    7: (("5,0 95,0* 40,100",),
        ("5,5 95,0* 60,50 45,100",)),
    8: (("85,12 50,0 15,12 20,35 50,50 80,68 85,88 50,100 15,88 20,68 50,50 80,32 85,12",),),
    9: (("85,18 55,0 18,8 12,35 40,50 78,40 88,15* 85,55 78,100",),
        ("85,20 55,0 18,8 12,35 40,50 78,40 88,15* 88,100",)),
}


def parse(stroke: str) -> tuple[np.ndarray, np.ndarray]:
    """A stroke's points (float [n, 2]) and which of them are corners (bool [n])."""
    tokens = stroke.split()
    points = np.array([[float(v) for v in t.rstrip("*").split(",")] for t in tokens])
    return points, np.array([t.endswith("*") for t in tokens])


def catmull_rom(points: np.ndarray) -> np.ndarray:
    """Dense samples (float [m, 2]) of the smooth curve through `points`, ends included."""
    padded = np.vstack([2 * points[0] - points[1], points, 2 * points[-1] - points[-2]])
    samples = [points[:1]]
    for i in range(1, len(padded) - 2):
        p0, p1, p2, p3 = padded[i - 1:i + 3]
        count = max(2, int(np.ceil(np.linalg.norm(p2 - p1) / STEP)))
        t = np.linspace(0, 1, count + 1)[1:, None]
        samples.append(0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t ** 2
                              + (3 * p1 - p0 - 3 * p2 + p3) * t ** 3))
    return np.vstack(samples)


def trace(points: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """The stroke's dense path: one smooth curve between each pair of corners."""
    cuts = [0, *np.flatnonzero(corners[1:-1]) + 1, len(points) - 1]
    pieces = [catmull_rom(points[a:b + 1]) for a, b in zip(cuts, cuts[1:], strict=False)]
    return np.vstack([pieces[0], *(piece[1:] for piece in pieces[1:])])


def pose(rng: np.random.Generator) -> np.ndarray:
    """A 2x2 matrix from box units to pad pixels: height, aspect ratio, slant and rotation."""
    height = rng.uniform(0.35, 0.85) * CANVAS / 100  # px per box unit, vertically
    aspect = rng.uniform(0.55, 0.9)  # width over height
    slant = rng.uniform(-0.15, 0.35)  # tan of the lean to the right (y grows downwards)
    angle = np.radians(rng.uniform(-8, 8))
    rotate = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
    return rotate @ np.array([[aspect, -slant], [0.0, 1.0]]) * height


def tremor(path: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The path with a hand's slow wobble: noise smoothed over about 15 samples, ~1 px."""
    noise = rng.normal(0, 1, (len(path) + 30, 2))
    kernel = np.hanning(17)
    kernel /= np.sqrt((kernel ** 2).sum())  # unit variance after smoothing
    smooth = np.stack([np.convolve(noise[:, k], kernel, "same") for k in range(2)], axis=1)
    return path + rng.uniform(0.3, 1.5) * smooth[15:15 + len(path)]


def mouse_events(path: np.ndarray, spacing: float) -> np.ndarray:
    """The points a mouse reports along the path, about `spacing` px apart, ends included."""
    travelled = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))])
    marks = np.arange(0.0, travelled[-1], spacing)
    keep = np.unique(np.searchsorted(travelled, marks))
    return np.vstack([path[keep], path[-1:]])


def strokes(digit: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One drawing of `digit`: each stroke's mouse events in pad pixels (float [k, 2])."""
    variants = SKELETONS[digit]
    skeleton = variants[int(rng.integers(len(variants)))]
    matrix = pose(rng)
    jitter = rng.uniform(*JITTER)
    paths = []
    for stroke in skeleton:
        points, corners = parse(stroke)
        points = points + rng.normal(0, jitter, points.shape) + rng.normal(0, SHIFT, 2)
        paths.append((trace(points, corners) - 50) @ matrix.T)
    low = np.min([p.min(0) for p in paths], axis=0) - PEN / 2 - 2
    high = np.max([p.max(0) for p in paths], axis=0) + PEN / 2 + 2
    room = CANVAS - (high - low)  # px left over on each axis
    # anywhere on the pad that holds the whole drawing (centred when it is too big to move)
    offset = -low + rng.uniform(0, 1, 2) * np.maximum(room, 0) + np.minimum(room, 0) / 2
    spacing = rng.uniform(3, 12)  # px between mouse events: a slow to a quick hand
    return [mouse_events(tremor(path + offset, rng), spacing) for path in paths]


def draw(paths: list[np.ndarray]) -> np.ndarray:
    """uint8 [CANVAS, CANVAS]: the strokes in white on black, as the page's canvas holds them."""
    scale = SUPERSAMPLE
    image = Image.new("L", (CANVAS * scale, CANVAS * scale), 0)
    pen = ImageDraw.Draw(image)
    radius = PEN * scale / 2
    for path in paths:
        points = [tuple(p) for p in path * scale]
        if len(points) > 1:
            pen.line(points, fill=255, width=PEN * scale)
        for x, y in points:  # round caps and joins
            pen.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
    return np.asarray(image.reduce(scale))


def drawing(index: int, seed: int = 0) -> tuple[np.ndarray, int]:
    """The index-th drawing of a seeded series: (uint8 [280, 280] white on black, digit).
    Digits go round 0..9, so any ten consecutive drawings hold every digit once."""
    digit = index % 10
    return draw(strokes(digit, np.random.default_rng([seed, index]))), digit
