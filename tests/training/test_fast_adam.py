"""training/fast_adam.py: a fused Adam(W) stepped through torch's functional adam gives the
weights and state optimizer.step() gives, bit for bit; every other optimizer keeps step()."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from digitlab.config import OptimConfig, SchedConfig
from digitlab.training.fast_adam import fast_adam_step, supported
from digitlab.training.optim import OPTIMIZERS, Schedule, param_groups


def model_and_batches(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(12, 16), torch.nn.LayerNorm(16), torch.nn.ReLU(),
                                torch.nn.Linear(16, 3))
    batches = [(torch.randn(8, 12), torch.randint(0, 3, (8,))) for _ in range(7)]
    return model, batches


def build(model, **optim):
    cfg = dataclasses.replace(OptimConfig(), **optim)
    return OPTIMIZERS.get(cfg.name)(param_groups(model, cfg), cfg)


def no_scaler() -> torch.amp.GradScaler:
    return torch.amp.GradScaler("cpu", enabled=False)


def train(optim: dict, fast: bool, sched: str = "onecycle"):
    model, batches = model_and_batches()
    optimizer = build(model, **optim)
    schedule = Schedule(optimizer, SchedConfig(name=sched), [len(batches)])
    step = fast_adam_step(optimizer, no_scaler()) if fast else None
    assert (step is not None) == fast
    for images, labels in batches:
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        if step is not None:
            step()
        else:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        schedule.after_batch()  # onecycle moves lr and beta1 every step
    return model, optimizer


@pytest.mark.parametrize("optim", [
    {"name": "adam"},
    {"name": "adam", "weight_decay": 0.01},
    {"name": "adamw", "weight_decay": 0.05, "decay_bias_norm": False},  # two param groups
    {"name": "adamw", "betas": (0.85, 0.9), "eps": 1e-6},
], ids=["adam", "adam-l2", "adamw-two-groups", "adamw-betas"])
def test_bit_identical_to_optimizer_step(optim):
    slow_model, slow_opt = train(optim, fast=False)
    fast_model, fast_opt = train(optim, fast=True)
    for a, b in zip(slow_model.state_dict().values(), fast_model.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)
    slow_state, fast_state = slow_opt.state_dict(), fast_opt.state_dict()
    assert slow_state["param_groups"] == fast_state["param_groups"]
    for key, state in slow_state["state"].items():
        for name, value in state.items():  # step, exp_avg, exp_avg_sq: what resume restores
            assert torch.equal(value, fast_state["state"][key][name]), (key, name)


def test_gradients_cleared_and_first_step_creates_state():
    model, batches = model_and_batches()
    optimizer = build(model, name="adam")
    step = fast_adam_step(optimizer, no_scaler())
    torch.nn.functional.cross_entropy(model(batches[0][0]), batches[0][1]).backward()
    assert not optimizer.state
    step()  # through optimizer.step(): Adam creates its state
    assert len(optimizer.state) == len(list(model.parameters()))
    assert all(p.grad is None for p in model.parameters())


def test_hooks_and_missing_gradients_go_through_step():
    model, batches = model_and_batches()
    optimizer = build(model, name="adam")
    step = fast_adam_step(optimizer, no_scaler())
    calls = []
    for images, labels in batches[:2]:
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        step()
    handle = optimizer.register_step_post_hook(lambda *args: calls.append(1))
    torch.nn.functional.cross_entropy(model(batches[2][0]), batches[2][1]).backward()
    step()
    assert calls == [1]
    handle.remove()
    frozen = model[3].bias
    torch.nn.functional.cross_entropy(model(batches[3][0]), batches[3][1]).backward()
    frozen.grad = None  # Adam skips a parameter without a gradient
    before = frozen.detach().clone()
    step()
    assert torch.equal(frozen.detach(), before)


@pytest.mark.parametrize("name", [n for n in OPTIMIZERS.names() if n != "sparse-adam"])
def test_only_fused_adam_and_adamw_take_the_fast_step(name):  # sparse-adam is refused at build
    model, _ = model_and_batches()
    optimizer = build(model, name=name)
    expected = name in ("adam", "adamw")
    assert (fast_adam_step(optimizer, no_scaler()) is not None) == expected


@pytest.mark.parametrize("kind", ["amsgrad", "foreach", "capturable", "tensor-lr", "fp16-scaler"])
def test_unsupported_adam_settings_keep_step(kind):
    model, _ = model_and_batches()
    params = list(model.parameters())
    scaler = no_scaler()
    if kind == "amsgrad":
        optimizer = torch.optim.Adam(params, amsgrad=True, fused=True)
    elif kind == "foreach":
        optimizer = torch.optim.Adam(params, foreach=True)
    elif kind == "capturable":
        optimizer = torch.optim.Adam(params, capturable=True, foreach=True)
    elif kind == "tensor-lr":
        optimizer = torch.optim.Adam(params, lr=torch.tensor(1e-3), fused=True)
    else:
        optimizer = torch.optim.Adam(params, fused=True)
        scaler = torch.amp.GradScaler("cpu", enabled=True)
    assert not supported(optimizer, scaler)
    assert fast_adam_step(optimizer, scaler) is None


def test_a_torch_without_the_shared_functional_adam_keeps_step():
    """torch releases whose Adam groups lack decoupled_weight_decay (AdamW apart from Adam)
    step as before."""
    model, _ = model_and_batches()
    optimizer = build(model, name="adamw")
    for group in optimizer.param_groups:
        del group["decoupled_weight_decay"]
    assert fast_adam_step(optimizer, no_scaler()) is None


def test_hooks_kept_where_torch_does_not_say(monkeypatch):
    """A torch that keeps its hook lists elsewhere: every step goes through step()."""
    from digitlab.training import fast_adam

    model, batches = model_and_batches()
    optimizer = build(model, name="adam")
    assert not fast_adam.hooked(optimizer)
    monkeypatch.delattr(fast_adam.torch_optimizer, "_global_optimizer_pre_hooks")
    assert fast_adam.hooked(optimizer)
