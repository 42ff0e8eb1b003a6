"""The `combined` method of `digitlab read`: a CTC run and a single-digit run read the line
together.

The two methods fail differently. The sequence model (ctc) rarely miscounts the digits of a
line whose digits stand apart, but confuses a few digits a single-digit model reads well; the
cut line (segment) reads each digit well once the cut is right, but may take two digits for
one or a broken stroke for a digit. So each reads the line as it would alone and proposes its
readings: the prefix beam search's BEAM best labellings, and the best run of parts for each
number of digits. Every proposal is then scored by both:
- the sequence model: log P(text | line), summed over all its alignments (the CTC forward
  algorithm);
- the single-digit model: the best run of parts that reads the text, each part scoring the
  log-probability of its digit less what its shape costs (reader.part_cost), and never less
  than -DIGIT_FLOOR (a part cut badly from touching digits is weak evidence, not a veto).
When the two models' own best proposals have the same number of digits, the text with the
highest ctc + SEG_WEIGHT x segment score is read; when they disagree on the count (touching
digits that the cuts cannot part), the sequence model's best stands. Each digit's probability
is the share of the proposals' combined probability that reads that digit there.
"""

from __future__ import annotations

import math

import numpy as np

from digitlab.i18n import _
from digitlab.inference.ctc_read import line_log_probs, step_boxes
from digitlab.inference.preprocess import ImageError
from digitlab.inference.run import Run
from digitlab.inference.segment import Line, Piece
from digitlab.training.sequence import aligned, log_likelihoods, prefix_beams

BEAM = 8  # the sequence model's proposals
SEG_WEIGHT = 1.5  # the single-digit model's share of the score
DIGIT_FLOOR = 3.0  # a part's score counts at least -DIGIT_FLOOR
MOST_DIGITS = 24  # the cut's proposals: its best reading for each count up to this


def tilings(ranges: list[tuple[int, int]], scores: np.ndarray, end: int,
            labels: tuple[int, ...] | None = None) -> dict[int, tuple[float, list[int]]]:
    """Runs of parts (ranges: each part's boundaries i < j) that tile 0..end, scored by the
    sum of their scores: for each number of parts n, (score, parts) of the best. scores [P]
    scores each part as any digit; with `labels`, scores [P, C] and the n-th part must read
    labels[n], so only n = len(labels) is found."""
    most = MOST_DIGITS if labels is None else len(labels)
    best: dict[tuple[int, int], tuple[float, list[int]]] = {(0, 0): (0.0, [])}
    for k in sorted(range(len(ranges)), key=lambda k: ranges[k][1]):  # by right boundary
        i, j = ranges[k]
        for n in range(most):
            if (i, n) not in best:
                continue
            gain = scores[k] if labels is None else scores[k, labels[n]]
            score, path = best[(i, n)]
            if (j, n + 1) not in best or score + gain > best[(j, n + 1)][0]:
                best[(j, n + 1)] = (score + gain, path + [k])
    return {n: found for (b, n), found in best.items()
            if b == end and n > 0 and (labels is None or n == most)}


def scores(texts: list[tuple[int, ...]], ctc: np.ndarray, cut: np.ndarray
           ) -> tuple[np.ndarray, bool]:
    """Each proposal's score, and whether the cut had its say: ctc + SEG_WEIGHT x cut when the
    two models' best proposals have as many digits (and some proposal is possible for both),
    else the sequence model's log-likelihood alone."""
    if len(texts[int(ctc.argmax())]) == len(texts[int(cut.argmax())]):
        together = ctc + SEG_WEIGHT * cut
        if np.isfinite(together.max()):
            return together, True
    return ctc, False


def digit_shares(texts: list[tuple[int, ...]], total: np.ndarray, best: int) -> list[float]:
    """For each digit of texts[best], the share of the proposals' probability (softmax of
    their scores) held by those of the same length that read the same digit there."""
    share = np.exp(total - total.max())
    share /= share.sum()
    text = texts[best]
    return [float(sum(share[k] for k, t in enumerate(texts) if len(t) == len(text)
                      and t[i] == label)) for i, label in enumerate(text)]


def read_combined(ctc_run: Run, digit_run: Run, line: Line, pieces: list[Piece], name: str):
    from digitlab.inference.reader import part_cost, read_parts, reading

    log_probs, placement = line_log_probs(ctc_run, line, pieces, name)
    ranges, parts, end, probs = read_parts(digit_run, line, pieces)
    probs = probs.double().numpy()
    part_logs = np.log(np.maximum(probs, 1e-12)) - np.array(
        [part_cost(p, line) for p in parts])[:, None]
    cut_readings = [tuple(int(probs[k].argmax()) for k in path)
                    for _score, path in tilings(ranges, part_logs.max(1), end).values()]
    texts = [t for t in dict.fromkeys([*prefix_beams(log_probs, BEAM), *cut_readings]) if t]
    if not texts:
        raise ImageError(_("{name}: no digits read in the ink that was found").format(
            name=name))
    ctc = log_likelihoods(log_probs, texts)
    floored = np.maximum(part_logs, -DIGIT_FLOOR)
    fits = [tilings(ranges, floored, end, t).get(len(t), (-math.inf, [])) for t in texts]
    cut = np.array([score for score, _path in fits])
    total, with_cut = scores(texts, ctc, cut)
    best = int(total.argmax())
    text, path = texts[best], fits[best][1]
    if with_cut and path:  # each digit's box is its part's
        boxes = [parts[k].box for k in path]
    else:  # the sequence model's frames
        boxes = step_boxes(ctc_run, line, placement, aligned(log_probs, text).spans)
    return reading([ctc_run.classes[k] for k in text], digit_shares(texts, total, best), boxes,
                   "combined")
