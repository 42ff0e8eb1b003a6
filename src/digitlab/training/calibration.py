"""Honest confidence: temperature scaling (Guo et al., 2017) and the expected calibration error.

A network trained with cross-entropy is often over- (or under-) confident: among the answers
it gives with 95% confidence fewer (or more) than 95% are right. Temperature scaling divides
the logits by one scalar T > 0, fitted on held-out data to minimise the negative log
likelihood. The argmax, and so the accuracy, is unchanged; only the probabilities move.

T is fitted on the validation split only (data.val_size > 0): fitting on the training split
would learn the model's overconfidence on data it has memorised, and fitting on the test split
would spend the data the calibration is judged on. Without a validation split T stays 1.

The first functions are pure (tensors in, numbers out); `calibrate` at the end runs a model
over the validation loader and records T in the run's checkpoints.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from digitlab.i18n import N_, _
from digitlab.training.checkpoint import set_calibration

T_RANGE = (1e-2, 1e2)  # fitted temperatures are clamped here; the search is over log T
SEARCH_STEPS = 50  # bisections of log T: the bracket (9.2 wide) ends below 1e-14
ECE_BINS = 15  # equal-width confidence bins, as in Guo et al.
# why T stayed 1: kept in English in the metadata, translated when shown
NO_VALIDATION = N_("no validation split: set data.val_size to fit one")
NOT_FINITE = N_("the model's validation logits are not finite")


def nll(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> float:
    """Mean negative log likelihood of softmax(logits / temperature), in nats."""
    return float(F.cross_entropy(logits.double() / temperature, labels))


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The T > 0 minimising nll(logits, labels, T), clamped to T_RANGE; deterministic.

    With b = 1/T the NLL is convex in b (a log-sum-exp minus a linear term), so its derivative
    mean(E_softmax(b z)[z] - z_label) rises with b and has at most one root: a bisection on
    log T finds it without a step size to tune (~10 ms for 10,000 x 10 logits on a CPU).
    Non-finite logits or no samples: 1.0, nothing to fit."""
    logits = logits.detach().double().cpu()
    labels = labels.detach().long().cpu()
    if len(labels) == 0 or not bool(torch.isfinite(logits).all()):
        return 1.0
    true = logits.gather(1, labels[:, None]).squeeze(1)

    def slope(log_t: float) -> float:  # d NLL / d b at b = exp(-log_t)
        scaled = logits * math.exp(-log_t)
        expected = (scaled.softmax(dim=1) * logits).sum(dim=1)
        return float((expected - true).mean())

    low, high = math.log(T_RANGE[0]), math.log(T_RANGE[1])  # high T = low b
    if slope(low) <= 0:  # the NLL still falls at the sharpest T allowed (separable data)
        return T_RANGE[0]
    if slope(high) >= 0:  # it still falls at the flattest T allowed
        return T_RANGE[1]
    for _step in range(SEARCH_STEPS):
        middle = (low + high) / 2
        if slope(middle) > 0:  # b too large: T too small
            low = middle
        else:
            high = middle
    return math.exp((low + high) / 2)


def confidence_bins(probs: torch.Tensor, labels: torch.Tensor,
                    bins: int = ECE_BINS) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(count, mean confidence, accuracy) per equal-width bin of the top probability; bin i
    holds confidences in (i/bins, (i+1)/bins]. Empty bins have 0 for both means."""
    confidence, predicted = probs.double().max(dim=1)
    correct = (predicted == labels).double()
    index = (confidence * bins).ceil().long().clamp(1, bins) - 1
    count = torch.bincount(index, minlength=bins).double()
    mean_confidence = torch.bincount(index, confidence, minlength=bins) / count.clamp(min=1)
    accuracy = torch.bincount(index, correct, minlength=bins) / count.clamp(min=1)
    return count, mean_confidence, accuracy


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor,
                               bins: int = ECE_BINS) -> float:
    """ECE: the sample-weighted mean over confidence bins of |accuracy - mean confidence|.
    0 is perfectly calibrated; 0.05 means confidence is off by 5 points on average."""
    count, mean_confidence, accuracy = confidence_bins(probs, labels, bins)
    return float((count * (accuracy - mean_confidence).abs()).sum() / count.sum().clamp(min=1))


@torch.no_grad()
def loader_logits(model: torch.nn.Module, loader) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits [N, C] float32, labels [N]) on the CPU, for every batch of an evaluation loader."""
    was_training = model.training
    model.eval()
    pairs = [(model(images).float().cpu(), labels.cpu()) for images, labels in loader]
    model.train(was_training)
    return torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])


def calibrate(model: torch.nn.Module, val_loader, checkpoints: list[Path]) -> dict:
    """Fit T for `model` (the weights the run reports) on the validation loader, or record
    T = 1 and the reason; write the result into each existing checkpoint file; return it.

    Every checkpoint gets the same T: the one inference will use for the reported model."""
    logits, labels = loader_logits(model, val_loader) if val_loader is not None else (None, None)
    if logits is None:
        calibration = unfitted(NO_VALIDATION)
    elif not bool(torch.isfinite(logits).all()):
        calibration = unfitted(NOT_FINITE)
    else:
        temperature = fit_temperature(logits, labels)
        calibration = {"temperature": temperature, "fitted_on": "validation",
                       "num_samples": len(labels), "reason": None,
                       "nll_before": nll(logits, labels),
                       "nll_after": nll(logits, labels, temperature)}
    for path in checkpoints:
        if path.is_file():
            set_calibration(path, calibration)
    return calibration


def unfitted(reason: str) -> dict:
    return {"temperature": 1.0, "fitted_on": None, "num_samples": 0, "reason": reason}


def calibration_line(calibration: dict) -> str | None:
    """One console line on what `calibrate` did; None for a run without a validation split,
    which never asked for a temperature (the tutorial's recipe prints the tutorial's lines;
    summary.json and evaluation.json still say why T is 1)."""
    if calibration["reason"] == NO_VALIDATION:
        return None
    if calibration["fitted_on"] is None:
        return _("Calibration: temperature 1 ({reason})").format(reason=_(calibration["reason"]))
    return _("Calibration: temperature {temperature:.3f} fitted on {count:,} validation images "
             "(NLL {before:.4f} -> {after:.4f})").format(
        temperature=calibration["temperature"], count=calibration["num_samples"],
        before=calibration["nll_before"], after=calibration["nll_after"])
