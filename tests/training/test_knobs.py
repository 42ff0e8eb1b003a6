"""Every registry entry, one test each (ids = names): activations, models, losses, optimizers,
schedules, plus the training knobs end to end through `digitlab train` on the `digits` set.

The unit tests build modules directly; the CLI tests train one small epoch each. The end-of-run
analysis (plots, report.html) is switched off here: it costs seconds per run and is not what
these tests are about.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from digitlab.cli import main
from digitlab.config import DataConfig, LossConfig, ModelConfig, OptimConfig, SchedConfig
from digitlab.data import SOURCES
from digitlab.errors import ConfigError
from digitlab.models import ACTIVATIONS, MODELS, build_activation, build_model
from digitlab.training import loop
from digitlab.training.checkpoint import load_checkpoint
from digitlab.training.losses import LOSSES, build_loss, temperature_at
from digitlab.training.optim import OPTIMIZERS, SCHEDULERS, Schedule, param_groups

ACTIVATION_NAMES = ACTIVATIONS.names()
MODEL_NAMES = MODELS.names()
LOSS_NAMES = LOSSES.names()
OPTIMIZER_NAMES = OPTIMIZERS.names()
SCHEDULER_NAMES = SCHEDULERS.names()

# A small model for the CLI runs: a one-hidden-layer MLP trains an epoch of digits in a blink.
TINY = ["--set", "model.name=mlp", "--set", "model.hidden=[16]"]


@pytest.fixture(autouse=True)
def _no_analysis(monkeypatch):
    monkeypatch.setattr(loop, "analyze", lambda *args, **kwargs: {}, raising=False)


def finite(t: torch.Tensor) -> bool:
    return bool(torch.isfinite(t).all())


def assert_finite_grads(module: nn.Module) -> None:
    for name, p in module.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert finite(p.grad), f"{name} has a non-finite gradient"


# ---- activations ----------------------------------------------------------------------------

def test_activation_count():
    assert len(ACTIVATION_NAMES) == 25
    assert len(set(ACTIVATION_NAMES)) == 25
    assert {"silu", "mish", "hardswish"} <= set(ACTIVATION_NAMES)


@pytest.mark.parametrize("name", ACTIVATION_NAMES, ids=ACTIVATION_NAMES)
@pytest.mark.parametrize("shape", [(8, 16), (8, 4, 5, 5)], ids=["dense", "conv"])
def test_activation_forward_backward(name, shape):
    torch.manual_seed(0)
    width = shape[1]
    act = build_activation(ModelConfig(activation=name, prelu_per_channel=True), width)
    assert isinstance(act, nn.Module)
    x = torch.randn(*shape, requires_grad=True)
    out = act(x)
    assert out.shape == x.shape
    assert finite(out)
    (out * torch.randn_like(out)).sum().backward()
    assert x.grad is not None and finite(x.grad)
    for p in act.parameters():
        assert p.grad is not None and finite(p.grad)


def test_activation_modules_are_fresh():
    cfg = ModelConfig(activation="prelu")
    assert build_activation(cfg, 8) is not build_activation(cfg, 8)


ACTIVATION_PARAMS = [
    ("leakyrelu", {"negative_slope": 0.2}, {"negative_slope": 0.2}),
    ("rrelu", {"rrelu_lower": 0.05, "rrelu_upper": 0.25}, {"lower": 0.05, "upper": 0.25}),
    ("softplus", {"softplus_beta": 2.5, "softplus_threshold": 7.0},
     {"beta": 2.5, "threshold": 7.0}),
    ("elu", {"alpha": 0.7}, {"alpha": 0.7}),
    ("celu", {"alpha": 1.7}, {"alpha": 1.7}),
    ("gelu", {"gelu_approximate": "tanh"}, {"approximate": "tanh"}),
    ("hardtanh", {"hardtanh_min": -2.0, "hardtanh_max": 3.0}, {"min_val": -2.0, "max_val": 3.0}),
    ("threshold", {"threshold": 0.4, "threshold_value": -1.5}, {"threshold": 0.4, "value": -1.5}),
    ("softshrink", {"shrink_lambda": 0.3}, {"lambd": 0.3}),
    ("hardshrink", {"shrink_lambda": 0.8}, {"lambd": 0.8}),
]


@pytest.mark.parametrize("name,knobs,attrs", ACTIVATION_PARAMS,
                         ids=[p[0] for p in ACTIVATION_PARAMS])
def test_activation_params_reach_module(name, knobs, attrs):
    act = build_activation(ModelConfig(activation=name, **knobs), 16)
    for attr, expected in attrs.items():
        assert getattr(act, attr) == expected, attr


def test_activation_params_change_the_output():
    x = torch.linspace(-3, 3, 13)[None]
    hardtanh = build_activation(ModelConfig(activation="hardtanh", hardtanh_min=-2.0,
                                            hardtanh_max=0.5), 13)(x)
    assert hardtanh.min() == -2.0 and hardtanh.max() == 0.5
    threshold = build_activation(ModelConfig(activation="threshold", threshold=1.0,
                                             threshold_value=-7.0), 13)(x)
    assert torch.equal(threshold, torch.where(x > 1.0, x, torch.tensor(-7.0)))
    leaky = build_activation(ModelConfig(activation="leakyrelu", negative_slope=0.5), 13)(x)
    assert torch.allclose(leaky, torch.where(x > 0, x, 0.5 * x))


@pytest.mark.parametrize("per_channel,numel", [(False, 1), (True, 16)],
                         ids=["shared", "per-channel"])
def test_prelu_per_channel(per_channel, numel):
    act = build_activation(ModelConfig(activation="prelu", prelu_per_channel=per_channel), 16)
    assert isinstance(act, nn.PReLU)
    assert act.weight.numel() == numel


def test_activation_params_reach_model_layers():
    model = build_model(ModelConfig(name="mlp", hidden=(32, 16), activation="prelu",
                                    prelu_per_channel=True), 10)
    prelus = [m for m in model.modules() if isinstance(m, nn.PReLU)]
    assert [p.weight.numel() for p in prelus] == [32, 16]
    model = build_model(ModelConfig(name="cnn", channels=(4, 8), activation="leakyrelu",
                                    negative_slope=0.3), 10)
    leaky = [m for m in model.modules() if isinstance(m, nn.LeakyReLU)]
    assert len(leaky) == 2 and all(m.negative_slope == 0.3 for m in leaky)


# ---- models ---------------------------------------------------------------------------------

MODEL_ACTIVATIONS = {
    "relu": {},
    "prelu": {"prelu_per_channel": True},
    "gelu": {},
    "softmax": {},
}


@pytest.mark.parametrize("activation", list(MODEL_ACTIVATIONS), ids=list(MODEL_ACTIVATIONS))
@pytest.mark.parametrize("name", MODEL_NAMES, ids=MODEL_NAMES)
def test_model_forward_backward(name, activation):
    torch.manual_seed(0)
    cfg = ModelConfig(name=name, activation=activation, **MODEL_ACTIVATIONS[activation])
    model = build_model(cfg, 10)
    images = torch.randn(4, 1, 28, 28)
    logits = model(images)
    assert logits.shape == (4, 10)
    assert finite(logits)
    F.cross_entropy(logits, torch.tensor([0, 3, 7, 9])).backward()
    assert_finite_grads(model)


@pytest.mark.parametrize("name", MODEL_NAMES, ids=MODEL_NAMES)
def test_model_num_classes(name):
    assert build_model(ModelConfig(name=name), 3)(torch.zeros(2, 1, 28, 28)).shape == (2, 3)


def test_seed_mlp_is_the_tutorial_model():
    model = build_model(ModelConfig(), 10)
    assert list(model.state_dict()) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias",
                                        "fc3.weight", "fc3.bias"]
    assert sum(p.numel() for p in model.parameters()) == 109_386
    assert model.fc1.weight.shape == (128, 784)
    assert model.fc2.weight.shape == (64, 128)
    assert model.fc3.weight.shape == (10, 64)


def test_mlp_hidden_dropout_batchnorm():
    model = build_model(ModelConfig(name="mlp", hidden=(32, 16), dropout=0.3), 10)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 32), (32, 16), (16, 10)]
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert len(drops) == 2 and all(m.p == 0.3 for m in drops)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in model.modules())

    model = build_model(ModelConfig(name="mlp", hidden=(32, 16), batchnorm=True), 10)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)]
    assert [m.num_features for m in norms] == [32, 16]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert linears[0].bias is None and linears[1].bias is None  # batchnorm has the shift
    assert linears[2].bias is not None
    assert not any(isinstance(m, nn.Dropout) for m in model.modules())


@pytest.mark.parametrize("scheme", ["kaiming", "xavier", "orthogonal"])
@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_init_schemes_zero_biases(name, scheme):
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name, hidden=(32,), channels=(4, 8), init=scheme), 10)
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert layers
    for m in layers:
        assert m.bias is not None and torch.count_nonzero(m.bias) == 0
        assert finite(m.weight) and m.weight.std() > 0
    if scheme == "orthogonal":
        w = layers[0].weight.flatten(1)
        rows = min(w.shape)
        gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
        assert torch.allclose(gram, torch.eye(rows), atol=1e-4)


def test_default_init_keeps_pytorch_biases():
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="mlp", hidden=(32,)), 10)
    assert torch.count_nonzero(model[1].bias) > 0


def test_kaiming_init_scale():
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="mlp", hidden=(512,), init="kaiming"), 10)
    w = model[1].weight  # 512 x 784, std should be sqrt(2 / 784)
    assert w.std().item() == pytest.approx(math.sqrt(2 / 784), rel=0.05)


@pytest.mark.parametrize("pool,pool_type", [("max", nn.MaxPool2d), ("avg", nn.AvgPool2d)])
def test_cnn_channels_kernel_pool(pool, pool_type):
    model = build_model(ModelConfig(name="cnn", channels=(4, 8, 6), kernel_size=5, pool=pool), 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [m.out_channels for m in convs] == [4, 8, 6]
    assert [m.in_channels for m in convs] == [1, 4, 8]
    assert all(m.kernel_size == (5, 5) and m.padding == (2, 2) for m in convs)
    pools = [m for m in model.modules() if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d))]
    assert len(pools) == 3 and all(type(m) is pool_type for m in pools)
    head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    assert head.in_features == 6 * 3 * 3  # 28 -> 14 -> 7 -> 3
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_cnn_batchnorm_and_dropout():
    model = build_model(ModelConfig(name="cnn", channels=(4,), batchnorm=True, dropout=0.25), 10)
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert conv.bias is None
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert any(isinstance(m, nn.Dropout) and m.p == 0.25 for m in model.modules())


def test_resnet_channels():
    model = build_model(ModelConfig(name="resnet", channels=(4, 8)), 10)
    head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    assert head.in_features == 8
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


# ---- losses ---------------------------------------------------------------------------------

def logits_and_labels(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    logits = (3 * torch.randn(8, 10, generator=gen)).requires_grad_()
    labels = torch.randint(0, 10, (8,), generator=gen)
    return logits, labels


@pytest.mark.parametrize("name", LOSS_NAMES, ids=LOSS_NAMES)
def test_loss_finite_and_differentiable(name):
    logits, labels = logits_and_labels()
    loss = build_loss(LossConfig(name=name), 10)(logits, labels)
    assert loss.ndim == 0
    assert finite(loss)
    loss.backward()
    assert logits.grad is not None and finite(logits.grad)
    assert logits.grad.abs().sum() > 0


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


def tiny_loss(model: nn.Module) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(16, 6, generator=gen)
    y = torch.randint(0, 3, (16,), generator=gen)
    return F.cross_entropy(model(x), y)


@pytest.mark.parametrize("name", OPTIMIZER_NAMES, ids=OPTIMIZER_NAMES)
def test_optimizer_steps(name):
    model = tiny_model()
    cfg = OptimConfig(name=name, lr=1.0 if name in ("lbfgs", "adadelta") else 1e-2, max_iter=5)
    builder = OPTIMIZERS.get(name)
    if name == "sparse-adam":
        with pytest.raises(ConfigError, match="sparse gradients"):
            builder(param_groups(model, cfg), cfg)
        return
    optimizer = builder(param_groups(model, cfg), cfg)
    before = [p.detach().clone() for p in model.parameters()]

    def closure():
        optimizer.zero_grad()
        loss = tiny_loss(model)
        loss.backward()
        return loss

    for _ in range(3):
        if name == "lbfgs":
            optimizer.step(closure)
        else:
            closure()
            optimizer.step()
    after = list(model.parameters())
    assert all(finite(p) for p in after)
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))


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


def run_schedule(schedule: Schedule, optimizer, epochs: int = 3, batches: int = 5):
    """The lr in effect for every batch, and the lr after every epoch."""
    used, after_epoch = [], []
    param = optimizer.param_groups[0]["params"][0]
    for _ in range(epochs):
        for _ in range(batches):
            used.append(optimizer.param_groups[0]["lr"])
            param.grad = torch.ones_like(param)
            optimizer.step()
            schedule.after_batch()
        schedule.after_epoch(val_loss=1.0)
        after_epoch.append(optimizer.param_groups[0]["lr"])
    return used, after_epoch


def sgd(lr: float = 0.1):
    return torch.optim.SGD([nn.Parameter(torch.zeros(3))], lr=lr)


@pytest.mark.parametrize("name", SCHEDULER_NAMES, ids=SCHEDULER_NAMES)
def test_schedule_steps(name):
    optimizer = sgd()
    schedule = Schedule(optimizer, sched_cfg(name), [5, 5, 5])
    used, after_epoch = run_schedule(schedule, optimizer)
    assert len(used) == 15
    assert all(math.isfinite(lr) and lr > 0 for lr in used)  # every batch trains
    assert all(math.isfinite(lr) and lr >= 0 for lr in after_epoch)  # cosine may end at min_lr
    state = schedule.state_dict()
    json.loads(json.dumps(state))  # checkpoints keep it in their JSON header


@pytest.mark.parametrize("name", SCHEDULER_NAMES, ids=SCHEDULER_NAMES)
def test_schedule_state_round_trip(name):
    """Resume: a schedule restored from its JSON state continues exactly like the original."""
    opt_a = sgd()
    sched_a = Schedule(opt_a, sched_cfg(name, warmup_epochs=0.0 if name == "onecycle" else 0.4),
                       [5, 5, 5])
    run_schedule(sched_a, opt_a, epochs=1)
    state = json.loads(json.dumps(sched_a.state_dict()))
    opt_b = sgd()
    sched_b = Schedule(opt_b, sched_cfg(name, warmup_epochs=0.0 if name == "onecycle" else 0.4),
                       [5, 5, 5])
    sched_b.load_state_dict(state)
    opt_b.param_groups[0]["lr"] = opt_a.param_groups[0]["lr"]  # the optimizer's own state
    rest_a = run_schedule(sched_a, opt_a, epochs=2)
    rest_b = run_schedule(sched_b, opt_b, epochs=2)
    assert rest_a == rest_b


def test_step_and_multistep_decay_per_epoch():
    optimizer = sgd()
    _, after = run_schedule(Schedule(optimizer, SchedConfig(name="step", gamma=0.5), [5] * 3),
                            optimizer)
    assert after == pytest.approx([0.05, 0.025, 0.0125])
    optimizer = sgd()
    _, after = run_schedule(Schedule(optimizer, SchedConfig(name="multistep", milestones=(2,),
                                                            gamma=0.5), [5] * 3), optimizer)
    assert after == pytest.approx([0.1, 0.05, 0.05])


def test_plateau_follows_val_loss():
    optimizer = sgd()
    schedule = Schedule(optimizer, SchedConfig(name="plateau", patience=0, factor=0.5), [1] * 3)
    assert schedule.needs_metric
    for loss in (1.0, 0.5, 0.6, 0.7):
        schedule.after_epoch(val_loss=loss)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.025)


def test_onecycle_steps_per_batch_and_ends_low():
    optimizer = sgd(0.1)
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
    optimizer = sgd(0.1)
    Schedule(optimizer, SchedConfig(name="onecycle"), [4])
    assert optimizer.param_groups[0]["momentum"] == 0


@pytest.mark.parametrize("name", ["rprop", "lbfgs"])
def test_weight_decay_refused_where_ignored(name):
    cfg = OptimConfig(name=name, weight_decay=1e-4)
    with pytest.raises(ConfigError, match="no weight decay"):
        OPTIMIZERS.get(name)(param_groups(tiny_model(), cfg), cfg)


@pytest.mark.parametrize("sets", [["loss.name=mse", "loss.label_smoothing=0.1"],
                                  ["loss.class_weights=[1, 2]"],
                                  ["optim.name=sparse-adam"],
                                  ["optim.name=rprop", "optim.weight_decay=0.1"]])
def test_bad_loss_or_optimizer_writes_nothing(sets, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--dataset", "synthetic", "--out", str(run), *TINY]
    for item in sets:
        argv += ["--set", item]
    assert main(argv) == 2
    assert not run.exists()


def test_warmup_then_cosine():
    optimizer = sgd(0.1)
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
    optimizer = sgd(0.1)
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
        Schedule(sgd(), SchedConfig(name="multistep"), [5])


# ---- end to end through the CLI -------------------------------------------------------------

def train_cli(tmp_path: Path, capsys, *args: str, out: str = "run",
              dataset: str = "digits", epochs: int = 1) -> tuple[int, str, Path]:
    run = tmp_path / out
    code = main(["train", "--device", "cpu", "--dataset", dataset, "--epochs", str(epochs), *args,
                 "--out", str(run)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err, run


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing lands in the checkout, whatever happens
    return tmp_path


def read_metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


OPTIMIZER_SETS = {
    "lbfgs": ["--set", "data.batch_size=512", "--set", "optim.lr=1", "--set", "optim.max_iter=5"],
    "adadelta": ["--set", "optim.lr=1"],
}


@pytest.mark.parametrize("name", OPTIMIZER_NAMES, ids=OPTIMIZER_NAMES)
def test_cli_every_optimizer_trains(name, in_tmp, capsys):
    code, output, run = train_cli(in_tmp, capsys, "--set", f"optim.name={name}", *TINY,
                                  *OPTIMIZER_SETS.get(name, []))
    if name == "sparse-adam":
        assert code == 2, output
        assert "sparse" in output
        return
    assert code == 0, output
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert math.isfinite(summary["test_loss"])
    assert len(read_metrics(run)) == 1


def test_cli_bf16_autocast_on_cpu(in_tmp, capsys):
    code, output, run = train_cli(in_tmp, capsys, "--set", "train.amp=bf16", *TINY)
    assert code == 0, output
    assert math.isfinite(json.loads((run / "summary.json").read_text())["test_loss"])


def test_cli_fp16_refused_on_cpu(in_tmp, capsys):
    code, output, run = train_cli(in_tmp, capsys, "--set", "train.amp=fp16", *TINY)
    assert code == 2
    assert "fp16" in output
    assert not run.exists()  # refused before anything was written


def test_cli_clip_norm_with_accumulation(in_tmp, capsys):
    code, output, run = train_cli(in_tmp, capsys, "--set", "train.clip_norm=0.5",
                                  "--set", "train.accum_steps=3", *TINY)
    assert code == 0, output
    batches = math.ceil(len(SOURCES.get("digits")(DataConfig(name="digits")).train) / 64)
    assert read_metrics(run)[0]["step"] == batches  # "step" counts batches ...
    tensors, _ = load_checkpoint(run / "checkpoints" / "last.safetensors")
    assert tensors["optim.0.step"].item() == math.ceil(batches / 3)  # ... Adam steps every 3rd


def test_cli_clip_value(in_tmp, capsys):
    code, output, _ = train_cli(in_tmp, capsys, "--set", "train.clip_value=0.01", *TINY)
    assert code == 0, output


def test_cli_plateau_needs_validation(in_tmp, capsys):
    code, output, run = train_cli(in_tmp, capsys, "--set", "sched.name=plateau", *TINY)
    assert code == 2
    assert "val_size" in output
    assert not run.exists()


def test_cli_plateau_with_validation(in_tmp, capsys):
    code, output, run = train_cli(in_tmp, capsys, "--set", "sched.name=plateau",
                                  "--set", "data.val_size=0.2", *TINY, epochs=2)
    assert code == 0, output
    records = read_metrics(run)
    assert len(records) == 2
    for record in records:
        assert {"val_loss", "val_accuracy", "test_loss", "test_accuracy"} <= set(record)
        assert math.isfinite(record["val_loss"]) and 0 <= record["val_accuracy"] <= 1


def test_cli_early_stopping(in_tmp, capsys):
    # min_delta is far larger than any change, so epoch 2 cannot improve on epoch 1
    code, output, run = train_cli(in_tmp, capsys, "--set", "data.val_size=0.2",
                                  "--set", "train.early_stop_patience=1",
                                  "--set", "train.min_delta=100", *TINY, epochs=4)
    assert code == 0, output
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stopped_early"] is True
    assert summary["best_epoch"] == 1
    assert summary["epochs"] == 2 and summary["epochs_planned"] == 4
    assert (run / "checkpoints" / "best.safetensors").is_file()
    records = read_metrics(run)
    assert [r["epoch"] for r in records] == [1, 2]
    # the final test uses the best (epoch 1) weights, not the last ones
    assert summary["test_loss"] == pytest.approx(records[0]["test_loss"], rel=1e-6)
    assert "Early stopping" in output


def test_cli_early_stopping_keys_without_stop(in_tmp, capsys):
    code, output, run = train_cli(in_tmp, capsys, "--set", "data.val_size=0.2",
                                  "--set", "train.early_stop_patience=5", *TINY, epochs=2)
    assert code == 0, output
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stopped_early"] is False
    assert summary["best_epoch"] in (1, 2)
    assert (run / "checkpoints" / "best.safetensors").is_file()


def test_cli_early_stopping_needs_validation(in_tmp, capsys):
    code, output, _ = train_cli(in_tmp, capsys, "--set", "train.early_stop_patience=1", *TINY)
    assert code == 2
    assert "val_size" in output


def test_cli_distillation(in_tmp, capsys):
    code, output, teacher = train_cli(in_tmp, capsys, *TINY, out="teacher")
    assert code == 0, output
    code, output, student = train_cli(in_tmp, capsys, "--set", "loss.name=kl-div",
                                      "--set", f"loss.teacher={teacher}",
                                      "--set", "loss.distill_temperature=2",
                                      "--set", "model.name=mlp", "--set", "model.hidden=[8]",
                                      out="student")
    assert code == 0, output
    summary = json.loads((student / "summary.json").read_text())
    assert summary["status"] == "completed" and math.isfinite(summary["train_loss"])


def test_cli_distillation_missing_teacher(in_tmp, capsys):
    code, output, _ = train_cli(in_tmp, capsys, "--set", "loss.name=kl-div",
                                "--set", f"loss.teacher={in_tmp / 'nowhere'}", *TINY)
    assert code == 2
    assert re.search("nowhere", output)


def test_cli_temperature_is_logged(in_tmp, capsys):
    code, output, run = train_cli(in_tmp, capsys, "--set", "loss.temperature=1",
                                  "--set", "loss.temperature_final=2", *TINY, epochs=2)
    assert code == 0, output
    records = read_metrics(run)
    assert 1 < records[0]["temperature"] < records[1]["temperature"]
    assert records[1]["temperature"] == pytest.approx(2.0)
