"""Optimizers and learning-rate schedules: registries of explicit builders.

Optimizer builders take (param groups, OptimConfig). Schedule builders take
(optimizer, SchedConfig, epoch_steps), where epoch_steps lists the optimizer steps of every
epoch, and return (scheduler or None, unit); unit says when it steps: "epoch", "batch", or
"metric" (once per epoch, given the validation loss).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch.optim import lr_scheduler

from digitlab.errors import ConfigError
from digitlab.i18n import N_, _
from digitlab.registry import Registry

if TYPE_CHECKING:
    from digitlab.config import OptimConfig, SchedConfig

OPTIMIZERS: Registry = Registry(N_("optimizer"))
SCHEDULERS: Registry = Registry(N_("scheduler"))
# laid out over the planned epochs: resuming with another epoch count would bend their curve
FIXED_LENGTH_SCHEDULES = ("onecycle", "cosine")


def param_groups(model: torch.nn.Module, cfg: OptimConfig) -> list[dict]:
    """One group, or two when biases and norm parameters (every tensor with ndim <= 1) are to
    be spared weight decay (optim.decay_bias_norm = false)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.decay_bias_norm or cfg.weight_decay == 0:
        return [{"params": params}]
    return [{"params": [p for p in params if p.ndim > 1]},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]


def _fused(params) -> dict:
    # The fused kernels (one launch for all tensors) exist for CPU and CUDA in torch >= 2.4.
    devices = {p.device.type for group in params for p in group["params"]}
    return {"fused": True} if devices <= {"cpu", "cuda"} else {}


@OPTIMIZERS.register("sgd", "stochastic gradient descent; momentum, nesterov, dampening")
def build_sgd(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, dampening=cfg.dampening,
                           nesterov=cfg.nesterov, weight_decay=cfg.weight_decay, **_fused(params))


@OPTIMIZERS.register("adam", "Adam: adaptive per-parameter steps (the default, lr 1e-3)")
def build_adam(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                            weight_decay=cfg.weight_decay, amsgrad=cfg.amsgrad, **_fused(params))


@OPTIMIZERS.register("adamw", "Adam with decoupled weight decay")
def build_adamw(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                             weight_decay=cfg.weight_decay, amsgrad=cfg.amsgrad, **_fused(params))


@OPTIMIZERS.register("rmsprop", "divides by a running RMS of gradients (alpha, centered)")
def build_rmsprop(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(params, lr=cfg.lr, alpha=cfg.alpha, eps=cfg.eps,
                               weight_decay=cfg.weight_decay, momentum=cfg.momentum,
                               centered=cfg.centered)


@OPTIMIZERS.register("adagrad", "per-parameter steps shrinking with the summed squared grads")
def build_adagrad(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.Adagrad(params, lr=cfg.lr, lr_decay=cfg.lr_decay, eps=cfg.eps,
                               weight_decay=cfg.weight_decay,
                               initial_accumulator_value=cfg.initial_accumulator_value)


@OPTIMIZERS.register("adadelta", "Adagrad variant with running averages (rho); lr ~ 1")
def build_adadelta(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.Adadelta(params, lr=cfg.lr, rho=cfg.rho, eps=cfg.eps,
                                weight_decay=cfg.weight_decay)


@OPTIMIZERS.register("adamax", "Adam with the infinity norm")
def build_adamax(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.Adamax(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                              weight_decay=cfg.weight_decay)


def no_weight_decay(name: str, cfg: OptimConfig) -> None:
    """PyTorch's Rprop and LBFGS take no weight_decay: refuse it rather than ignore it."""
    if cfg.weight_decay:
        raise ConfigError(_("optim.name = '{name}' has no weight decay; set optim.weight_decay "
                            "= 0 (or choose adamw or sgd)").format(name=name))


@OPTIMIZERS.register("rprop", "sign-based steps that grow or shrink (etas, step_sizes)")
def build_rprop(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    no_weight_decay("rprop", cfg)
    return torch.optim.Rprop(params, lr=cfg.lr, etas=cfg.etas, step_sizes=cfg.step_sizes)


@OPTIMIZERS.register("asgd", "averaged SGD (lambd, asgd_alpha, t0)")
def build_asgd(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.ASGD(params, lr=cfg.lr, lambd=cfg.lambd, alpha=cfg.asgd_alpha, t0=cfg.t0,
                            weight_decay=cfg.weight_decay)


@OPTIMIZERS.register("nadam", "Adam with Nesterov momentum (momentum_decay)")
def build_nadam(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.NAdam(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                             weight_decay=cfg.weight_decay, momentum_decay=cfg.momentum_decay)


@OPTIMIZERS.register("radam", "Adam with a rectified, warmup-free variance estimate")
def build_radam(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.RAdam(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                             weight_decay=cfg.weight_decay)


@OPTIMIZERS.register("lbfgs", "quasi-Newton with a closure; use big batches (see docs)")
def build_lbfgs(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    # Batch policy: each optimizer step re-evaluates the closure on the same mini-batch up to
    # max_iter times. L-BFGS assumes a deterministic objective, so small noisy batches make its
    # curvature estimates poor; use data.batch_size >= 1000 and lr ~ 1 with strong_wolfe.
    no_weight_decay("lbfgs", cfg)
    line_search = None if cfg.line_search == "none" else cfg.line_search
    return torch.optim.LBFGS(params, lr=cfg.lr, max_iter=cfg.max_iter,
                             history_size=cfg.history_size, line_search_fn=line_search)


@OPTIMIZERS.register("sparse-adam", "Adam for sparse gradients (refused: these models are dense)")
def build_sparse_adam(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    raise ConfigError(_("optim.name = 'sparse-adam' needs sparse gradients (nn.Embedding with "
                        "sparse=True); digitlab's models produce dense ones. Use 'adam' or "
                        "'adamw'"))


def is_lbfgs(optimizer: torch.optim.Optimizer) -> bool:
    return isinstance(optimizer, torch.optim.LBFGS)


# ---- schedules -----------------------------------------------------------------------------

@SCHEDULERS.register("none", "constant learning rate (the default)")
def build_none(optimizer, cfg: SchedConfig, epoch_steps: list[int]):
    return None, "epoch"


@SCHEDULERS.register("step", "multiply the lr by gamma every step_size epochs")
def build_step(optimizer, cfg: SchedConfig, epoch_steps: list[int]):
    return lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma), "epoch"


@SCHEDULERS.register("multistep", "multiply the lr by gamma at each epoch in milestones")
def build_multistep(optimizer, cfg: SchedConfig, epoch_steps: list[int]):
    if not cfg.milestones:
        raise ConfigError(_("sched.name = 'multistep' needs sched.milestones, e.g. "
                            "--set sched.milestones=[3,6]"))
    return lr_scheduler.MultiStepLR(optimizer, milestones=list(cfg.milestones),
                                    gamma=cfg.gamma), "epoch"


@SCHEDULERS.register("exponential", "multiply the lr by gamma after every epoch")
def build_exponential(optimizer, cfg: SchedConfig, epoch_steps: list[int]):
    return lr_scheduler.ExponentialLR(optimizer, gamma=cfg.gamma), "epoch"


@SCHEDULERS.register("cosine", "cosine decay from lr to min_lr over the run, per epoch")
def build_cosine(optimizer, cfg: SchedConfig, epoch_steps: list[int]):
    return lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, len(epoch_steps)),
                                          eta_min=cfg.min_lr), "epoch"


@SCHEDULERS.register("plateau", "divide the lr when validation loss stalls (needs val_size)")
def build_plateau(optimizer, cfg: SchedConfig, epoch_steps: list[int]):
    return lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=cfg.factor,
                                          patience=cfg.patience, min_lr=cfg.min_lr), "metric"


@SCHEDULERS.register("onecycle", "rise to optim.lr, then anneal far below it; steps per batch")
def build_onecycle(optimizer, cfg: SchedConfig, epoch_steps: list[int]):
    max_lr = [group["lr"] for group in optimizer.param_groups]
    # One-cycle also cycles momentum (beta1 for Adam-like optimizers) from 0.95 down to 0.85 and
    # back; only where the optimizer has momentum to cycle (not plain SGD, Adagrad, Rprop, ...).
    cycle = "betas" in optimizer.defaults or optimizer.defaults.get("momentum", 0) > 0
    return lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=sum(epoch_steps),
                                   cycle_momentum=cycle, pct_start=cfg.pct_start,
                                   div_factor=cfg.div_factor,
                                   final_div_factor=cfg.final_div_factor), "batch"


@SCHEDULERS.register("cosine-warm-restarts", "cosine cycles that restart (SGDR); per batch")
def build_warm_restarts(optimizer, cfg: SchedConfig, epoch_steps: list[int]):
    return lr_scheduler.CosineAnnealingWarmRestarts(
        optimizer, T_0=cfg.restart_epochs * epoch_steps[0], T_mult=cfg.restart_mult,
        eta_min=cfg.min_lr), "batch"


class Schedule:
    """An optional per-batch linear warmup, then the configured scheduler at its own unit."""

    def __init__(self, optimizer, cfg: SchedConfig, epoch_steps: list[int]):
        self.warmup_steps = math.ceil(cfg.warmup_epochs * epoch_steps[0])
        # The main scheduler first: some (cosine-warm-restarts) set the lr when built, which
        # would undo a warmup's lowered start and make it climb past optim.lr.
        self.main, self.unit = SCHEDULERS.get(cfg.name)(optimizer, cfg, epoch_steps)
        self.warmup = None
        if self.warmup_steps > 0:
            self.warmup = lr_scheduler.LinearLR(optimizer, start_factor=cfg.warmup_start_factor,
                                                total_iters=self.warmup_steps)
        self.steps, self.total = 0, sum(epoch_steps)

    @property
    def needs_metric(self) -> bool:
        return self.unit == "metric"

    def after_batch(self) -> None:
        self.steps += 1
        if self.steps <= self.warmup_steps:
            self.warmup.step()
        elif self.main is not None and self.unit == "batch" and self.steps < self.total:
            self.main.step()  # not after the last step: onecycle has no step beyond its end

    def after_epoch(self, val_loss: float | None) -> None:
        if self.main is None or self.steps < self.warmup_steps:
            return
        if self.unit == "epoch":
            self.main.step()
        elif self.unit == "metric":
            self.main.step(val_loss)

    def state_dict(self) -> dict:
        return {"steps": self.steps,
                "warmup": self.warmup.state_dict() if self.warmup else None,
                "main": self.main.state_dict() if self.main else None}

    def load_state_dict(self, state: dict) -> None:
        self.steps = state["steps"]
        if self.warmup:
            self.warmup.load_state_dict(state["warmup"])
        if self.main:
            self.main.load_state_dict(state["main"])


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])
