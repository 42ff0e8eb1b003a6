"""The losses registry: name -> builder(LossConfig, num_classes, weights) -> nn.Module, and
`Criterion`, the training loss as the loop calls it (teacher, temperature and balance folded in).

Every loss takes raw logits [N, C] and integer labels [N]. kl-div may instead take a teacher's
logits [N, C] as its targets (distillation). Losses that compare probabilities with one-hot
targets (mse, l1, smooth-l1) train worse than cross-entropy: their gradient through the softmax
vanishes when a wrong class is confidently predicted (p -> 0 or 1 makes p (1 - p) -> 0), while
cross-entropy's gradient, p - y, stays large exactly when the model is most wrong.

Temperatures, one convention: a temperature T divides logits, softmax(logits / T), and T > 1
softens the distribution. loss.distill_temperature is such a T. loss.temperature (annealed to
loss.temperature_final) is its inverse, beta = 1 / T: the loss sees beta * logits, and beta > 1
sharpens.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from digitlab.errors import ConfigError
from digitlab.i18n import N_, _
from digitlab.registry import Registry

if TYPE_CHECKING:
    from digitlab.config import LossConfig

LOSSES: Registry = Registry(N_("loss"))
Autocast = Callable[[], contextlib.AbstractContextManager]  # a fresh autocast context per call


def _no_smoothing(cfg: LossConfig) -> None:
    if cfg.label_smoothing > 0:
        raise ConfigError(_("loss.label_smoothing applies to cross-entropy, kl-div and focal, "
                            "not {loss!r}; set it to 0").format(loss=cfg.name))


@LOSSES.register("cross-entropy", "softmax + negative log-likelihood on logits (the default)")
def build_cross_entropy(cfg: LossConfig, num_classes: int, weights) -> nn.Module:
    return nn.CrossEntropyLoss(weight=weights, ignore_index=cfg.ignore_index,
                               label_smoothing=cfg.label_smoothing)


class LogSoftmaxNLL(nn.Module):
    """NLLLoss expects log-probabilities; the log-softmax head is added here, not in the model."""

    def __init__(self, weights, ignore_index: int):
        super().__init__()
        self.nll = nn.NLLLoss(weight=weights, ignore_index=ignore_index)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.nll(F.log_softmax(logits, dim=1), labels)


@LOSSES.register("nll", "negative log-likelihood, with the log-softmax head added for you")
def build_nll(cfg: LossConfig, num_classes: int, weights) -> nn.Module:
    _no_smoothing(cfg)
    return LogSoftmaxNLL(weights, cfg.ignore_index)


class OneHotLoss(nn.Module):
    """A loss on one-hot targets: BCE on logits, or a regression loss on softmax probabilities."""

    def __init__(self, kind: str, num_classes: int, weights, pos_weight: float, beta: float):
        super().__init__()
        self.kind, self.num_classes, self.beta = kind, num_classes, beta
        self.register_buffer("weights", weights)
        self.register_buffer("pos_weight", torch.full((num_classes,), pos_weight))

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        target = F.one_hot(labels, self.num_classes).to(logits.dtype)
        if self.kind == "bce":
            per_element = F.binary_cross_entropy_with_logits(
                logits, target, pos_weight=self.pos_weight, reduction="none")
        else:
            probs = logits.softmax(dim=1)
            if self.kind == "mse":
                per_element = F.mse_loss(probs, target, reduction="none")
            elif self.kind == "l1":
                per_element = F.l1_loss(probs, target, reduction="none")
            else:
                per_element = F.smooth_l1_loss(probs, target, reduction="none", beta=self.beta)
        per_sample = per_element.mean(dim=1)
        if self.weights is not None:
            per_sample = per_sample * self.weights[labels]
        return per_sample.mean()


@LOSSES.register("bce", "one-vs-rest binary cross-entropy on one-hot targets (pos_weight)")
def build_bce(cfg: LossConfig, num_classes: int, weights) -> nn.Module:
    _no_smoothing(cfg)
    return OneHotLoss("bce", num_classes, weights, cfg.pos_weight, cfg.smooth_l1_beta)


@LOSSES.register("mse", "squared error between softmax probabilities and one-hot targets")
def build_mse(cfg: LossConfig, num_classes: int, weights) -> nn.Module:
    _no_smoothing(cfg)
    return OneHotLoss("mse", num_classes, weights, cfg.pos_weight, cfg.smooth_l1_beta)


@LOSSES.register("l1", "absolute error between softmax probabilities and one-hot targets")
def build_l1(cfg: LossConfig, num_classes: int, weights) -> nn.Module:
    _no_smoothing(cfg)
    return OneHotLoss("l1", num_classes, weights, cfg.pos_weight, cfg.smooth_l1_beta)


@LOSSES.register("smooth-l1", "Huber loss between softmax probabilities and one-hot targets")
def build_smooth_l1(cfg: LossConfig, num_classes: int, weights) -> nn.Module:
    _no_smoothing(cfg)
    return OneHotLoss("smooth-l1", num_classes, weights, cfg.pos_weight, cfg.smooth_l1_beta)


class SoftTargetKL(nn.Module):
    """KL(target || softmax(logits / T)) * T^2. Targets: labels (smoothed one-hot, T = 1) or a
    teacher's logits (softened by the same T, as in Hinton et al.'s distillation)."""

    def __init__(self, num_classes: int, smoothing: float, temperature: float):
        super().__init__()
        self.num_classes, self.smoothing, self.temperature = num_classes, smoothing, temperature

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if targets.dtype.is_floating_point:  # teacher logits
            t = self.temperature
            soft = F.softmax(targets / t, dim=1)
            log_probs = F.log_softmax(logits / t, dim=1)
            return F.kl_div(log_probs, soft, reduction="batchmean") * t * t
        soft = F.one_hot(targets, self.num_classes).to(logits.dtype)
        soft = soft * (1 - self.smoothing) + self.smoothing / self.num_classes
        return F.kl_div(F.log_softmax(logits, dim=1), soft, reduction="batchmean")


@LOSSES.register("kl-div", "KL divergence to soft targets: smoothed labels or a teacher run")
def build_kl_div(cfg: LossConfig, num_classes: int, weights) -> nn.Module:
    if weights is not None:
        raise ConfigError(_("kl-div does not take class weights (loss.class_weights, "
                            "data.balance = 'weights'); use cross-entropy or focal"))
    return SoftTargetKL(num_classes, cfg.label_smoothing, cfg.distill_temperature)


@LOSSES.register("multi-margin", "multi-class hinge loss (margin, margin_p)")
def build_multi_margin(cfg: LossConfig, num_classes: int, weights) -> nn.Module:
    _no_smoothing(cfg)
    return nn.MultiMarginLoss(p=cfg.margin_p, margin=cfg.margin, weight=weights)


class FocalLoss(nn.Module):
    """alpha * (1 - p_t)^gamma * CE: easy, confident examples count less (Lin et al., 2017)."""

    def __init__(self, gamma: float, alpha: float, weights, smoothing: float):
        super().__init__()
        self.gamma, self.alpha, self.smoothing = gamma, alpha, smoothing
        self.register_buffer("weights", weights)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        log_probs = F.log_softmax(logits, dim=1)
        log_pt = log_probs.gather(1, labels[:, None]).squeeze(1)
        ce = F.cross_entropy(logits, labels, reduction="none", label_smoothing=self.smoothing)
        per_sample = self.alpha * (1 - log_pt.exp()).pow(self.gamma) * ce
        if self.weights is not None:
            per_sample = per_sample * self.weights[labels]
        return per_sample.mean()


@LOSSES.register("focal", "cross-entropy scaled by (1 - p)^gamma, focusing on hard examples")
def build_focal(cfg: LossConfig, num_classes: int, weights) -> nn.Module:
    return FocalLoss(cfg.focal_gamma, cfg.focal_alpha, weights, cfg.label_smoothing)


def build_loss(cfg: LossConfig, num_classes: int,
               weights: torch.Tensor | None = None) -> nn.Module:
    """The configured loss. weights: per-class weights (data.balance = "weights"), else
    loss.class_weights when given."""
    if weights is None and cfg.class_weights:
        if len(cfg.class_weights) != num_classes:
            raise ConfigError(_("loss.class_weights has {values} values but the "
                                "dataset has {classes} classes").format(
                values=len(cfg.class_weights), classes=num_classes))
        weights = torch.tensor(cfg.class_weights, dtype=torch.float32)
    return LOSSES.get(cfg.name)(cfg, num_classes, weights)


def temperature_at(cfg: LossConfig, batches_done: int, total_batches: int) -> float:
    """The inverse temperature beta (the loss sees beta * logits) after `batches_done` batches:
    annealed linearly from loss.temperature to loss.temperature_final over the run."""
    if total_batches <= 1:
        return cfg.temperature_final
    frac = min(1.0, batches_done / (total_batches - 1))
    return cfg.temperature + frac * (cfg.temperature_final - cfg.temperature)


class Criterion:
    """The training loss as the loop calls it: `criterion(logits, targets, batches_done,
    balanced)`, with `targets = criterion.targets(images, labels)` once per batch.

    - targets: the labels, or with loss.teacher the teacher's logits on the same images
      (computed without gradients, under the run's autocast);
    - beta: the inverse temperature after `batches_done` batches (see temperature_at);
    - balanced: data.balance = "weights" weighs the classes in its balanced epochs only;
      `plain` is the unweighted loss, also the one evaluation reports.
    """

    def __init__(self, cfg: LossConfig, num_classes: int, total_batches: int,
                 device: torch.device, balance_weights: torch.Tensor | None = None,
                 teacher: nn.Module | None = None, autocast: Autocast = contextlib.nullcontext):
        self.cfg, self.total_batches = cfg, total_batches
        self.balanced = build_loss(cfg, num_classes, balance_weights).to(device)
        self.plain = build_loss(cfg, num_classes).to(device)
        self.teacher, self.autocast = teacher, autocast

    @property
    def anneals(self) -> bool:
        """Whether beta is ever other than 1 (then each epoch's record logs it)."""
        return self.cfg.temperature != 1 or self.cfg.temperature_final != 1

    def beta(self, batches_done: int) -> float:
        return temperature_at(self.cfg, batches_done, self.total_batches)

    @torch.no_grad()
    def targets(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.teacher is None:
            return labels
        with self.autocast():
            return self.teacher(images).float()

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor, batches_done: int,
                 balanced: bool) -> torch.Tensor:
        beta = self.beta(batches_done)
        loss_fn = self.balanced if balanced else self.plain
        return loss_fn(logits * beta if beta != 1 else logits, targets)


def looks_like_probabilities(logits: torch.Tensor) -> bool:
    """Rows in [0, 1] summing to 1 (or <= 0 with logsumexp 0): a softmax was already applied."""
    # bf16 rows of a softmax sum to 1 only within a few 1e-3; scale the tolerance to the dtype
    atol = max(1e-3, 4 * logits.shape[1] * torch.finfo(logits.dtype).eps) \
        if logits.dtype.is_floating_point else 1e-3
    with torch.no_grad():
        x = logits.detach().float()
        ones, zeros = torch.ones(len(x), device=x.device), torch.zeros(len(x), device=x.device)
        probs = bool(((x >= 0) & (x <= 1)).all()) and bool(
            torch.allclose(x.sum(dim=1), ones, atol=atol))
        log_probs = bool((x <= 0).all()) and bool(
            torch.allclose(x.logsumexp(dim=1), zeros, atol=atol))
    return probs or log_probs
