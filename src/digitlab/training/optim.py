"""Optimizers and schedulers: registries of explicit builders."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from digitlab.registry import Registry

if TYPE_CHECKING:
    from digitlab.config import OptimConfig, SchedConfig

OPTIMIZERS: Registry = Registry("optimizer")
SCHEDULERS: Registry = Registry("scheduler")


@OPTIMIZERS.register("adam", "Adam: per-parameter adaptive steps (the default, lr 1e-3)")
def build_adam(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                            weight_decay=cfg.weight_decay, fused=True)


@OPTIMIZERS.register("adamw", "Adam with decoupled weight decay")
def build_adamw(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                             weight_decay=cfg.weight_decay)


@OPTIMIZERS.register("sgd", "stochastic gradient descent, optionally with momentum")
def build_sgd(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                           weight_decay=cfg.weight_decay)


# Scheduler builders take the optimizer, their config and the run length; all step per epoch.
@SCHEDULERS.register("none", "constant learning rate (the default)")
def build_none(optimizer, cfg: SchedConfig, epochs: int):
    return None


@SCHEDULERS.register("step", "multiply the lr by gamma every step_size epochs")
def build_step(optimizer, cfg: SchedConfig, epochs: int):
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)


@SCHEDULERS.register("cosine", "cosine decay from lr to min_lr over the run")
def build_cosine(optimizer, cfg: SchedConfig, epochs: int):
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs),
                                                      eta_min=cfg.min_lr)


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])
