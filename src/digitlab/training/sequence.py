"""Sequences of digits: the CTC loss, greedy and beam decoding, and their metrics.

Convention: a sequence model returns logits [B, T, C + 1] over T steps (columns of the line);
index C, the last, is the CTC blank (`blank_index(num_classes)`). A decoded line collapses
repeated labels and then drops the blanks: "3 3 _ 3 _ _ 1" reads "331".

Decoded.confidence is the product of the label probabilities (each label's probability is the
highest its frames give it), for greedy and beam decoding alike: a line is as sure as its least
sure digits together. Beam search ranks prefixes by their full sequence probability (the sum
over every alignment); the labels it finds are then aligned frame by frame (Viterbi) for their
spans and probabilities.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


def blank_index(num_classes: int) -> int:
    """The CTC blank: the last of the C + 1 outputs."""
    return num_classes


@dataclass(frozen=True)
class Decoded:
    labels: list[int]  # class indices, left to right
    probs: list[float]  # each label's probability: the max over its frames
    spans: list[tuple[int, int]]  # each label's frames [t0, t1)
    confidence: float  # the product of probs (1.0 for an empty line)


def steps_for(widths: torch.Tensor, columns_per_step: int) -> torch.Tensor:
    """Output steps of lines `widths` columns wide: ceil(width / columns_per_step)."""
    return -(-widths // columns_per_step)


def ctc_loss(logits: torch.Tensor, steps: torch.Tensor, targets: torch.Tensor,
             lengths: torch.Tensor) -> torch.Tensor:
    """nn.CTCLoss's mean (each line's loss divided by its length, then averaged) of logits
    [B, T, C + 1] whose first steps[b] steps are the line; the blank is the last class.
    Computed in float32 (the log-softmax under bf16 autocast loses the small terms)."""
    log_probs = logits.float().log_softmax(2).transpose(0, 1)  # [T, B, C + 1]
    return F.ctc_loss(log_probs, targets, steps, lengths, blank=logits.shape[2] - 1,
                      reduction="mean", zero_infinity=True)


def greedy_exact(logits: torch.Tensor, steps: torch.Tensor, targets: torch.Tensor,
                 lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """bool [B]: whether greedy decoding reads each line exactly, on the device without a
    host sync (the training loop's running accuracy). targets, lengths: as ctc_loss takes them;
    max_length: at least the longest line."""
    blank, (b, t) = logits.shape[2] - 1, logits.shape[:2]
    best = logits.detach().argmax(2)  # [B, T]
    earlier = F.pad(best[:, :-1], (1, 0), value=blank)
    keep = (best != blank) & (best != earlier) & (torch.arange(t, device=best.device) <
                                                  steps[:, None])
    width = max(t, max_length) + 1  # the last column takes whatever lies past max_length
    position = torch.where(keep, keep.cumsum(1) - 1, width - 1).clamp(max=width - 1)
    read = torch.full((b, width), -1, device=best.device).scatter_(1, position, best)
    line = torch.repeat_interleave(torch.arange(b, device=best.device), lengths)
    within = torch.arange(len(targets), device=best.device) - (lengths.cumsum(0) - lengths)[line]
    truth = torch.full((b, width), -1, device=best.device)
    truth[line, within] = targets
    same = (read[:, :max_length] == truth[:, :max_length]).all(1)
    return same & (keep.sum(1) == lengths)


def _runs(best: list[int], probs: np.ndarray, blank: int) -> Decoded:
    """The labels of a frame-by-frame path [T], with their frames and probabilities."""
    labels, spans, label_probs = [], [], []
    previous = blank
    for t, label in enumerate(best):
        if label != blank and label != previous:
            labels.append(label)
            spans.append([t, t + 1])
            label_probs.append(float(probs[t, label]))
        elif label != blank:  # the same label continues
            spans[-1][1] = t + 1
            label_probs[-1] = max(label_probs[-1], float(probs[t, label]))
        previous = label
    return Decoded(labels, label_probs, [tuple(s) for s in spans], math.prod(label_probs))


def greedy(logits: torch.Tensor, lengths_T: torch.Tensor | None = None) -> list[Decoded]:
    """The most likely label at every step, collapsed: one Decoded per line. lengths_T: the
    valid steps of each line (None: all T)."""
    probs = logits.detach().float().softmax(2).cpu().numpy()
    best = probs.argmax(2)
    steps = [probs.shape[1]] * len(probs) if lengths_T is None else lengths_T.tolist()
    return [_runs(best[i, :steps[i]].tolist(), probs[i], probs.shape[2] - 1)
            for i in range(len(probs))]


def _add(beams: dict, prefix: tuple, blank_end: float, label_end: float) -> None:
    old_blank, old_label = beams.get(prefix, (-math.inf, -math.inf))
    beams[prefix] = (np.logaddexp(old_blank, blank_end), np.logaddexp(old_label, label_end))


def prefix_beams(log_probs: np.ndarray, width: int) -> list[tuple[int, ...]]:
    """CTC prefix beam search over log_probs [T, C + 1]: the `width` labellings kept at the
    last step, the most probable (summed over its alignments) first. Each prefix keeps two
    scores: its paths that end in a blank, and those that end in its last label."""
    blank = log_probs.shape[1] - 1
    beams = {(): (0.0, -math.inf)}
    for frame in log_probs:
        extended: dict = {}
        for prefix, (blank_end, label_end) in beams.items():
            total = np.logaddexp(blank_end, label_end)
            _add(extended, prefix, total + frame[blank], -math.inf)
            for label in range(blank):
                p = frame[label]
                if prefix and prefix[-1] == label:  # a repeat needs a blank in between
                    _add(extended, prefix + (label,), -math.inf, blank_end + p)
                    _add(extended, prefix, -math.inf, label_end + p)
                else:
                    _add(extended, prefix + (label,), -math.inf, total + p)
        beams = dict(sorted(extended.items(), key=lambda kv: -np.logaddexp(*kv[1]))[:width])
    return list(beams)  # sorted, the most probable first


def prefix_beam(log_probs: np.ndarray, width: int) -> tuple[int, ...]:
    """The labelling prefix_beams finds most probable."""
    return prefix_beams(log_probs, width)[0]


def log_likelihoods(log_probs: np.ndarray, labellings: list[tuple[int, ...]]) -> np.ndarray:
    """log P(labelling | line) for each labelling (non-empty), summed over all its alignments
    to the frames of log_probs [T, C + 1] (the CTC forward algorithm, as the loss computes it)."""
    steps, classes = log_probs.shape
    frames = torch.from_numpy(log_probs).float()[:, None, :].expand(steps, len(labellings),
                                                                     classes)
    targets = torch.tensor([label for labels in labellings for label in labels])
    lengths = torch.tensor([len(labels) for labels in labellings])
    nll = F.ctc_loss(frames, targets, torch.full((len(labellings),), steps), lengths,
                     blank=classes - 1, reduction="none")
    return (-nll).double().numpy()


def align(log_probs: np.ndarray, labels: tuple[int, ...]) -> list[int]:
    """The most likely frame-by-frame path [T] that reads `labels` (CTC Viterbi)."""
    blank = log_probs.shape[1] - 1
    states = [blank]
    for label in labels:
        states += [label, blank]
    states = np.array(states)
    n, steps = len(states), len(log_probs)
    # a label state may skip the blank before it unless it repeats the label two states back
    skip = np.zeros(n, dtype=bool)
    skip[2:] = (states[2:] != blank) & (states[2:] != states[:-2])
    score = np.full(n, -np.inf)
    score[:2] = log_probs[0, states[:2]]
    back = np.zeros((steps, n), dtype=np.int64)
    for t in range(1, steps):
        step, jump = np.full(n, -np.inf), np.full(n, -np.inf)
        step[1:], jump[2:] = score[:-1], score[:-2]
        choices = np.stack([score, step, np.where(skip, jump, -np.inf)])
        back[t] = choices.argmax(0)
        score = choices.max(0) + log_probs[t, states]
    state = n - 1 if n == 1 or score[n - 1] >= score[n - 2] else n - 2
    path = [state]
    for t in range(steps - 1, 0, -1):
        state -= back[t, state]
        path.append(state)
    return [int(states[s]) for s in reversed(path)]


def beam(logits: torch.Tensor, width: int = 8, lengths_T: torch.Tensor | None = None
         ) -> list[Decoded]:
    """CTC prefix beam search with `width` prefixes kept per step: one Decoded per line."""
    log_probs = logits.detach().float().log_softmax(2).cpu().numpy()
    steps = [log_probs.shape[1]] * len(log_probs) if lengths_T is None else lengths_T.tolist()
    return [aligned(log_probs[i, :steps[i]], prefix_beam(log_probs[i, :steps[i]], width))
            for i in range(len(log_probs))]


def aligned(log_probs: np.ndarray, labels: tuple[int, ...]) -> Decoded:
    """`labels` read from the frames log_probs [T, C + 1]: each label's frames and probability
    from the most likely alignment (align)."""
    return _runs(align(log_probs, labels), np.exp(log_probs), log_probs.shape[1] - 1)


def edit_distance(a: list[int], b: list[int]) -> int:
    """Levenshtein distance: the fewest insertions, deletions and substitutions."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        diagonal, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (x != y))
    return row[-1]


def cer(predicted: list[list[int]], truth: list[list[int]]) -> float:
    """Character error rate: total edits over total true characters (0 when there are none)."""
    edits = sum(edit_distance(p, t) for p, t in zip(predicted, truth, strict=True))
    return edits / max(sum(len(t) for t in truth), 1)


def exact_match(predicted: list[list[int]], truth: list[list[int]]) -> float:
    """The share of lines read exactly."""
    pairs = list(zip(predicted, truth, strict=True))
    return sum(p == t for p, t in pairs) / max(len(pairs), 1)
