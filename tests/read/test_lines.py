"""The line generator (data.lines.compose) and the line normalization (data.lines.normalize)."""

from __future__ import annotations

import pytest
import torch

from digitlab.data.lines import (
    BAND,
    HEIGHT,
    MARGIN,
    TOP,
    compose,
    normalize,
    normalize_batch,
)


def bars() -> tuple[torch.Tensor, torch.Tensor]:
    """Two classes whose drawings tell them apart anywhere: 0 a thin bar, 1 a wide block;
    20 px tall in the 28x28 frame, as MNIST's digits."""
    digits = torch.zeros(2, 28, 28, dtype=torch.uint8)
    digits[0, 4:24, 13:16] = 255
    digits[1, 4:24, 7:21] = 255
    return digits, torch.tensor([0, 1])


def runs(profile: torch.Tensor) -> list[tuple[int, int]]:
    """[start, stop) of each run of True in a 1-d bool tensor."""
    edges = torch.diff(torch.cat([torch.tensor([0]), profile.int(), torch.tensor([0])]))
    return list(zip((edges == 1).nonzero().flatten().tolist(),
                    (edges == -1).nonzero().flatten().tolist(), strict=True))


def test_compose_is_reproducible_and_consistent():
    digits, labels = bars()
    draw = lambda seed: compose(digits, labels, 12, torch.Generator().manual_seed(seed),  # noqa: E731
                                2, 5, touching=0.3)
    a, b, c = draw(0), draw(0), draw(1)
    assert torch.equal(a.images, b.images) and a.texts == b.texts
    assert not torch.equal(a.images[:, :, :, :16], c.images[:, :, :, :16]) or a.texts != c.texts
    assert a.images.shape[:3] == (12, 1, HEIGHT) and a.images.dtype == torch.float32
    assert 0 <= float(a.images.min()) and float(a.images.max()) <= 1
    assert all(2 <= n <= 5 for n in a.lengths.tolist())
    assert [len(t) for t in a.texts] == a.lengths.tolist()
    assert torch.cat([torch.tensor(t) for t in a.texts]).tolist() == a.targets.tolist()
    assert int(a.widths.max()) == a.images.shape[3]
    for image, width in zip(a.images, a.widths.tolist(), strict=True):
        assert float(image[:, :, width:].abs().sum()) == 0  # zeros past each line's width
        assert float(image[:, :TOP].sum()) == 0 and float(image[:, TOP + BAND:].sum()) == 0


def test_drawn_digits_follow_the_text_left_to_right():
    digits, labels = bars()
    lines = compose(digits, labels, 16, torch.Generator().manual_seed(3), 1, 8)
    k = 0
    for i, text in enumerate(lines.texts):
        ink = lines.images[i, 0] > 0.5
        profile = ink.any(0)
        spans = lines.spans[k: k + len(text)].tolist()
        k += len(text)
        starts = [x0 for x0, _x1 in spans]
        assert starts == sorted(starts)
        outside = profile.clone()
        for (x0, x1), label in zip(spans, text, strict=True):
            outside[max(x0 - 1, 0): x1 + 1] = False
            width = int(profile[x0:x1].sum())  # the block's ink is 4x the bar's width
            assert (width >= 7) if label == 1 else (1 <= width <= 5), (text, spans)
        assert not outside.any()  # every ink column belongs to a digit's span
        for (_a0, a1), (b0, _b1) in zip(spans, spans[1:], strict=False):
            assert a1 <= b0 + 1  # bars that do not touch leave a gap (rounded to a pixel)


def test_touching_pairs_really_touch():
    digits, labels = bars()
    lines = compose(digits, labels, 16, torch.Generator().manual_seed(4), 2, 6, touching=1.0)
    for i in range(len(lines)):
        ink = lines.images[i, 0] > 0.5
        assert len(runs(ink.any(0))) == 1  # one block of ink from the first digit to the last


def test_compose_takes_float_digits_and_augments():
    from digitlab.data.augment import Augment

    digits, labels = bars()
    plain = compose(digits.float() / 255, labels, 4, torch.Generator().manual_seed(5), 3, 3)
    same = compose(digits, labels, 4, torch.Generator().manual_seed(5), 3, 3)
    assert torch.allclose(plain.images, same.images, atol=1e-5)
    turned = compose(digits, labels, 4, torch.Generator().manual_seed(5), 3, 3,
                     augment=Augment(rotate=30.0))
    assert turned.texts == same.texts and not torch.equal(turned.images, same.images)


def photo_like(scale: int) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """An ink map of three strokes-and-blocks at `scale` times 20 px tall, on a wide page
    with blank borders; the input columns of each shape."""
    ink = torch.zeros(40 * scale, 120 * scale)
    shapes = [(10, 14), (30, 45), (70, 74)]  # columns at scale 1
    for x0, x1 in shapes:
        ink[10 * scale: 30 * scale, x0 * scale: x1 * scale] = 0.8
    return ink, [(x0 * scale, x1 * scale) for x0, x1 in shapes]


@pytest.mark.parametrize("scale", [1, 3, 10])
def test_normalize_fits_the_band_and_maps_back(scale):
    ink, shapes = photo_like(scale)
    line, placement = normalize(ink)
    assert line.shape[:2] == (1, HEIGHT) and line.shape[2] >= 16
    rows = (line[0] > 0.5).any(1).nonzero().flatten()
    assert int(rows.min()) == TOP and int(rows.max()) == TOP + BAND - 1  # the band, 24 rows
    assert float(line.max()) == pytest.approx(1.0)  # the stroke level becomes full ink
    assert placement.rows == (10 * scale, 30 * scale)
    found = runs((line[0] > 0.5).any(0))
    assert len(found) == 3 and found[0][0] == MARGIN
    for (x0, x1), (want0, want1) in zip(found, shapes, strict=True):
        got0, got1 = placement.to_input(x0, x1)
        assert abs(got0 - want0) <= 1.5 * scale and abs(got1 - want1) <= 1.5 * scale


def test_normalize_thickens_thin_strokes_of_a_large_input():
    ink = torch.zeros(300, 400)
    ink[50:250, 100] = 1.0  # a 1-pixel stroke, 200 px tall: 0.12 px once scaled to 24 rows
    ink[50:250, 300] = 1.0
    line, _placement = normalize(ink)
    columns = (line[0] > 0.5).any(0)
    assert len(runs(columns)) == 2 and int(columns.sum()) >= 2  # still there, at least 1 px
    thin, _ = normalize(ink, stroke=50.0)  # said to be thick: not thickened, so it fades
    assert float(thin[0].amax(0).sum()) < float(line[0].amax(0).sum())


def test_normalize_batch_is_normalize_line_by_line():
    inks = [photo_like(1)[0], photo_like(2)[0][:, :150], torch.zeros(80, 240)]
    inks[2][20:60, 30:200] = torch.rand(40, 170, generator=torch.Generator().manual_seed(0))
    height, width = max(i.shape[0] for i in inks), max(i.shape[1] for i in inks)
    canvas = torch.zeros(3, height, width)
    for i, ink in enumerate(inks):
        canvas[i, : ink.shape[0], : ink.shape[1]] = ink
    images, widths, _placements = normalize_batch(canvas, [None] * 3)
    for i, ink in enumerate(inks):
        alone, _ = normalize(ink)
        assert torch.equal(images[i, :, :, : int(widths[i])], alone)


def test_normalize_refuses_a_blank_map():
    with pytest.raises(ValueError, match="blank"):
        normalize(torch.zeros(30, 50))


class Fade:
    """An augmentation that leaves every digit at a tenth of its ink: below the ink level."""

    active = True

    def __call__(self, images, gen, background, ink):
        return images * 0.1


def test_a_digit_faded_by_augmentation_stays_as_written():
    """Thinned, turned and resampled, a thin stroke can fade below the ink level: a line of that
    digit alone was blank, and compose failed on it ('NoneType' object has no attribute 'left'),
    minutes into a read run with data.augment_lowres = 0.8 and data.augment_thickness = 0.5."""
    digits, labels = bars()
    plain = compose(digits, labels, 6, torch.Generator().manual_seed(3), 1, 1)
    faded = compose(digits, labels, 6, torch.Generator().manual_seed(3), 1, 1, augment=Fade())
    assert faded.texts == plain.texts
    assert torch.equal(faded.images, plain.images)  # the digits as written, not blank


def test_thin_strokes_under_real_augmentation_never_make_a_blank_line():
    from digitlab.data.augment import Augment

    digits = torch.zeros(1, 28, 28, dtype=torch.uint8)
    digits[0, 4:24, 14] = 255  # a one-pixel "1"
    lines = compose(digits, torch.tensor([1]), 64, torch.Generator().manual_seed(0), 1, 1,
                    augment=Augment(thickness=0.5, rotate=30.0, lowres=0.8))
    assert all(text == [1] for text in lines.texts)
    assert (lines.images.flatten(1).amax(1) > 0.5).all()  # every line has its digit's ink
