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

from digitlab.data.lines import normalize
from digitlab.i18n import _
from digitlab.inference.preprocess import ImageError
from digitlab.inference.run import Run
from digitlab.inference.segment import Line, Piece
from digitlab.training.sequence import beam, greedy


def line_ink(line: Line, pieces: list[Piece]) -> np.ndarray:
    """The working copy's ink, only where the line's pieces are."""
    ink = np.zeros_like(line.ink)
    for piece in pieces:
        rows, cols = piece.mask.shape
        window = (slice(piece.top, piece.top + rows), slice(piece.left, piece.left + cols))
        ink[window] = np.where(piece.mask, line.ink[window], ink[window])
    return ink


@torch.no_grad()
def read_line(run: Run, line: Line, pieces: list[Piece], name: str, beam_width: int = 0):
    from digitlab.inference.reader import reading

    try:
        image, placement = normalize(torch.from_numpy(line_ink(line, pieces)), line.stroke)
    except ValueError:
        raise ImageError(_("{name}: no digits found (the image looks blank)").format(
            name=name)) from None
    x = ((image - run.mean) / run.std)[None].to(run.device)
    logits = run.model(x).float() / run.temperature
    decoded = (beam(logits, beam_width) if beam_width > 0 else greedy(logits))[0]
    if not decoded.labels:
        raise ImageError(_("{name}: no digits read in the ink that was found").format(
            name=name))
    step = run.model.columns_per_step
    top, bottom = placement.rows
    boxes = []
    for t0, t1 in decoded.spans:
        left, right = placement.to_input(t0 * step, t1 * step)
        boxes.append(line.box(top, left, bottom, right))
    return reading([run.classes[k] for k in decoded.labels], decoded.probs, boxes, "ctc")
