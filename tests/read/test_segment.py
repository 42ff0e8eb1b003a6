"""Segmentation of a line of digits (inference.segment) on lines the tests draw."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from scipy import ndimage

from digitlab.inference.cuts import WIDEST, cut_paths, part, segments, unions
from digitlab.inference.preprocess import ImageError, bounding_box, grey_levels
from digitlab.inference.reader import WIDE_COST, best_path, part_score
from digitlab.inference.segment import MAX_SIDE, Piece, find_line


def canvas(width: int = 400, height: int = 100) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("L", (width, height), 255)
    return image, ImageDraw.Draw(image)


def one(draw, x: int, top: int = 20, bottom: int = 80, width: int = 6) -> None:
    draw.line((x, top, x, bottom), fill=0, width=width)


def zero(draw, x: int, top: int = 20, bottom: int = 80, width: int = 6) -> None:
    draw.ellipse((x, top, x + 38, bottom), outline=0, width=width)


def pieces_of(image: Image.Image):
    grey, dark = grey_levels(image)
    return find_line(grey, dark, "test")


def test_separate_digits_come_out_left_to_right_with_their_boxes():
    image, draw = canvas()
    for x in (40, 160, 280):
        zero(draw, x)
    one(draw, 110)
    line, pieces = pieces_of(image)
    assert len(pieces) == 4
    lefts = [p.box[0] for p in pieces]
    assert lefts == sorted(lefts)
    assert abs(pieces[0].box[0] - 40) <= 4 and abs(pieces[1].box[0] - 107) <= 4
    for piece in pieces:  # every box is the digit's height, give or take the pen
        assert 14 <= piece.box[1] <= 20 and 80 <= piece.box[3] <= 86
    frames = [line.frame(p) for p in pieces]
    assert all(f.shape == (28, 28) and f.dtype == np.uint8 and f.max() == 255 for f in frames)


def test_specks_and_marks_far_from_the_line_are_dropped():
    image, draw = canvas(400, 200)
    for x in (60, 160, 260):
        zero(draw, x, 70, 130)
    draw.rectangle((20, 30, 22, 32), fill=0)  # a speck
    draw.rectangle((340, 100, 341, 101), fill=0)  # another, on the line
    draw.line((300, 5, 390, 5), fill=0, width=3)  # a stray mark far above
    _line, pieces = pieces_of(image)
    assert len(pieces) == 3


def test_a_broken_stroke_joins_its_digit():
    image, draw = canvas()
    one(draw, 60)
    # a "5": its flag drawn apart from the body, above it
    draw.line((150, 22, 185, 22), fill=0, width=6)
    draw.line((150, 34, 150, 50), fill=0, width=6)
    draw.arc((140, 40, 185, 82), 270, 180, fill=0, width=6)
    zero(draw, 250)
    _line, pieces = pieces_of(image)
    assert len(pieces) == 3
    assert pieces[1].box[1] <= 22 and pieces[1].box[3] >= 80


def test_tall_strokes_drawn_apart_in_the_same_columns_may_be_read_as_one_digit():
    """Two tall pieces in the same columns (a 9's loop, and its stem drawn beside it without
    meeting it) may be read as one digit; digits side by side are not joined."""
    image, draw = canvas()
    zero(draw, 40)
    zero(draw, 250)
    line, (left_zero, right_zero) = pieces_of(image)

    def block(top: int, left: int, rows: int, cols: int) -> Piece:
        return Piece(np.ones((rows, cols), dtype=bool), top, left,
                     line.box(top, left, top + rows, left + cols))

    loop, stem = block(20, 150, 40, 30), block(30, 170, 50, 10)
    found = unions([left_zero, loop, stem, right_zero], line)
    assert [(k, m) for k, m, _union in found] == [(1, 2)]
    union = found[0][2]
    assert (union.top, union.left, union.mask.shape) == (20, 150, (60, 30))
    assert union.mask.sum() == 40 * 30 + 20 * 10  # the loop, and the stem below it
    assert unions([left_zero, loop, block(30, 200, 50, 10), right_zero], line) == []


def test_a_one_beside_a_seven_stays_two_digits():
    image, draw = canvas()
    one(draw, 100)
    draw.line((115, 20, 160, 20), fill=0, width=6)  # the seven's bar reaches towards the one
    draw.line((160, 20, 130, 80), fill=0, width=6)
    _line, pieces = pieces_of(image)
    assert len(pieces) == 2


def test_touching_digits_get_a_cut_candidate_where_they_touch():
    image, draw = canvas()
    zero(draw, 60)
    zero(draw, 108)
    draw.line((96, 50, 110, 50), fill=0, width=6)  # a joining stroke: one component
    line, pieces = pieces_of(image)
    assert len(pieces) == 1
    piece = pieces[0]
    touch = 103 - piece.left  # the join's middle, in the piece's own columns
    paths = cut_paths(piece, line)
    assert any(abs(path.mean() - touch) <= 4 for path in paths)
    last, parts = segments(piece, line)
    assert last == len(paths) + 1
    near = [k + 1 for k, path in enumerate(paths) if abs(path.mean() - touch) <= 4]
    assert any(i == 0 and j in near for i, j, _part in parts)
    assert any(i == 0 and j == last for i, j, _part in parts)  # read whole is a choice too


def test_digits_that_overlap_sideways_are_cut_along_the_slant():
    """Two slanted strokes joined by a bar: every straight column between them crosses both,
    a cut path slips between them and crosses only the bar."""
    image, draw = canvas()
    draw.line((100, 20, 130, 80), fill=0, width=6)
    draw.line((130, 20, 160, 80), fill=0, width=6)
    draw.line((115, 50, 145, 50), fill=0, width=6)
    line, pieces = pieces_of(image)
    assert len(pieces) == 1
    piece = pieces[0]
    rows, width = piece.mask.shape
    middle = [path for path in cut_paths(piece, line) if width / 3 <= path.mean() <= 2 * width / 3]
    crossed = [int(piece.mask[np.arange(rows), path].sum()) for path in middle]
    straight = piece.mask[:, width // 3:2 * width // 3].sum(axis=0)
    assert min(crossed) <= 8 < straight.min()
    best = middle[int(np.argmin(crossed))]
    left = part(piece, np.zeros(rows, dtype=np.int64), best, line)
    right = part(piece, best, np.full(rows, width, dtype=np.int64), line)
    # each side holds one whole stroke: the left one's top and the right one's bottom stay
    # out of the other side
    assert left.box[0] <= 100 and left.box[2] <= 140
    assert right.box[0] >= 118 and right.box[2] >= 160
    assert left.box[1] <= 22 and left.box[3] >= 80 and right.box[1] <= 22


def test_a_long_number_of_touching_digits_can_be_cut_into_all_of_them():
    """24 zeros joined in a chain are one piece: it gets enough cut candidates to be read as
    24 digits, not only as one (with at most MAX_CUTS = 14 cuts it could not be tiled)."""
    image, draw = canvas()
    zero(draw, 60)
    line, _pieces = pieces_of(image)  # a line of 60 px digits
    chain, draw = canvas(1040, 100)
    for k in range(24):
        zero(draw, 20 + 42 * k)
        if k:
            draw.line((12 + 42 * k, 50, 24 + 42 * k, 50), fill=0, width=6)  # a join
    mask = np.asarray(chain) < 128
    top, left, bottom, right = bounding_box(mask)
    piece = Piece(mask[top:bottom, left:right], top, left, (left, top, right, bottom))
    assert ndimage.label(piece.mask, structure=np.ones((3, 3)))[1] == 1
    last, parts = segments(piece, line)
    assert last >= 24
    split = [(i, j) for i, j, _p in parts if (i, j) != (0, last)]
    path = best_path(split, [-1.0] * len(split), last)  # each part costs 1: the fewest parts
    assert 12 <= len(path) <= 24  # a tiling by parts no wider than a digit can be
    assert all(p.mask.shape[1] <= WIDEST * line.height for i, j, p in parts
               if (i, j) != (0, last))


def test_narrow_components_are_not_cut():
    image, draw = canvas()
    one(draw, 100)
    line, pieces = pieces_of(image)
    last, parts = segments(pieces[0], line)
    assert last == 1 and [(i, j) for i, j, _p in parts] == [(0, 1)]
    assert np.array_equal(parts[0][2].mask, pieces[0].mask)


def test_a_piece_read_whole_though_wider_than_a_digit_costs_more():
    image, draw = canvas()
    zero(draw, 60)
    line, pieces = pieces_of(image)
    piece = pieces[0]
    wide = Piece(np.ones((piece.mask.shape[0], int(2 * line.height)), dtype=bool), 0, 0,
                 (0, 0, 1, 1))
    probs = torch.tensor([0.1, 0.9])
    assert part_score(probs, piece, line) == pytest.approx(np.log(0.9))
    expected = np.log(0.9) - WIDE_COST * (wide.mask.shape[1] / line.height - WIDEST)
    assert part_score(probs, wide, line) == pytest.approx(expected)


@pytest.mark.parametrize("size", [(300, 8), (3000, 400)])
def test_small_scans_and_large_photos_keep_their_digits(size):
    width, height = size
    image, draw = canvas(width, height)
    for k in range(3):
        x = width * (1 + 3 * k) // 10
        draw.ellipse((x, height // 5, x + width // 12, height * 4 // 5), outline=0,
                     width=max(1, height // 12))
    _line, pieces = pieces_of(image)
    assert len(pieces) == 3
    assert all(p.box[2] <= width and p.box[3] <= height for p in pieces)


def test_blank_and_too_wide_inputs_are_refused_in_one_line():
    image, _draw = canvas()
    with pytest.raises(ImageError, match="no digits found"):
        pieces_of(image)
    wide = Image.new("L", (MAX_SIDE + 8000, 40), 255)
    with pytest.raises(ImageError, match="too long for one line"):
        pieces_of(wide)


def test_pure_noise_reads_as_few_digits_or_none():
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (80, 400), dtype=np.uint8))
    try:
        _line, pieces = pieces_of(noise)
    except ImageError:
        return
    assert all(isinstance(p, Piece) for p in pieces)


def test_the_best_path_tiles_the_piece_with_the_surest_parts():
    ranges = [(0, 1), (1, 2), (0, 2)]  # boundaries: the left edge, one cut, the right edge
    assert best_path(ranges, [-0.1, -0.1, -2.0], 2) == [0, 1]
    assert best_path(ranges, [-0.1, -3.0, -0.5], 2) == [2]
    assert best_path([(0, 1)], [-0.1], 2) == []  # cannot reach the end


def test_ctc_reads_the_fragments_segmentation_sets_aside_but_not_far_marks():
    """A speck-sized tip of a stroke beside a digit is dropped as a digit candidate, but the
    ctc model reads whole lines: its ink is kept for it; a mark far from the digits is not."""
    from digitlab.inference.ctc_read import line_ink

    image, draw = canvas(400, 200)
    for x in (60, 160, 260):
        zero(draw, x, 70, 130)
    draw.rectangle((101, 99, 103, 101), fill=0)  # a tip, three pixels right of the first 0
    draw.rectangle((20, 30, 22, 32), fill=0)  # a speck far above and left
    line, pieces = pieces_of(image)
    assert len(pieces) == 3  # neither is a digit
    ink = line_ink(line, pieces)
    scale = line.scale
    tip = ink[int(100 * scale), int(102 * scale)]
    far = ink[int(31 * scale), int(21 * scale)]
    assert tip > 0.5 and far == 0
    kept = np.zeros(line.ink.shape, dtype=bool)
    for piece in pieces:
        rows, cols = piece.mask.shape
        kept[piece.top:piece.top + rows, piece.left:piece.left + cols] |= piece.mask
    assert np.array_equal(ink[kept], line.ink[kept])  # the digits' own ink is untouched
