"""The measuring tools of preprocessing (inference.strokes): morphology that matches scipy's,
stroke widths measured exactly on drawn bars, polarity, and ink maps that leave clean scans
untouched and take a photo's uneven paper away without taking strokes or shadow edges."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

from digitlab.inference.strokes import (
    dark_ink_on_light,
    extreme_filter1d,
    histogram,
    ink_map,
    normalize_ink,
    opening,
    otsu,
    stroke_width,
    thickest_strokes,
)


def bar(width: int, degrees: float, size: int = 200) -> np.ndarray:
    """A straight stroke `width` pixels wide through the middle, at an angle."""
    image = Image.new("L", (size, size), 0)
    half, centre = 0.35 * size, size / 2
    dx, dy = half * np.cos(np.radians(degrees)), half * np.sin(np.radians(degrees))
    ImageDraw.Draw(image).line([(centre - dx, centre - dy), (centre + dx, centre + dy)],
                               fill=255, width=width)
    return np.asarray(image) > 127


@pytest.mark.parametrize("size", [1, 2, 3, 4, 7, 8, 15, 16, 33, 60])
@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("op,reference", [(np.minimum, ndimage.minimum_filter1d),
                                          (np.maximum, ndimage.maximum_filter1d)])
def test_windowed_min_and_max_match_scipy(size, axis, op, reference):
    values = np.random.default_rng(size).random((37, 53)).astype(np.float32)
    expected = reference(values, size, axis=axis, mode="nearest")
    np.testing.assert_array_equal(extreme_filter1d(values, size, axis, op), expected)


def test_an_opening_removes_a_stroke_and_keeps_a_step_exactly():
    step = np.zeros((60, 80), dtype=np.float32)
    step[:, 40:] = 0.4  # a hard shadow edge, ink-bright: the shadowed side is brighter
    with_stroke = step.copy()
    with_stroke[10:50, 20:23] += 0.5  # a 3-pixel stroke on the lit side
    background = opening(with_stroke, 9)
    np.testing.assert_array_equal(background, step)


@pytest.mark.parametrize("width", [1, 3, 6, 10])
@pytest.mark.parametrize("degrees", [0, 30, 45, 90, 120])
def test_stroke_width_of_a_straight_stroke_at_any_angle(width, degrees):
    measured = stroke_width(bar(width, degrees))
    assert abs(measured - width) <= max(0.75, 0.2 * width), measured


def test_stroke_width_is_not_outvoted_by_a_blob():
    mask = bar(3, 20)
    mask[150:190, 10:60] = True  # a big filled blob (a shadow corner kept as ink)
    assert stroke_width(mask) < 4.5


def test_the_thickest_strokes_are_the_digits_not_the_ruled_lines():
    mask = np.zeros((300, 400), dtype=bool)
    mask[::30, :] = True  # ten 1-pixel ruled lines, 4,000 pixels of them
    mask[100:200, 150:158] = True  # an 8-pixel stroke, 800 pixels
    assert stroke_width(mask) < 2  # the typical stroke is a line...
    assert thickest_strokes(mask) >= 7  # ...but the window must fit the pen


def test_otsu_splits_two_modes():
    values = np.concatenate([np.full(900, 0.2), np.full(100, 0.8)])
    assert 0.2 < otsu(histogram(values)) < 0.8


@pytest.mark.parametrize("photo", [False, True])
def test_polarity_of_clean_drawings_either_way(photo):
    ink = bar(6, 60, size=200 if photo else 48).astype(np.float32)
    assert dark_ink_on_light(1.0 - ink, photo)
    assert not dark_ink_on_light(ink, photo)


def test_a_shadow_over_most_of_a_photos_border_is_not_taken_for_dark_paper():
    grey = np.full((240, 320), 0.85, dtype=np.float32)
    grey[:, 60:] *= 0.5  # 80% of the border in shadow, darker than the midpoint
    grey[80:160, 150:155] *= 0.2  # a stroke, in the shadow
    assert dark_ink_on_light(grey, photo=True)


def test_ink_under_2_percent_of_the_image_still_sets_polarity():
    ink = np.zeros((400, 400), dtype=np.float32)
    ink[50:350, 200] = 1.0  # one 1-pixel line: 0.2% of the pixels
    assert not dark_ink_on_light(ink, photo=True)
    assert dark_ink_on_light(1.0 - ink, photo=True)


def test_a_clean_binary_image_passes_untouched():
    ink = bar(5, 30).astype(np.float32)
    for photo in (False, True):
        result, _ = ink_map(ink, photo=photo, dark_ink=True)
        np.testing.assert_array_equal(result, ink)


def test_uneven_paper_is_removed_and_the_stroke_kept():
    yy, xx = np.mgrid[0:200, 0:300].astype(np.float32)
    paper = 0.1 + 0.5 * xx / 300 + 0.2 * yy / 200  # ink-bright: darker paper is brighter
    stroke = np.zeros_like(paper)
    stroke[40:160, 140:146] = 1.0
    brightness = paper + (1 - paper) * 0.8 * stroke  # ink absorbing 80% of the light
    ink, width = ink_map(brightness.astype(np.float32), photo=True, dark_ink=True)
    assert ink[stroke > 0].min() > 0.9  # every stroke pixel is ink
    # and the gradient is not (up to a trace at the border, where the window is cut off)
    assert ink[stroke == 0].max() < 0.25
    assert abs(width - 6) <= 1


def test_noise_alone_is_no_ink():
    noise = np.abs(np.random.default_rng(0).normal(0, 0.02, (200, 200))).astype(np.float32)
    ink, contrast = normalize_ink(noise)
    assert contrast == 0 and not ink.any()
