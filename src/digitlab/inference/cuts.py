"""Where the pieces of a line (inference.segment) may hold more or fewer than one digit: the
candidate parts the reader chooses among by the model's confidence (reader.segmented).

- touching digits: a piece wider than DOUBT line heights may be cut along paths from its top
  to its bottom that cross the least ink (`cut_paths`): straight down between digits that are
  only close, along the slant between digits that overlap sideways, through the stroke where
  two digits touch; every run of cuts as wide as a digit can be is a candidate (`segments`);
- strokes drawn apart: neighbouring pieces that share most of their columns (a 9's loop and a
  stem that misses it) may be one digit (`unions`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from digitlab.inference.preprocess import bounding_box
from digitlab.inference.segment import Line, Piece

DOUBT = 0.8  # a component this wide (in line heights) may hold touching digits
NARROWEST = 0.12  # a digit ("1") is at least this wide, in line heights ...
WIDEST = 1.3  # ... and at most this wide
MAX_CUTS = 14  # cut candidates per component, those crossing the least ink, or more in a
CUTS_PER_HEIGHT = 4  # ... long one: this many per line height of its width
JOIN = 0.5  # neighbouring pieces that share this much of the narrower one's columns ...
JOINED = 3  # ... may be read as one digit (reader.segmented), up to this many of them
REACH = 0.25  # a cut path strays at most this far (in line heights) from where it starts ...
SIDEWAYS = 0.5  # ... and each column it moves costs as much as half a pixel of ink crossed


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
    the cheapest (CUTS_PER_HEIGHT per line height in a long piece: a number of many touching
    digits), none closer to an edge or to each other than the narrowest digit."""
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
    limit = max(MAX_CUTS, int(CUTS_PER_HEIGHT * width / line.height))
    means = paths.mean(axis=1)  # where each path lies, on average
    chosen: list[int] = []
    for i in np.argsort(costs, kind="stable"):
        if gap <= means[i] <= width - gap and all(abs(means[i] - means[c]) >= gap
                                                  for c in chosen):
            chosen.append(i)
        if len(chosen) == limit:
            break
    return [paths[i] for i in sorted(chosen, key=lambda i: means[i])]


def part(piece: Piece, left: np.ndarray, right: np.ndarray, line: Line) -> Piece | None:
    """The piece's ink between two boundaries (per row: from column left[row] up to, not
    including, right[row]), trimmed to its box; None when there is none."""
    start, stop = int(left.min()), int(right.max())  # only the columns between them
    columns = np.arange(start, max(stop, start))[None, :]
    mask = (piece.mask[:, start:stop] & (columns >= left[:, None])
            & (columns < right[:, None]))
    if not mask.any():
        return None
    top, x0, bottom, x1 = bounding_box(mask)
    y, x = piece.top + top, piece.left + start + x0
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
    found = [(0, last, piece)]  # whole, whatever its width
    for i in range(last):
        for j in range(i + 1, last + 1):
            if (i, j) == (0, last):
                continue
            if edges[j].min() - edges[i].max() > high:
                continue  # it has ink in every column between them: wider than a digit
            one = part(piece, edges[i], edges[j], line)
            if one is not None and low <= one.mask.shape[1] <= high:
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


def line_parts(pieces: list[Piece], line: Line) -> tuple[list[tuple[int, int]], list[Piece], int]:
    """Every part the line may be read in, as (ranges, parts, end): part k lies between the
    line's boundaries ranges[k] = (i, j), numbered left to right over all its pieces (each
    piece's own, from `segments`) from 0 to end; a run of pieces that may be one digit
    (`unions`) spans from its first piece's left boundary to its last one's right. Each piece
    whole is a part, so some run of parts always tiles 0..end."""
    ranges, parts, starts = [], [], [0]  # starts: each piece's first boundary
    for piece in pieces:
        last, found = segments(piece, line)
        ranges += [(starts[-1] + i, starts[-1] + j) for i, j, _p in found]
        parts += [p for _i, _j, p in found]
        starts.append(starts[-1] + last)
    for k, m, union in unions(pieces, line):
        ranges.append((starts[k], starts[m + 1]))
        parts.append(union)
    return ranges, parts, starts[-1]
