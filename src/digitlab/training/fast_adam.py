"""Adam's step without Optimizer.step's per-call Python.

`optimizer.step()` on torch's Adam spends about 50 us of Python on every call before its fused
kernel runs (hooks, a profiler range, the no-grad and dynamo wrappers, collecting the state,
grouping the tensors by device): on a CPU that is a tenth of a seed-MLP step. For a fused Adam
or AdamW, `step_and_zero(optimizer)` calls torch's functional `adam` with the tensors and the
arguments Adam.step would pass it (the same kernel: bit-identical weights and state), then sets
the gradients to None as zero_grad(set_to_none=True) does. The optimizer's state stays the
optimizer's, so checkpoints and resume are unchanged.

    step = fast_adam_step(optimizer, scaler)  # None when the optimizer is of another kind
    step()                                     # each optimizer step

The first step (which creates the state), a parameter without a gradient, and registered
step hooks go through optimizer.step() itself.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.optim import optimizer as torch_optimizer
from torch.optim.adam import adam


def supported(optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> bool:
    """torch's Adam or AdamW with the fused kernel, floats for lr and betas, no amsgrad,
    capturable or differentiable mode, real parameters, and no fp16 gradient scaler."""
    if type(optimizer) not in (torch.optim.Adam, torch.optim.AdamW) or scaler.is_enabled():
        return False
    # torch versions before Adam and AdamW shared one functional `adam` (its
    # decoupled_weight_decay flag) keep optimizer.step()
    return all("decoupled_weight_decay" in group and group.get("fused")
               and not (group["amsgrad"] or group["capturable"] or group["differentiable"])
               and isinstance(group["lr"], float) and not torch.is_tensor(group["betas"][0])
               and not any(p.is_complex() for p in group["params"])
               for group in optimizer.param_groups)


def hooked(optimizer: torch.optim.Optimizer) -> bool:
    """Whether step hooks are registered, on this optimizer or for all; also True where this
    torch keeps them elsewhere, so that hooks always run."""
    hooks = (getattr(optimizer, "_optimizer_step_pre_hooks", None),
             getattr(optimizer, "_optimizer_step_post_hooks", None),
             getattr(torch_optimizer, "_global_optimizer_pre_hooks", None),
             getattr(torch_optimizer, "_global_optimizer_post_hooks", None))
    return any(registered is None or len(registered) > 0 for registered in hooks)


def step_and_zero(optimizer: torch.optim.Optimizer) -> None:
    """optimizer.step(), then zero_grad(set_to_none=True), for a `supported` optimizer."""
    state = optimizer.state
    groups = optimizer.param_groups
    if hooked(optimizer) or any(p.grad is None or p not in state
                                for group in groups for p in group["params"]):
        optimizer.step()  # creates the state, skips gradient-less parameters, runs the hooks
    else:
        with torch.no_grad():
            for group in groups:
                params = group["params"]
                adam(params, [p.grad for p in params],
                     [state[p]["exp_avg"] for p in params],
                     [state[p]["exp_avg_sq"] for p in params], [],
                     [state[p]["step"] for p in params], fused=True,
                     decoupled_weight_decay=group["decoupled_weight_decay"], amsgrad=False,
                     beta1=group["betas"][0], beta2=group["betas"][1], lr=group["lr"],
                     weight_decay=group["weight_decay"], eps=group["eps"],
                     maximize=group["maximize"])
    for group in groups:
        for p in group["params"]:
            p.grad = None


def fast_adam_step(optimizer: torch.optim.Optimizer,
                   scaler: torch.amp.GradScaler) -> Callable[[], None] | None:
    """A callable that steps the optimizer and clears its gradients, or None when the
    optimizer is not one `step_and_zero` handles."""
    if not supported(optimizer, scaler):
        return None
    return lambda: step_and_zero(optimizer)
