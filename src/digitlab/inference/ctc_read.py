"""The `ctc` method of `digitlab read`: a whole line read by a model trained with
`digitlab train --task read` (models.crnn, CTC).

The line's cleaned ink (inference.segment.find_line: paper, ruled lines, specks and stray
marks removed) is normalized exactly as the training lines were (data.lines.normalize), the
model scores every step of 4 columns, and the steps are decoded (greedy, or a prefix beam
search when a beam width is given). Each digit's box spans the columns of its steps.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from digitlab.data.lines import Placement, normalize
from digitlab.i18n import _
from digitlab.inference.preprocess import ImageError
from digitlab.inference.run import Run
from digitlab.inference.segment import Line, Piece
from digitlab.models.shifted import with_test_shifts
from digitlab.training.sequence import beam, greedy

NEAR = 0.1  # ink components this close to the line's digits (in line heights) are read too


def line_ink(line: Line, pieces: list[Piece]) -> np.ndarray:
    """The working copy's ink where the line's pieces are, and in every ink component within
    NEAR line heights of them. The model reads whole lines, so the bits that segmentation
    sets aside as specks or stray strokes next to a digit (a 5's flag, the tip of a broken
    stroke) are its to read; marks away from the digits (a shadow's edge, a printed line,
    noise) stay out. On 500 numbers of MNIST test digits written as PNG files, 93.6% -> 94.4%
    read exactly (docs/benchmarks.md)."""
    kept = np.zeros(line.ink.shape, dtype=bool)
    for piece in pieces:
        rows, cols = piece.mask.shape
        kept[piece.top:piece.top + rows, piece.left:piece.left + cols] |= piece.mask
    zone = ndimage.binary_dilation(kept, iterations=max(2, int(NEAR * line.height)))
    touched = np.unique(line.labels[zone & (line.labels > 0)])
    return np.where(kept | np.isin(line.labels, touched), line.ink, 0.0).astype(line.ink.dtype)


@torch.no_grad()
def line_log_probs(run: Run, line: Line, pieces: list[Piece], name: str
                   ) -> tuple[np.ndarray, Placement]:
    """The model's log-probabilities [T, C + 1] for each step of the line's ink, and the
    placement that maps the steps' columns back to the input."""
    try:
        image, placement = normalize(torch.from_numpy(line_ink(line, pieces)), line.stroke)
    except ValueError:
        raise ImageError(_("{name}: no digits found (the image looks blank)").format(
            name=name)) from None
    x = ((image - run.mean) / run.std)[None].to(run.device)
    model = with_test_shifts(run.model, run.cfg.data.test_shifts)  # as its test was read
    logits = model(x).float() / run.temperature
    return logits.log_softmax(2)[0].cpu().numpy(), placement


def step_boxes(run: Run, line: Line, placement: Placement,
               spans: list[tuple[int, int]]) -> list[tuple]:
    """The input's box of each span of steps [t0, t1), across the line's height."""
    step = run.model.columns_per_step
    top, bottom = placement.rows
    boxes = []
    for t0, t1 in spans:
        left, right = placement.to_input(t0 * step, t1 * step)
        boxes.append(line.box(top, left, bottom, right))
    return boxes


def read_line(run: Run, line: Line, pieces: list[Piece], name: str, beam_width: int = 0):
    from digitlab.inference.reader import reading

    log_probs, placement = line_log_probs(run, line, pieces, name)
    logits = torch.from_numpy(log_probs)[None]  # log-probabilities decode as logits do
    decoded = (beam(logits, beam_width) if beam_width > 0 else greedy(logits))[0]
    if not decoded.labels:
        raise ImageError(_("{name}: no digits read in the ink that was found").format(
            name=name))
    return reading([run.classes[k] for k in decoded.labels], decoded.probs,
                   step_boxes(run, line, placement, decoded.spans), "ctc")
