"""The losses registry: name -> builder(LossConfig) -> nn.Module taking (logits, labels)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from digitlab.registry import Registry

if TYPE_CHECKING:
    from digitlab.config import LossConfig

LOSSES: Registry = Registry("loss")


@LOSSES.register("cross-entropy", "softmax + negative log-likelihood on logits (the default)")
def build_cross_entropy(cfg: LossConfig) -> nn.Module:
    return nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
