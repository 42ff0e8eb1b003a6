"""The knobs, one by one: what each loss, optimizer and schedule setting computes, and what each
training setting (train.*, loss.teacher, ...) does to a real run.

The runs call `digitlab.training.train()` directly, on the CPU, on the bundled `digits` set
(1,797 images) with a small model: a second or less each. Only tests/test_cli.py goes through
`digitlab train`. What a run did inside is seen through torch's global hooks (the `spy`
fixture), not by patching digitlab. That every registry entry builds and runs is swept in
tests/test_registry.py.
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from rich.console import Console
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from digitlab.config import DataConfig, LossConfig, OptimConfig, SchedConfig, build_config
from digitlab.data import SOURCES
from digitlab.errors import ConfigError, DigitlabError
from digitlab.training import train
from digitlab.training.checkpoint import (
    load_checkpoint,
    load_model,
    reported_checkpoint,
    save_checkpoint,
)
from digitlab.training.losses import build_loss, temperature_at
from digitlab.training.optim import OPTIMIZERS, SCHEDULERS, Schedule, param_groups
from helpers import run_schedule, sgd_on_one_parameter

OPTIMIZER_NAMES = OPTIMIZERS.names()
SCHEDULER_NAMES = SCHEDULERS.names()

def finite(t: torch.Tensor) -> bool:
    return bool(torch.isfinite(t).all())


# ---- losses ---------------------------------------------------------------------------------

def logits_and_labels(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    logits = (3 * torch.randn(8, 10, generator=gen)).requires_grad_()
    labels = torch.randint(0, 10, (8,), generator=gen)
    return logits, labels


def test_cross_entropy_matches_torch():
    logits, labels = logits_and_labels()
    weights = tuple(float(w) for w in torch.linspace(0.5, 2.0, 10))
    loss = build_loss(LossConfig(label_smoothing=0.1, class_weights=weights), 10)(logits, labels)
    expected = F.cross_entropy(logits, labels, weight=torch.tensor(weights),
                               label_smoothing=0.1)
    assert torch.allclose(loss, expected)
    # explicit weights (data.balance = "weights") win over loss.class_weights
    w = torch.rand(10) + 0.1
    loss = build_loss(LossConfig(class_weights=weights), 10, w)(logits, labels)
    assert torch.allclose(loss, F.cross_entropy(logits, labels, weight=w))


def test_cross_entropy_ignore_index():
    logits, labels = logits_and_labels()
    labels[0] = -1
    loss = build_loss(LossConfig(ignore_index=-1), 10)(logits, labels)
    assert torch.allclose(loss, F.cross_entropy(logits[1:], labels[1:]))


def test_nll_equals_cross_entropy():
    logits, labels = logits_and_labels()
    nll = build_loss(LossConfig(name="nll"), 10)(logits, labels)
    ce = build_loss(LossConfig(name="cross-entropy"), 10)(logits, labels)
    assert torch.allclose(nll, ce)
    w = torch.rand(10) + 0.1
    nll = build_loss(LossConfig(name="nll"), 10, w)(logits, labels)
    assert torch.allclose(nll, F.cross_entropy(logits, labels, weight=w))


@pytest.mark.parametrize("n", [3, 11])
def test_class_weights_wrong_length(n):
    with pytest.raises(ConfigError, match="class_weights"):
        build_loss(LossConfig(class_weights=(1.0,) * n), 10)


def test_kl_div_with_teacher_logits():
    logits, _ = logits_and_labels()
    teacher = torch.randn(8, 10)
    loss_fn = build_loss(LossConfig(name="kl-div", distill_temperature=2.0), 10)
    loss = loss_fn(logits, teacher)
    assert loss.ndim == 0 and finite(loss) and loss >= 0
    expected = F.kl_div(F.log_softmax(logits / 2, 1), F.softmax(teacher / 2, 1),
                        reduction="batchmean") * 4
    assert torch.allclose(loss, expected)
    assert loss_fn(teacher, teacher).abs() < 1e-5  # the same distribution: no divergence


def test_kl_div_with_labels_is_smoothed_cross_entropy_minus_entropy():
    logits, labels = logits_and_labels()
    kl = build_loss(LossConfig(name="kl-div", label_smoothing=0.1), 10)(logits, labels)
    ce = F.cross_entropy(logits, labels, label_smoothing=0.1)
    soft = torch.full((10,), 0.01) + 0.9 * F.one_hot(torch.tensor(0), 10)
    entropy = -(soft * soft.log()).sum()
    assert torch.allclose(kl, ce - entropy, atol=1e-5)


def test_kl_div_refuses_class_weights():
    with pytest.raises(ConfigError, match="class weights"):
        build_loss(LossConfig(name="kl-div"), 10, torch.ones(10))


def test_focal_without_focus_is_cross_entropy():
    logits, labels = logits_and_labels()
    focal = build_loss(LossConfig(name="focal", focal_gamma=0.0, focal_alpha=1.0), 10)
    assert torch.allclose(focal(logits, labels), F.cross_entropy(logits, labels))
    # gamma > 0 down-weights every example: the loss only gets smaller
    sharp = build_loss(LossConfig(name="focal", focal_gamma=2.0), 10)(logits, labels)
    assert sharp < F.cross_entropy(logits, labels)


@pytest.mark.parametrize("name", ["mse", "l1", "smooth-l1", "bce"])
def test_one_hot_losses_non_negative(name):
    for seed in range(3):
        logits, labels = logits_and_labels(seed)
        assert build_loss(LossConfig(name=name), 10)(logits, labels) >= 0


def test_mse_value():
    logits, labels = logits_and_labels()
    loss = build_loss(LossConfig(name="mse"), 10)(logits, labels)
    expected = F.mse_loss(logits.softmax(1), F.one_hot(labels, 10).float())
    assert torch.allclose(loss, expected)


@pytest.mark.parametrize("name", ["mse", "l1", "smooth-l1", "bce", "nll", "multi-margin"])
def test_label_smoothing_refused(name):
    with pytest.raises(ConfigError, match="label_smoothing"):
        build_loss(LossConfig(name=name, label_smoothing=0.1), 10)


def test_temperature_at_anneals_linearly():
    cfg = LossConfig(temperature=1.0, temperature_final=3.0)
    assert temperature_at(cfg, 0, 11) == pytest.approx(1.0)
    assert temperature_at(cfg, 5, 11) == pytest.approx(2.0)
    assert temperature_at(cfg, 10, 11) == pytest.approx(3.0)
    values = [temperature_at(cfg, s, 11) for s in range(11)]
    steps = [b - a for a, b in zip(values, values[1:], strict=False)]
    assert all(d == pytest.approx(0.2) for d in steps)
    assert temperature_at(cfg, 50, 11) == pytest.approx(3.0)  # never past the final value
    assert temperature_at(LossConfig(), 7, 100) == 1.0
    down = LossConfig(temperature=2.0, temperature_final=0.5)
    assert temperature_at(down, 0, 4) == pytest.approx(2.0)
    assert temperature_at(down, 3, 4) == pytest.approx(0.5)


# ---- optimizers -----------------------------------------------------------------------------

def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))


def test_decay_bias_norm_false_splits_groups():
    model = tiny_model()
    cfg = OptimConfig(name="adamw", weight_decay=0.1, decay_bias_norm=False)
    groups = param_groups(model, cfg)
    assert len(groups) == 2
    assert "weight_decay" not in groups[0]
    assert groups[1]["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in groups[0]["params"])
    assert all(p.ndim <= 1 for p in groups[1]["params"])
    assert len(groups[0]["params"]) == 2 and len(groups[1]["params"]) == 4  # 2 biases, bn w+b
    n = sum(len(g["params"]) for g in groups)
    assert n == len(list(model.parameters()))
    optimizer = OPTIMIZERS.get("adamw")(groups, cfg)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.0]


@pytest.mark.parametrize("cfg", [OptimConfig(weight_decay=0.1),
                                 OptimConfig(weight_decay=0.0, decay_bias_norm=False)],
                         ids=["decay-all", "no-decay"])
def test_one_param_group(cfg):
    model = tiny_model()
    groups = param_groups(model, cfg)
    assert len(groups) == 1 and len(groups[0]["params"]) == len(list(model.parameters()))


def test_frozen_parameters_are_left_out():
    model = tiny_model()
    model[0].requires_grad_(False)
    groups = param_groups(model, OptimConfig())
    assert len(groups[0]["params"]) == len(list(model.parameters())) - 2


# ---- schedules ------------------------------------------------------------------------------

def sched_cfg(name: str, **kw) -> SchedConfig:
    if name == "multistep":
        kw.setdefault("milestones", (1,))
    return SchedConfig(name=name, **kw)


def test_step_and_multistep_decay_per_epoch():
    optimizer = sgd_on_one_parameter()
    _, after = run_schedule(Schedule(optimizer, SchedConfig(name="step", gamma=0.5), [5] * 3),
                            optimizer)
    assert after == pytest.approx([0.05, 0.025, 0.0125])
    optimizer = sgd_on_one_parameter()
    _, after = run_schedule(Schedule(optimizer, SchedConfig(name="multistep", milestones=(2,),
                                                            gamma=0.5), [5] * 3), optimizer)
    assert after == pytest.approx([0.1, 0.05, 0.05])
    optimizer = sgd_on_one_parameter(1.0)
    _, after = run_schedule(Schedule(optimizer, SchedConfig(name="step", step_size=2, gamma=0.5),
                                     [5] * 6), optimizer, epochs=6)
    assert after == pytest.approx([1.0, 0.5, 0.5, 0.25, 0.25, 0.125])


def test_cosine_reaches_min_lr_at_the_last_epoch():
    optimizer = sgd_on_one_parameter(1.0)
    schedule = Schedule(optimizer, SchedConfig(name="cosine", min_lr=0.01), [5] * 5)
    _, after = run_schedule(schedule, optimizer, epochs=5)
    assert after[-1] == pytest.approx(0.01)
    assert all(a > b for a, b in zip(after, after[1:], strict=False))


def test_plateau_follows_val_loss():
    optimizer = sgd_on_one_parameter()
    schedule = Schedule(optimizer, SchedConfig(name="plateau", patience=0, factor=0.5), [1] * 3)
    assert schedule.needs_metric
    for loss in (1.0, 0.5, 0.6, 0.7):
        schedule.after_epoch(val_loss=loss)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.025)


def test_onecycle_steps_per_batch_and_ends_low():
    optimizer = sgd_on_one_parameter(0.1)
    cfg = SchedConfig(name="onecycle")
    schedule = Schedule(optimizer, cfg, [5, 5, 5])
    assert schedule.unit == "batch"
    used, after_epoch = run_schedule(schedule, optimizer)
    assert len(set(used[:5])) == 5  # changes within the first epoch: per batch
    assert max(used) == pytest.approx(0.1, rel=0.05)
    assert used[0] == pytest.approx(0.1 / cfg.div_factor)
    assert used[-1] == pytest.approx(0.1 / cfg.div_factor / cfg.final_div_factor)
    assert used[-1] < 0.1 * 1e-3
    assert after_epoch[-1] < 0.1 / 10


@pytest.mark.parametrize("name", [n for n in OPTIMIZER_NAMES if n != "sparse-adam"])
def test_onecycle_with_every_optimizer(name):
    """One-cycle cycles momentum only where there is some: Adam's beta1, SGD with momentum."""
    model = tiny_model()
    cfg = OptimConfig(name=name, momentum=0.9 if name in ("sgd", "rmsprop") else 0.0)
    optimizer = OPTIMIZERS.get(name)(param_groups(model, cfg), cfg)
    schedule = Schedule(optimizer, SchedConfig(name="onecycle"), [5, 5, 5])
    if name == "lbfgs":
        return  # its step needs a closure; building the schedule is what used to fail
    used, _ = run_schedule(schedule, optimizer)
    assert max(used) == pytest.approx(cfg.lr, rel=0.05)
    group = optimizer.param_groups[0]
    if "betas" in group:
        assert group["betas"][0] != cfg.betas[0]  # cycled
    elif name in ("sgd", "rmsprop"):
        assert group["momentum"] != 0.9


def test_onecycle_leaves_plain_sgd_without_momentum():
    optimizer = sgd_on_one_parameter(0.1)
    Schedule(optimizer, SchedConfig(name="onecycle"), [4])
    assert optimizer.param_groups[0]["momentum"] == 0


@pytest.mark.parametrize("name", ["rprop", "lbfgs"])
def test_weight_decay_refused_where_ignored(name):
    cfg = OptimConfig(name=name, weight_decay=1e-4)
    with pytest.raises(ConfigError, match="no weight decay"):
        OPTIMIZERS.get(name)(param_groups(tiny_model(), cfg), cfg)


def test_warmup_then_cosine():
    optimizer = sgd_on_one_parameter(0.1)
    cfg = SchedConfig(name="cosine", warmup_epochs=1, warmup_start_factor=0.1)
    schedule = Schedule(optimizer, cfg, [5, 5, 5])
    lrs = [optimizer.param_groups[0]["lr"]]  # before batch 0, then after each batch
    for _ in range(5):
        optimizer.step()
        schedule.after_batch()
        lrs.append(optimizer.param_groups[0]["lr"])
    assert lrs[0] == pytest.approx(0.1 * 0.1)
    assert lrs == pytest.approx([0.1 * (0.1 + 0.9 * k / 5) for k in range(6)])  # linear
    assert lrs[-1] == pytest.approx(0.1)  # the warmup ends at optim.lr after 5 batches ...
    schedule.after_epoch(val_loss=None)
    first = optimizer.param_groups[0]["lr"]
    for _ in range(5):
        optimizer.step()
        schedule.after_batch()
    assert optimizer.param_groups[0]["lr"] == first  # ... then cosine steps per epoch
    schedule.after_epoch(val_loss=None)
    assert 0 < optimizer.param_groups[0]["lr"] < first < 0.1


@pytest.mark.parametrize("name", [n for n in SCHEDULER_NAMES if n != "onecycle"])
def test_warmup_rises_to_the_lr_and_never_above(name):
    optimizer = sgd_on_one_parameter(0.1)
    cfg = SchedConfig(name=name, warmup_epochs=1, warmup_start_factor=0.1, milestones=(2,))
    schedule = Schedule(optimizer, cfg, [5, 5, 5])
    used, _ = run_schedule(schedule, optimizer)
    assert used[0] == pytest.approx(0.01)
    assert max(used) <= 0.1 * (1 + 1e-9)  # cosine-warm-restarts used to climb to 10x


def test_warmup_is_refused_with_onecycle():
    with pytest.raises(ConfigError, match="onecycle"):
        SchedConfig(name="onecycle", warmup_epochs=1)


def test_multistep_needs_milestones():
    with pytest.raises(ConfigError, match="milestones"):
        Schedule(sgd_on_one_parameter(), SchedConfig(name="multistep"), [5])


# ---- training runs ----------------------------------------------------------------------------

TINY = ("model.name=mlp", "model.hidden=[16]")  # an epoch of digits in a blink
CNN = ("model.name=cnn", "model.channels=[4,8]")  # the smallest convnet with 2 conv layers
# Plain SGD (the update is exactly -lr * grad) on one batch holding the whole training split:
# an epoch is exactly one optimizer step.
ONE_STEP = ("optim.name=sgd", "optim.lr=0.5", "data.batch_size=4096")


def train_run(tmp_path: Path, *sets: str, epochs: int = 1, out: str = "run",
              dataset: str = "digits") -> tuple[dict, Path]:
    """train() on the CPU with `--set`-style overrides: (summary, run directory)."""
    run = tmp_path / out
    shortcuts = {"dataset": dataset, "epochs": epochs, "device": "cpu", "out": str(run)}
    cfg, _explicit = build_config(None, list(sets), shortcuts)
    return train(cfg, console=Console(quiet=True)), run


def refused(tmp_path: Path, *sets: str) -> str:
    """The message of the error that stops a run with `sets`; checks it wrote nothing and
    that the command would exit 2 (a usage or config error, not a crash)."""
    with pytest.raises(DigitlabError) as exc:
        train_run(tmp_path, *sets)
    assert exc.value.exit_code == 2, exc.value
    assert not (tmp_path / "run").exists()
    return str(exc.value)


def read_metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def trained_weights(run: Path) -> list[torch.Tensor]:
    """The run's reported model's parameters, in model.parameters() order (the optimizer's)."""
    model, *_ = load_model(run)
    return [p.detach() for p in model.parameters()]


@dataclass
class Forward:
    module: nn.Module
    output: torch.Tensor
    weight_channels_last: bool
    input_channels_last: bool
    deterministic: bool


@dataclass
class Step:
    weights: list[torch.Tensor]  # just before optimizer.step(): what the step starts from
    grads: list[torch.Tensor]  # ... and what it uses (after clipping)


@dataclass
class Seen:
    forwards: list[Forward] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)

    def clear(self) -> None:
        self.forwards.clear()
        self.steps.clear()


@pytest.fixture
def spy():
    """What the training loop did, through torch's global hooks: every Linear or Conv2d forward
    in training mode (evaluation and the frozen teacher run in eval mode), and every optimizer
    step."""
    seen = Seen()

    def on_forward(module, args, output):
        if module.training and isinstance(module, (nn.Linear, nn.Conv2d)):
            seen.forwards.append(Forward(
                module, output.detach().clone(),
                module.weight.is_contiguous(memory_format=torch.channels_last),
                args[0].dim() == 4 and args[0].is_contiguous(memory_format=torch.channels_last),
                torch.are_deterministic_algorithms_enabled()))

    def on_step(optimizer, args, kwargs):
        params = [p for group in optimizer.param_groups for p in group["params"]]
        seen.steps.append(Step([p.detach().clone() for p in params],
                               [p.grad.detach().clone() for p in params]))

    handles = [nn.modules.module.register_module_forward_hook(on_forward),
               register_optimizer_step_pre_hook(on_step)]
    yield seen
    for handle in handles:
        handle.remove()


# learning rates that make one epoch visible: plain SGD and ASGD barely move at Adam's 1e-3
OPTIMIZER_SETS = {"sgd": ["optim.lr=0.1"], "asgd": ["optim.lr=0.1"], "adadelta": ["optim.lr=1"],
                  "lbfgs": ["data.batch_size=512", "optim.lr=1", "optim.max_iter=5"]}


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_every_optimizer_trains_an_epoch(name, tmp_path):
    """Through the loop (L-BFGS takes its closure path), not only one step in isolation."""
    sets = [*TINY, f"optim.name={name}", *OPTIMIZER_SETS.get(name, [])]
    if "refused" in OPTIMIZERS.describe(name):
        assert name in refused(tmp_path, *sets)
        return
    summary, run = train_run(tmp_path, *sets)
    assert summary["status"] == "completed"
    assert summary["test_loss"] < math.log(10)  # it learned: better than a uniform guess
    assert len(read_metrics(run)) == 1


REFUSED = {  # what a run refuses before writing anything, and what the message names
    "smoothing": (["loss.name=mse", "loss.label_smoothing=0.1"], "label_smoothing"),
    "class-weights": (["loss.class_weights=[1, 2]"], "class_weights"),
    "rprop-decay": (["optim.name=rprop", "optim.weight_decay=0.1"], "weight decay"),
    "fp16-on-cpu": (["train.amp=fp16"], "fp16"),
    "plateau-without-val": (["sched.name=plateau"], "val_size"),
    "early-stop-without-val": (["train.early_stop_patience=1"], "val_size"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_bad_combination_is_refused_before_writing(case, tmp_path):
    sets, named = REFUSED[case]
    assert named in refused(tmp_path, *TINY, *sets)


def test_bf16_autocast_computes_in_bf16_and_stays_close_to_fp32(tmp_path, spy):
    train_run(tmp_path, *TINY, *ONE_STEP, out="fp32")
    fp32_forwards, (fp32_step,) = list(spy.forwards), list(spy.steps)
    fp32 = trained_weights(tmp_path / "fp32")
    spy.clear()
    train_run(tmp_path, *TINY, *ONE_STEP, "train.amp=bf16", out="bf16")
    (bf16_step,) = spy.steps
    bf16 = trained_weights(tmp_path / "bf16")

    assert {f.output.dtype for f in fp32_forwards} == {torch.float32}
    assert {f.output.dtype for f in spy.forwards} == {torch.bfloat16}  # every layer, autocast
    logits_fp32, logits_bf16 = fp32_forwards[-1].output, spy.forwards[-1].output.float()
    assert not torch.equal(logits_bf16, logits_fp32)
    assert torch.allclose(logits_bf16, logits_fp32, rtol=0.05, atol=0.05)
    # the weights stay fp32 (autocast, not a bf16 model); the step lands near fp32's
    for w0, w0_bf16, a, b in zip(fp32_step.weights, bf16_step.weights, fp32, bf16, strict=True):
        assert torch.equal(w0, w0_bf16) and b.dtype == torch.float32
        update = (a - w0).abs().max()
        assert not torch.equal(a, b)
        assert (a - b).abs().max() <= 0.05 * update


def test_clip_value_clips_every_gradient_element(tmp_path, spy):
    clip, lr = 1e-3, 0.5
    train_run(tmp_path, *TINY, *ONE_STEP, out="plain")
    (plain,) = spy.steps
    spy.clear()
    train_run(tmp_path, *TINY, *ONE_STEP, f"train.clip_value={clip}", out="clipped")
    (clipped,) = spy.steps
    after = trained_weights(tmp_path / "clipped")

    assert max(g.abs().max() for g in plain.grads) > 10 * clip  # there is something to clip
    for w0, raw, used, w1 in zip(plain.weights, plain.grads, clipped.grads, after, strict=True):
        assert torch.equal(used, raw.clamp(-clip, clip))  # element-wise, same run otherwise
        assert torch.allclose(w1, w0 - lr * used, atol=1e-7)  # and the step used them
        assert (w1 - w0).abs().max() <= lr * clip * (1 + 1e-4)


def test_clip_norm_with_accumulation(tmp_path, spy):
    """Three batches add up before each step, and the summed gradient is clipped to norm 0.5."""
    train_run(tmp_path, *TINY, "train.clip_norm=0.5", "train.accum_steps=3")
    batches = math.ceil(len(SOURCES.get("digits")(DataConfig(name="digits")).train) / 64)
    assert len(spy.steps) == math.ceil(batches / 3)
    norms = [torch.linalg.vector_norm(torch.stack([g.norm() for g in s.grads])).item()
             for s in spy.steps]
    assert max(norms) <= 0.5 * (1 + 1e-5)
    assert any(n == pytest.approx(0.5, rel=1e-5) for n in norms)  # clipping was needed


def test_channels_last_trains_nhwc_and_matches_nchw(tmp_path, spy):
    def layouts() -> set[tuple[bool, bool]]:
        """(weight, input) channels_last for the convs where the layout is unambiguous."""
        return {(f.weight_channels_last, f.input_channels_last) for f in spy.forwards
                if isinstance(f.module, nn.Conv2d) and f.module.in_channels > 1}

    nchw, _ = train_run(tmp_path, *CNN, out="nchw")
    assert layouts() == {(False, False)}
    spy.clear()
    nhwc, _ = train_run(tmp_path, *CNN, "train.channels_last=true", out="nhwc")
    assert layouts() == {(True, True)}
    for a, b in zip(trained_weights(tmp_path / "nchw"), trained_weights(tmp_path / "nhwc"),
                    strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    assert nhwc["test_loss"] == pytest.approx(nchw["test_loss"], rel=1e-4)


@pytest.fixture
def restores_determinism(monkeypatch):
    """train.deterministic switches process-wide torch settings on; put them back afterwards."""
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG",
                       os.environ.get("CUBLAS_WORKSPACE_CONFIG", ":4096:8"))
    before = (torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cudnn.benchmark)
    yield
    torch.use_deterministic_algorithms(before[0], warn_only=before[1])
    torch.backends.cudnn.benchmark = before[2]


def test_deterministic_turns_deterministic_algorithms_on(tmp_path, spy, restores_determinism):
    assert not torch.are_deterministic_algorithms_enabled()
    first, _ = train_run(tmp_path, *CNN, "train.deterministic=true", out="first")
    second, _ = train_run(tmp_path, *CNN, "train.deterministic=true", out="second")
    assert spy.forwards and all(f.deterministic for f in spy.forwards)
    for a, b in zip(trained_weights(tmp_path / "first"), trained_weights(tmp_path / "second"),
                    strict=True):
        assert torch.equal(a, b)
    assert first["test_loss"] == second["test_loss"]
    assert not torch.are_deterministic_algorithms_enabled()  # the process's setting is back


def test_plateau_with_validation(tmp_path):
    _, run = train_run(tmp_path, *TINY, "sched.name=plateau", "data.val_size=0.2", epochs=2)
    records = read_metrics(run)
    assert len(records) == 2
    for record in records:
        assert {"val_loss", "val_accuracy", "test_loss", "test_accuracy"} <= set(record)
        assert math.isfinite(record["val_loss"]) and 0 <= record["val_accuracy"] <= 1


# min_delta far larger than any change: epoch 2 cannot improve on epoch 1
STOPS_AFTER_2 = ("data.val_size=0.2", "train.early_stop_patience=1", "train.min_delta=100")


def test_early_stopping(tmp_path):
    summary, run = train_run(tmp_path, *TINY, *STOPS_AFTER_2, epochs=4)
    assert summary["stopped_early"] is True
    assert summary["best_epoch"] == 1
    assert summary["epochs"] == 2 and summary["epochs_planned"] == 4
    assert (run / "checkpoints" / "best.safetensors").is_file()
    records = read_metrics(run)
    assert [r["epoch"] for r in records] == [1, 2]
    # the final test uses the best (epoch 1) weights, not the last ones
    assert summary["test_loss"] == pytest.approx(records[0]["test_loss"], rel=1e-6)


def test_early_stopping_keys_without_stop(tmp_path):
    summary, run = train_run(tmp_path, *TINY, "data.val_size=0.2",
                             "train.early_stop_patience=5", epochs=2)
    assert summary["stopped_early"] is False
    assert summary["best_epoch"] in (1, 2)
    assert (run / "checkpoints" / "best.safetensors").is_file()


class FakeSummaryWriter:
    """torch's SummaryWriter where the tensorboard package is missing (CI): one JSON line per
    scalar in an events.out.tfevents.* file, which read_tensorboard() reads back."""

    def __init__(self, log_dir: str):
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        self.path = Path(log_dir) / "events.out.tfevents.fake"

    def add_scalar(self, tag: str, value: float, global_step: int) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps({"tag": tag, "step": global_step, "value": value}) + "\n")

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def read_tensorboard(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...]} from the event files in `folder`."""
    fakes = list(folder.glob("*.fake"))
    if fakes:
        scalars: dict[str, list[tuple[int, float]]] = {}
        for line in fakes[0].read_text().splitlines():
            event = json.loads(line)
            scalars.setdefault(event["tag"], []).append((event["step"], event["value"]))
        return scalars
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)]
            for tag in events.Tags()["scalars"]}


@pytest.fixture
def tensorboard_writer(monkeypatch):
    """The real SummaryWriter when tensorboard is installed, else FakeSummaryWriter."""
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        fake = type(sys)("torch.utils.tensorboard")
        fake.SummaryWriter = FakeSummaryWriter
        monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)


def test_tensorboard_with_early_stopping(tmp_path, tensorboard_writer):
    summary, run = train_run(tmp_path, *TINY, *STOPS_AFTER_2, "train.tensorboard=true",
                             epochs=4)
    assert summary["stopped_early"] is True and summary["epochs"] == 2
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    scalars = read_tensorboard(run / "tensorboard")
    records = read_metrics(run)
    for key in ("train_loss", "val_loss", "test_accuracy"):  # every epoch run, none after
        assert scalars[key] == [(r["epoch"], pytest.approx(r[key], rel=1e-6)) for r in records]


def teacher_that_always_says_3(tmp_path: Path) -> Path:
    """A trained run whose classifier is rewritten to answer 3 to everything."""
    _, run = train_run(tmp_path, *TINY, out="teacher")
    model, _cfg, _meta, path = load_model(run)
    head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(10.0 * F.one_hot(torch.tensor(3), 10))
    tensors, meta = load_checkpoint(path)
    rng = {k: v for k, v in tensors.items() if k.startswith("rng.")}
    save_checkpoint(reported_checkpoint(run), model, None, meta, rng)
    return run


def test_distillation_learns_the_teachers_answers(tmp_path):
    """The student's targets come from the teacher, not the labels: taught by a teacher that
    always says 3, after one epoch it says 3 to every test image."""
    teacher = teacher_that_always_says_3(tmp_path)
    summary, student = train_run(tmp_path, "model.name=mlp", "model.hidden=[8]",
                                 "loss.name=kl-div", f"loss.teacher={teacher}", out="student")
    model, cfg, _meta, _path = load_model(student)
    test = SOURCES.get("digits")(DataConfig(name="digits")).test
    images = ((test.images.float() / 255 - cfg.data.mean) / cfg.data.std).unsqueeze(1)
    with torch.no_grad():
        predicted = model(images).argmax(dim=1)
    assert (predicted == 3).all()
    # so its accuracy is the share of 3s (1 in 10), where labels give 50% after one epoch
    share_of_3 = (test.labels == 3).float().mean().item()
    assert summary["test_accuracy"] == pytest.approx(share_of_3)


def test_distillation_missing_teacher(tmp_path):
    message = refused(tmp_path, *TINY, "loss.name=kl-div", f"loss.teacher={tmp_path / 'nowhere'}")
    assert "nowhere" in message


def test_temperature_is_annealed_and_logged(tmp_path):
    _, run = train_run(tmp_path, *TINY, "loss.temperature=1", "loss.temperature_final=2",
                       epochs=2)
    records = read_metrics(run)
    assert 1 < records[0]["temperature"] < records[1]["temperature"]
    assert records[1]["temperature"] == pytest.approx(2.0)
