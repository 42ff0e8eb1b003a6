"""digitlab.registry, and every entry of every registry: one test case per entry.

This is the one place that sweeps the registries (the STYLE.md contract: each entry builds,
runs forward and backward, and gives no NaN). The cases are parametrized over `names()`, so a
new entry is covered as soon as it is registered. What one entry means in detail (a loss's
value, a schedule's shape, a model family's layers) is tested beside its knob:
tests/training/test_knobs.py and tests/models/.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import nn

from digitlab.catalog import REGISTRIES
from digitlab.config import (
    Config,
    DataConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    SchedConfig,
    to_dict,
)
from digitlab.data import SOURCES, Dataset
from digitlab.errors import ConfigError, DataNotFound
from digitlab.models import ACTIVATIONS, MODELS, build_activation, build_model
from digitlab.registry import Registry, closest
from digitlab.training.losses import LOSSES, build_loss
from digitlab.training.optim import OPTIMIZERS, SCHEDULERS, Schedule, current_lr, param_groups
from helpers import run_schedule, sgd_on_one_parameter

MNIST_FAMILY = {"mnist", "fashion-mnist", "kmnist"}
SWEPT = {"activations": ACTIVATIONS, "models": MODELS, "losses": LOSSES,
         "optimizers": OPTIMIZERS, "schedulers": SCHEDULERS, "datasets": SOURCES}


def finite(t: torch.Tensor) -> bool:
    return bool(torch.isfinite(t).all())


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


# ---------------------------------------------------------------- every registry


def test_every_registry_is_swept_here():
    """`digitlab list` shows REGISTRIES; each of them must have its sweep below."""
    assert {kind: registry for kind, (registry, _key) in REGISTRIES.items()} == SWEPT


@pytest.mark.parametrize("kind", list(SWEPT))
def test_registry_is_not_empty_and_described(kind):
    registry = SWEPT[kind]
    assert registry.names()
    assert len(set(registry.names())) == len(registry.names())
    for name in registry.names():
        assert registry.describe(name), f"{registry.kind} {name!r} has no help text"


@pytest.mark.parametrize("kind", list(SWEPT))
def test_default_choice_is_registered(kind):
    registry, key = REGISTRIES[kind]
    section, field = key.split(".")
    default = to_dict(Config())[section][field]
    assert default in registry, f"{key} defaults to {default!r}, which is not registered"


# ---------------------------------------------------------------- models

# The model sweep crosses every model with activations that change its structure: a learned
# per-channel slope (prelu), a smooth one (gelu), a feature-wise normalization (softmax).
MODEL_ACTIVATIONS = {"relu": {}, "prelu": {"prelu_per_channel": True}, "gelu": {},
                     "softmax": {}}
# the models that classify 28x28 digits; crnn reads lines of them (tests/read/test_crnn.py)
CLASSIFIERS = [name for name in MODELS.names() if name != "crnn"]


@pytest.mark.parametrize("activation", list(MODEL_ACTIVATIONS))
@pytest.mark.parametrize("name", CLASSIFIERS)
def test_model_builds_forwards_and_backwards(name, activation):
    torch.manual_seed(0)
    cfg = ModelConfig(name=name, activation=activation, **MODEL_ACTIVATIONS[activation])
    model = build_model(cfg, 10).train()
    assert isinstance(model, nn.Module)
    logits = model(torch.randn(4, 1, 28, 28))
    assert logits.shape == (4, 10) and logits.dtype == torch.float32
    assert finite(logits)
    F.cross_entropy(logits, torch.tensor([0, 3, 7, 9])).backward()
    params = [(pname, p) for pname, p in model.named_parameters() if p.requires_grad]
    assert params
    for pname, p in params:
        assert p.grad is not None, f"{pname} got no gradient"
        assert finite(p.grad), f"{pname} has a non-finite gradient"
    assert any(p.grad.abs().sum() > 0 for _, p in params)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_model_num_classes_and_eval_batches(name):
    model = build_model(ModelConfig(name=name), 7).eval()
    images = torch.randn(33, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        batch = model(images)
        single = model(images[:1])
    assert batch.shape == (33, 7) and single.shape == (1, 7)
    # in eval mode an image's logits do not depend on the rest of the batch
    assert torch.allclose(single, batch[:1], atol=1e-5)


# ---------------------------------------------------------------- activations


@pytest.mark.parametrize("name", ACTIVATIONS.names())
def test_activation_forward_backward(name):
    """As a module on dense [N, C] and conv [N, C, H, W] inputs, and wired into a model."""
    torch.manual_seed(0)
    cfg = ModelConfig(activation=name, prelu_per_channel=True)
    for shape in ((8, 16), (8, 4, 5, 5)):
        act = build_activation(cfg, shape[1])
        assert isinstance(act, nn.Module)
        x = torch.randn(*shape, requires_grad=True)
        out = act(x)
        assert out.shape == x.shape and finite(out), shape
        (out * torch.randn_like(out)).sum().backward()
        assert x.grad is not None and finite(x.grad), shape
        for p in act.parameters():
            assert p.grad is not None and finite(p.grad), shape
    assert build_activation(cfg, 8) is not build_activation(cfg, 8)  # never shared: state
    model = build_model(cfg, 10).train()  # the seed MLP, with this activation
    logits = model(torch.randn(4, 1, 28, 28))
    assert logits.shape == (4, 10) and finite(logits)
    F.cross_entropy(logits, torch.tensor([0, 1, 2, 3])).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and finite(p.grad), pname


# ---------------------------------------------------------------- losses


def logits_and_labels() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    logits = (3 * torch.randn(8, 10, generator=gen)).requires_grad_()
    return logits, torch.randint(0, 10, (8,), generator=gen)


@pytest.mark.parametrize("name", LOSSES.names())
def test_loss_gives_a_finite_differentiable_scalar(name):
    logits, labels = logits_and_labels()
    loss = build_loss(LossConfig(name=name), 10)(logits, labels)
    assert loss.ndim == 0 and finite(loss)
    loss.backward()
    assert logits.grad is not None and finite(logits.grad)
    assert logits.grad.abs().sum() > 0


@pytest.mark.parametrize("name", LOSSES.names())
def test_loss_with_class_weights_works_or_is_refused_clearly(name):
    try:
        loss_fn = build_loss(LossConfig(name=name), 10, torch.linspace(0.5, 2.0, 10))
    except ConfigError as e:
        assert "weights" in str(e)
        return
    loss = loss_fn(*logits_and_labels())
    assert loss.ndim == 0 and finite(loss)


@pytest.mark.parametrize("name", LOSSES.names())
def test_label_smoothing_works_or_is_refused_clearly(name):
    try:
        loss_fn = build_loss(LossConfig(name=name, label_smoothing=0.1), 10)
    except ConfigError as e:
        assert "loss.label_smoothing" in str(e)
        return
    loss = loss_fn(*logits_and_labels())
    assert loss.ndim == 0 and finite(loss)


# ---------------------------------------------------------------- optimizers


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_optimizer_builds_and_steps(name):
    """Three steps change the weights and keep them finite, or the entry refuses to build."""
    model = tiny_model()
    cfg = OptimConfig(name=name, lr=1.0 if name in ("lbfgs", "adadelta") else 1e-2, max_iter=5)
    builder = OPTIMIZERS.get(name)
    if "refused" in OPTIMIZERS.describe(name):
        with pytest.raises(ConfigError, match=name):
            builder(param_groups(model, cfg), cfg)
        return
    optimizer = builder(param_groups(model, cfg), cfg)
    assert isinstance(optimizer, torch.optim.Optimizer)
    assert current_lr(optimizer) == pytest.approx(cfg.lr)
    before = [p.detach().clone() for p in model.parameters()]
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(16, 6, generator=gen), torch.randint(0, 3, (16,), generator=gen)

    def closure():  # every torch optimizer accepts one; L-BFGS needs it
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    for _ in range(3):
        optimizer.step(closure)
    after = list(model.parameters())
    assert all(finite(p) for p in after)
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))


# ---------------------------------------------------------------- schedulers


def sched_config(name: str, **overrides) -> SchedConfig:
    if name == "multistep":
        overrides.setdefault("milestones", (1,))
    return SchedConfig(name=name, **overrides)


@pytest.mark.parametrize("name", SCHEDULERS.names())
def test_scheduler_builds_and_steps(name):
    optimizer = sgd_on_one_parameter()
    scheduler, unit = SCHEDULERS.get(name)(optimizer, sched_config(name), [5, 5, 5])
    assert unit in ("epoch", "batch", "metric")
    if scheduler is None:
        assert name == "none", "only the 'none' schedule may build to None"
    optimizer = sgd_on_one_parameter()
    schedule = Schedule(optimizer, sched_config(name), [5, 5, 5])
    used, after_epoch = run_schedule(schedule, optimizer)
    assert len(used) == 15
    assert all(math.isfinite(lr) and lr > 0 for lr in used)  # every batch trains
    assert all(math.isfinite(lr) and lr >= 0 for lr in after_epoch)  # cosine may end at min_lr
    if name == "none":
        assert used == [0.1] * 15
    json.loads(json.dumps(schedule.state_dict()))  # checkpoints keep it in their JSON header


@pytest.mark.parametrize("name", SCHEDULERS.names())
def test_scheduler_state_round_trip(name):
    """Resume: a schedule restored from its JSON state continues exactly like the original."""
    cfg = sched_config(name, warmup_epochs=0.0 if name == "onecycle" else 0.4)
    opt_a = sgd_on_one_parameter()
    sched_a = Schedule(opt_a, cfg, [5, 5, 5])
    run_schedule(sched_a, opt_a, epochs=1)
    state = json.loads(json.dumps(sched_a.state_dict()))
    opt_b = sgd_on_one_parameter()
    sched_b = Schedule(opt_b, cfg, [5, 5, 5])
    sched_b.load_state_dict(state)
    opt_b.param_groups[0]["lr"] = opt_a.param_groups[0]["lr"]  # the optimizer's own state
    assert run_schedule(sched_a, opt_a, epochs=2) == run_schedule(sched_b, opt_b, epochs=2)


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
    if name in ("cmaterdb", "mnist+cmaterdb"):  # the shared CMATERdb files (and MNIST's)
        folder = request.getfixturevalue("cmater_dir")
        if name != "cmaterdb":
            request.getfixturevalue("mnist_dir")  # the bilingual set reads MNIST too
        root = folder if name == "cmaterdb" else folder.parent
        ds = SOURCES.get(name)(DataConfig(name=name, dir=str(root), download=False))
        check_dataset(ds, name)
        assert len(ds.classes) == (10 if name == "cmaterdb" else 20)
        assert len(ds.test) == (1000 if name == "cmaterdb" else 11000)
        return
    if name in OWN_FILES:  # the user's own images or CSV: a few made here
        path = OWN_FILES[name](request.getfixturevalue("tmp_path") / "own")
        check_dataset(SOURCES.get(name)(DataConfig(name=name, dir=str(path))), name)
        return
    check_dataset(SOURCES.get(name)(DataConfig(name=name)), name)


def tiny_image_folder(root: Path) -> Path:
    """DIR/<label>/*.png: two dark squares of different sizes per class, three classes."""
    for label, size in (("0", 8), ("1", 14), ("2", 20)):
        for i in range(2):
            image = Image.new("L", (32, 32), 255)
            ImageDraw.Draw(image).rectangle((4 + i, 4, 4 + i + size, 4 + size), fill=0)
            (root / label).mkdir(parents=True, exist_ok=True)
            image.save(root / label / f"{i}.png")
    return root


def tiny_kaggle_csv(root: Path) -> Path:
    """Kaggle's train.csv format: label,pixel0..pixel783, two digits of each class."""
    root.mkdir(parents=True, exist_ok=True)
    rows = [[label] + [label * 25] * 784 for label in range(10) for _ in range(2)]
    lines = ["label," + ",".join(f"pixel{i}" for i in range(784)),
             *(",".join(map(str, row)) for row in rows)]
    (root / "train.csv").write_text("\n".join(lines) + "\n")
    return root / "train.csv"


OWN_FILES = {"folder": tiny_image_folder, "csv": tiny_kaggle_csv}
