"""digitlab.registry, and every entry of every registry (one test case per entry)."""

from __future__ import annotations

import math

import pytest
import torch

from digitlab.config import DataConfig, LossConfig, ModelConfig, OptimConfig, SchedConfig
from digitlab.data import SOURCES, Dataset
from digitlab.errors import ConfigError, DataNotFound
from digitlab.models import ACTIVATIONS, MODELS, build_model
from digitlab.registry import Registry, closest
from digitlab.training.losses import LOSSES, build_loss
from digitlab.training.optim import OPTIMIZERS, SCHEDULERS, Schedule, current_lr, param_groups

MNIST_FAMILY = {"mnist", "fashion-mnist", "kmnist"}


# ---------------------------------------------------------------- the Registry class


def make_registry() -> Registry:
    reg = Registry("widget")

    @reg.register("alpha", "the first one")
    def alpha():
        return "a"

    @reg.register("beta")
    def beta():
        """Second widget.

        More text that describe() leaves out."""
        return "b"

    return reg


def test_register_get_names_describe():
    reg = make_registry()
    assert reg.names() == ["alpha", "beta"]
    assert reg.get("alpha")() == "a"
    assert "alpha" in reg and "gamma" not in reg
    assert reg.describe("alpha") == "the first one"
    assert reg.describe("beta") == "Second widget."


def test_register_returns_the_builder_unchanged():
    reg = Registry("widget")

    def builder():
        return 1

    assert reg.register("x")(builder) is builder


def test_duplicate_name_raises():
    reg = make_registry()
    with pytest.raises(ValueError, match="widget 'alpha' is registered twice"):
        reg.register("alpha")(lambda: None)
    assert reg.get("alpha")() == "a"  # the first registration is kept


def test_get_unknown_names_choices_and_suggests():
    reg = make_registry()
    with pytest.raises(KeyError) as exc:
        reg.get("alpah")
    message = str(exc.value)
    assert "unknown widget 'alpah'" in message
    assert "did you mean 'alpha'?" in message
    assert "['alpha', 'beta']" in message


def test_get_unknown_without_a_close_match():
    with pytest.raises(KeyError) as exc:
        make_registry().get("zzzzzzzz")
    assert "did you mean" not in str(exc.value)
    assert "choose from ['alpha', 'beta']" in str(exc.value)


def test_closest():
    assert closest("mnsit", ["mnist", "digits"]) == " (did you mean 'mnist'?)"
    assert closest("qqqq", ["mnist", "digits"]) == ""


@pytest.mark.parametrize("registry", [SOURCES, MODELS, LOSSES, OPTIMIZERS, SCHEDULERS],
                         ids=lambda r: r.kind)
def test_registries_are_not_empty_and_described(registry):
    assert registry.names()
    for name in registry.names():
        assert registry.describe(name), f"{registry.kind} {name!r} has no help text"


def test_defaults_are_registered():
    assert "mnist" in SOURCES and "digits" in SOURCES and "synthetic" in SOURCES
    assert "seed-mlp" in MODELS
    assert "cross-entropy" in LOSSES
    assert "adam" in OPTIMIZERS
    assert "none" in SCHEDULERS


# ---------------------------------------------------------------- models


@pytest.mark.parametrize("name", MODELS.names())
def test_model_builds_forwards_and_backwards(name):
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name), 10)
    assert isinstance(model, torch.nn.Module)
    model.train()
    x = torch.randn(4, 1, 28, 28)
    logits = model(x)
    assert logits.shape == (4, 10)
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3]))
    loss.backward()
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert params
    for pname, p in params:
        assert p.grad is not None, f"{pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{pname} has a non-finite gradient"


@pytest.mark.parametrize("name", MODELS.names())
def test_model_num_classes_and_eval_batch(name):
    model = build_model(ModelConfig(name=name), 7).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 1, 28, 28)).shape == (1, 7)
        assert model(torch.zeros(33, 1, 28, 28)).shape == (33, 7)


@pytest.mark.parametrize("name", ACTIVATIONS.names())
def test_activation_trains_in_the_seed_mlp(name):
    torch.manual_seed(0)
    model = build_model(ModelConfig(activation=name), 10).train()
    logits = model(torch.randn(4, 1, 28, 28))
    assert logits.shape == (4, 10) and torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3])).backward()
    for pname, p in model.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), pname


# ---------------------------------------------------------------- losses


@pytest.mark.parametrize("name", LOSSES.names())
def test_loss_gives_a_finite_scalar(name):
    torch.manual_seed(0)
    loss_fn = build_loss(LossConfig(name=name), 10)
    logits = torch.randn(8, 10, requires_grad=True)
    labels = torch.randint(0, 10, (8,))
    loss = loss_fn(logits, labels)
    assert loss.ndim == 0
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("name", LOSSES.names())
def test_loss_with_class_weights_works_or_is_refused_clearly(name):
    try:
        loss_fn = build_loss(LossConfig(name=name), 10, torch.linspace(0.5, 2.0, 10))
    except ConfigError as e:
        assert "weights" in str(e)
        return
    loss = loss_fn(torch.randn(8, 10), torch.arange(8))
    assert loss.ndim == 0 and torch.isfinite(loss)


@pytest.mark.parametrize("name", LOSSES.names())
def test_label_smoothing_works_or_is_refused_clearly(name):
    cfg = LossConfig(name=name, label_smoothing=0.1)
    try:
        loss_fn = build_loss(cfg, 10)
    except ConfigError as e:
        assert "loss.label_smoothing" in str(e)
        return
    loss = loss_fn(torch.randn(8, 10), torch.arange(8))
    assert loss.ndim == 0 and torch.isfinite(loss)


# ---------------------------------------------------------------- optimizers and schedulers


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))


def one_step(model, optimizer) -> None:
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 3])

    def closure():  # every torch optimizer accepts one; L-BFGS needs it
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss

    optimizer.step(closure)


def build_optimizer(name: str, model, **overrides):
    cfg = OptimConfig(name=name, **overrides)
    return OPTIMIZERS.get(name)(param_groups(model, cfg), cfg)


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_optimizer_builds_and_steps(name):
    model = tiny_model()
    if "refused" in OPTIMIZERS.describe(name):
        with pytest.raises(ConfigError, match=name):
            build_optimizer(name, model)
        return
    optimizer = build_optimizer(name, model, lr=0.01)
    assert isinstance(optimizer, torch.optim.Optimizer)
    assert current_lr(optimizer) == pytest.approx(0.01)
    before = [p.detach().clone() for p in model.parameters()]
    one_step(model, optimizer)
    after = list(model.parameters())
    changed = [not torch.equal(b, a) for b, a in zip(before, after, strict=True)]
    assert any(changed), "the step changed nothing"
    assert all(torch.isfinite(p).all() for p in after)


def test_weight_decay_can_spare_biases():
    model = tiny_model()
    groups = param_groups(model, OptimConfig(weight_decay=0.1, decay_bias_norm=False))
    assert len(groups) == 2 and groups[1]["weight_decay"] == 0.0
    assert [p.ndim for p in groups[1]["params"]] == [1]
    assert len(param_groups(model, OptimConfig(weight_decay=0.1))) == 1


def sched_config(name: str, **overrides) -> SchedConfig:
    if name == "multistep":
        overrides.setdefault("milestones", (1, 2))
    return SchedConfig(name=name, **overrides)


def run_schedule(name: str, epochs: int = 4, steps: int = 3, lr: float = 0.1,
                 **overrides) -> list[float]:
    """The lr at the start of every epoch, and at the end, through the Schedule wrapper."""
    model = tiny_model()
    optimizer = build_optimizer("sgd", model, lr=lr)
    schedule = Schedule(optimizer, sched_config(name, **overrides), [steps] * epochs)
    lrs = [current_lr(optimizer)]
    for _ in range(epochs):
        for _ in range(steps):
            one_step(model, optimizer)
            schedule.after_batch()
        schedule.after_epoch(1.0)  # a validation loss that never improves
        lrs.append(current_lr(optimizer))
    return lrs


@pytest.mark.parametrize("name", SCHEDULERS.names())
def test_scheduler_builds_and_steps(name):
    model = tiny_model()
    optimizer = build_optimizer("sgd", model, lr=0.1)
    scheduler, unit = SCHEDULERS.get(name)(optimizer, sched_config(name), [3] * 4)
    assert unit in ("epoch", "batch", "metric")
    if scheduler is None:
        assert name == "none", "only the 'none' schedule may build to None"
    lrs = run_schedule(name)
    assert all(math.isfinite(lr) and lr >= 0 for lr in lrs), lrs
    if name == "none":
        assert lrs == [0.1] * 5


def test_multistep_needs_milestones():
    optimizer = build_optimizer("sgd", tiny_model())
    with pytest.raises(ConfigError, match="sched.milestones"):
        SCHEDULERS.get("multistep")(optimizer, SchedConfig(name="multistep"), [3] * 4)


def test_step_schedule_decays_every_step_size_epochs():
    lrs = run_schedule("step", epochs=6, lr=1.0, step_size=2, gamma=0.5)
    assert lrs == pytest.approx([1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.125])


def test_cosine_schedule_reaches_min_lr_at_the_last_epoch():
    lrs = run_schedule("cosine", epochs=5, lr=1.0, min_lr=0.01)
    assert lrs[0] == pytest.approx(1.0)
    assert lrs[-1] == pytest.approx(0.01)
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))


def test_warmup_starts_low_and_reaches_the_lr():
    lrs = run_schedule("none", epochs=3, lr=1.0, warmup_epochs=1, warmup_start_factor=0.1)
    assert lrs[0] == pytest.approx(0.1)
    assert lrs[-1] == pytest.approx(1.0)


# ---------------------------------------------------------------- dataset sources


def check_dataset(ds: Dataset, name: str) -> None:
    assert ds.name == name
    assert ds.title
    assert len(ds.classes) >= 2
    for split in (ds.train, ds.test):
        assert len(split) > 0
        assert split.images.dtype == torch.uint8
        assert split.images.shape == (len(split), 28, 28)
        assert split.labels.dtype == torch.int64
        assert split.labels.shape == (len(split),)
        assert int(split.labels.min()) >= 0
        assert int(split.labels.max()) < len(ds.classes)


@pytest.mark.parametrize("name", SOURCES.names())
def test_source_builds(name, request, offline, fresh_cache):
    """Every source builds offline with an empty cache, except the downloadable MNIST family:
    MNIST and Fashion-MNIST are read from the shared folders (skipped without them), and
    KMNIST, which has no local copy here, must fail with DataNotFound."""
    if name == "kmnist":
        with pytest.raises(DataNotFound) as exc:
            SOURCES.get(name)(DataConfig(name=name))
        assert exc.value.dataset == "kmnist"
        assert "KMNIST was not found" in str(exc.value)
        return
    if name in MNIST_FAMILY:
        folder = request.getfixturevalue("mnist_dir" if name == "mnist" else "fashion_dir")
        ds = SOURCES.get(name)(DataConfig(name=name, dir=str(folder), download=False))
        check_dataset(ds, name)
        assert (len(ds.train), len(ds.test)) == (60000, 10000)
        assert len(ds.classes) == 10
        return
    check_dataset(SOURCES.get(name)(DataConfig(name=name)), name)
