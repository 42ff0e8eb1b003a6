"""The promise of preprocessing, as a property: for any digit drawn with strokes 1 to 4
pixels wide on a canvas of 8 to 1000 pixels, dark on light or light on dark, at least 90% of
the stroke's ink survives into the 28x28. (The ink covers less than half of the canvas: on
an 8-pixel canvas, 4-pixel strokes can cover most of it, and then which side is paper cannot
be told.)

"Survives" is measured against a reference made from the same strokes by MNIST's own
procedure (the stroke mask cropped, fitted to the 20x20 box keeping its aspect ratio with an
area-averaging resize, placed by centre of mass in 28x28): the share of the reference's ink
that lies within one pixel of ink in preprocess's output, placed as well as a shift of up
to 2 pixels allows. Thickening thin strokes to MNIST's width may add ink (and move the centre
of mass a little); it must not lose any."""

from __future__ import annotations

import io

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw
from scipy import ndimage

from digitlab.inference.preprocess import preprocess

INK = 64  # a pixel of preprocess's output counts as ink from this level up


def mnist_reference(mask: np.ndarray) -> np.ndarray:
    """float [28, 28] in [0, 1]: the strokes by MNIST's procedure, without any cleaning."""
    rows, cols = np.nonzero(mask)
    crop = mask[rows.min(): rows.max() + 1, cols.min(): cols.max() + 1].astype(np.float32)
    scale = 20 / max(crop.shape)
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    digit = np.asarray(Image.fromarray(crop, "F").resize(size, Image.Resampling.BOX))
    digit = digit / digit.max()
    cy, cx = ndimage.center_of_mass(digit)
    top = min(max(int(round(14 - cy)), 0), 28 - size[1])
    left = min(max(int(round(14 - cx)), 0), 28 - size[0])
    frame = np.zeros((28, 28), dtype=np.float32)
    frame[top: top + size[1], left: left + size[0]] = digit
    return frame


def surviving_share(digit: np.ndarray, reference: np.ndarray) -> float:
    """The share of the reference's ink within a pixel of the digit's, at the best of the
    shifts by up to 2 pixels: thickening a thin stroke moves the centre of mass a little
    (a stroke on the image's edge is half cut off, then thickened whole)."""
    near_ink = ndimage.binary_dilation(digit >= INK, structure=np.ones((3, 3)))
    padded = np.pad(reference, 2)
    return max(float((padded[2 + dy: 30 + dy, 2 + dx: 30 + dx] * near_ink).sum())
               for dy in range(-2, 3) for dx in range(-2, 3)) / float(reference.sum())


@st.composite
def drawn_digits(draw):
    """(PNG bytes, stroke mask, description): a polyline of 2 to 5 points inside a box of
    50-90% of the canvas, at least 30% of that box long, strokes 1-4 pixels wide, either
    polarity, covering less than half of the canvas."""
    canvas = draw(st.integers(8, 1000))
    width = draw(st.integers(1, 4))
    extent = draw(st.floats(0.5, 0.9)) * canvas
    corner = draw(st.tuples(st.floats(0, 1), st.floats(0, 1)))
    x0, y0 = ((canvas - extent) * corner[0], (canvas - extent) * corner[1])
    unit = st.tuples(st.floats(0, 1), st.floats(0, 1))
    points = [(x0 + extent * x, y0 + extent * y)
              for x, y in draw(st.lists(unit, min_size=2, max_size=5))]
    length = float(np.hypot(*np.diff(np.array(points), axis=0).T).sum())
    assume(length >= max(3 * width, 0.3 * extent))  # a stroke, not a dot
    layer = Image.new("L", (canvas, canvas), 0)
    ImageDraw.Draw(layer).line(points, fill=255, width=width, joint="curve")
    mask = np.asarray(layer) > 127
    assume(mask.mean() < 0.5)  # paper must be the majority, or polarity is a coin toss
    dark_on_light = draw(st.booleans())
    image = Image.fromarray(255 - np.asarray(layer)) if dark_on_light else layer
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    points_text = ", ".join(f"({x:.1f}, {y:.1f})" for x, y in points)
    polarity = "dark on light" if dark_on_light else "light on dark"
    return buffer.getvalue(), mask, f"{canvas} px, {width}-px {polarity}: {points_text}"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drawn_digits())
def test_at_least_90_percent_of_the_strokes_ink_survives(case):
    data, mask, drawing = case
    digit = preprocess(data)
    share = surviving_share(digit, mnist_reference(mask))
    assert share >= 0.9, f"only {share:.0%} of the strokes' ink reached the 28x28 ({drawing})"
