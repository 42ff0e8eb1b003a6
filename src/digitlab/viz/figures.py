"""The lecture's figures, drawn from digitlab's own registries (`digitlab plot ...`)."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import torch

from digitlab.config import Config, LossConfig, ModelConfig
from digitlab.i18n import _
from digitlab.models.activations import ACTIVATIONS, LECTURE, build_activation
from digitlab.training.losses import LOSSES, build_loss
from digitlab.viz.fonts import tight_layout
from digitlab.viz.plots import new_figure, pyplot, save_figure

# The config fields each activation reads, shown on its figure.
ACTIVATION_PARAMS = {
    "rrelu": ("rrelu_lower", "rrelu_upper"), "leakyrelu": ("negative_slope",),
    "prelu": ("prelu_per_channel",), "softplus": ("softplus_beta", "softplus_threshold"),
    "elu": ("alpha",), "celu": ("alpha",), "gelu": ("gelu_approximate",),
    "hardtanh": ("hardtanh_min", "hardtanh_max"), "threshold": ("threshold", "threshold_value"),
    "softshrink": ("shrink_lambda",), "hardshrink": ("shrink_lambda",),
}
VECTOR_ACTIVATIONS = ("softmin", "softmax", "logsoftmax")  # they act on a whole vector


def _short(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def activation_curve(name: str, cfg: ModelConfig, x: torch.Tensor, train: bool = False):
    """(f(x), f'(x)) on a 1-D grid. Vector activations see [x, 0, 1]; we follow component 0."""
    module = build_activation(cfg, 1).train(train)
    x = x.clone().requires_grad_(True)
    if name in VECTOR_ACTIVATIONS:
        others = torch.tensor([0.0, 1.0]).expand(len(x), 2)
        y = module(torch.cat([x[:, None], others], dim=1))[:, 0]
    else:
        y = module(x[:, None])[:, 0]
    (grad,) = torch.autograd.grad(y.sum(), x)
    return y.detach(), grad.detach()


def activation_figure(name: str, cfg: ModelConfig, path: Path) -> None:
    plt = pyplot()
    x = torch.linspace(-5, 5, 801)
    y, grad = activation_curve(name, cfg, x)
    module_name = type(build_activation(cfg, 1)).__name__
    params = ", ".join(f"{p}={_short(getattr(cfg, p))}" for p in ACTIVATION_PARAMS.get(name, ()))
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot(x, y, label=f"{module_name}(x)", linewidth=2)
    ax.plot(x, grad, "--", label="derivative", linewidth=1.5)
    if name == "rrelu":  # training mode draws a random slope per element
        y_train, _ = activation_curve(name, cfg, x[::8], train=True)
        ax.scatter(x[::8], y_train, s=6, color="gray", label="training-mode samples")
    ax.axhline(0, color="black", linewidth=0.5)
    ax.axvline(0, color="black", linewidth=0.5)
    note = " (component 0 of the input [x, 0, 1])" if name in VECTOR_ACTIVATIONS else ""
    ax.set_title(f"{module_name}{f' ({params})' if params else ''}{note}", fontsize=9)
    ax.set_xlabel("x")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    tight_layout(fig)
    save_figure(fig, path)


def activations(out_dir: Path, cfg: ModelConfig | None = None) -> list[Path]:
    """One PNG per activation of the lecture (ReLU.png, RReLU.png, ...) plus overview.png."""
    cfg = cfg or ModelConfig()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in ACTIVATIONS.names():
        c = dataclasses.replace(cfg, activation=name)
        path = out_dir / f"{type(build_activation(c, 1)).__name__}.png"
        activation_figure(name, c, path)
        paths.append(path)
    plt = pyplot()
    x = torch.linspace(-5, 5, 401)
    fig, axes = plt.subplots(5, 5, figsize=(16, 15))
    for ax, name in zip(axes.flat, ACTIVATIONS.names(), strict=False):
        y, grad = activation_curve(name, dataclasses.replace(cfg, activation=name), x)
        ax.plot(x, y, linewidth=2)
        ax.plot(x, grad, "--", linewidth=1)
        extra = "" if name in LECTURE else " (extra)"
        ax.set_title(f"{name}{extra}", fontsize=10)
        ax.grid(alpha=0.3)
    fig.suptitle("activations (solid) and their derivatives (dashed)")
    tight_layout(fig)
    overview = out_dir / "overview.png"
    save_figure(fig, overview)
    return [*paths, overview]


def loss_curves(z: torch.Tensor, num_classes: int = 10) -> dict[str, tuple]:
    """Each loss and its gradient as the true-class logit z varies (the other logits are 0)."""
    variants = {name: LossConfig(name=name) for name in LOSSES.names()}
    variants["cross-entropy (smoothing 0.1)"] = LossConfig(label_smoothing=0.1)
    variants["kl-div"] = LossConfig(name="kl-div", label_smoothing=0.1)
    variants["focal (gamma 2)"] = variants.pop("focal")
    curves = {}
    labels = torch.zeros(1, dtype=torch.long)
    for title, cfg in variants.items():
        loss_fn = build_loss(cfg, num_classes)
        values, grads = [], []
        for zi in z:
            logits = torch.zeros(1, num_classes)
            logits[0, 0] = zi
            logits.requires_grad_(True)
            loss = loss_fn(logits, labels)
            (grad,) = torch.autograd.grad(loss, logits)
            values.append(float(loss.detach()))
            grads.append(float(grad[0, 0]))
        curves[title] = (values, grads)
    return curves


def losses(path: Path) -> Path:
    save_figure(loss_figure(), path)
    return path


def loss_figure(z: torch.Tensor | None = None):
    """Each loss and its gradient against the true class's logit z (the other 9 at 0), as a
    Figure outside pyplot: `digitlab plot losses` saves it, a notebook displays it."""
    z = torch.linspace(-6, 8, 141) if z is None else z
    fig = new_figure((13, 5))
    ax_loss, ax_grad = fig.subplots(1, 2)
    for title, (values, grads) in loss_curves(z).items():
        ax_loss.plot(z, values, label=title)
        ax_grad.plot(z, grads, label=title)
    ax_loss.set_title("loss vs the true class's logit (9 other logits at 0)")
    ax_grad.set_title("d loss / d true logit: MSE/L1 on probabilities flatten when wrong")
    for ax in (ax_loss, ax_grad):
        ax.set_xlabel("true-class logit")
        ax.grid(alpha=0.3)
    ax_loss.set_yscale("symlog", linthresh=0.1)
    ax_loss.legend(fontsize=8)
    tight_layout(fig)
    return fig


def epochs(n: int) -> str:
    return "1 epoch" if n == 1 else f"{n} epochs"


def schedule(cfg: Config, steps_per_epoch: int, path: Path) -> Path:
    """The learning rate at every optimizer step of the configured run, before training."""
    from digitlab.training.optim import OPTIMIZERS, Schedule, param_groups

    plt = pyplot()
    model = torch.nn.Linear(2, 2)
    optimizer = OPTIMIZERS.get(cfg.optim.name)(param_groups(model, cfg.optim), cfg.optim)
    per_epoch = -(-steps_per_epoch // cfg.train.accum_steps)
    sched = Schedule(optimizer, cfg.sched, [per_epoch] * cfg.train.epochs)
    lrs = []
    with warnings.catch_warnings():  # stepping a schedule with no optimizer.step() is the point
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(cfg.train.epochs):
            for _ in range(per_epoch):
                lrs.append(optimizer.param_groups[0]["lr"])
                sched.after_batch()
            sched.after_epoch(val_loss=1.0)  # plateau: a flat validation loss, so it decays
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(range(len(lrs)), lrs)
    for epoch in range(1, cfg.train.epochs):
        ax.axvline(epoch * per_epoch, color="gray", linewidth=0.4)
    warm = f", warmup {epochs(cfg.sched.warmup_epochs)}" if cfg.sched.warmup_epochs else ""
    ax.set_title(f"sched.name = {cfg.sched.name}{warm}: {epochs(cfg.train.epochs)} x "
                 f"{per_epoch} steps")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.grid(alpha=0.3)
    tight_layout(fig)
    save_figure(fig, path)
    return path


def temperature(path: Path, betas: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 5.0)) -> Path:
    """softmax(beta * z) for one logit vector: small beta flattens, large beta sharpens."""
    plt = pyplot()
    logits = torch.tensor([2.0, 1.0, 0.5, 0.2, -0.3, -1.0, 0.0, 0.8, -0.5, 1.5])
    fig, axes = plt.subplots(1, len(betas), figsize=(3.2 * len(betas), 3.2), sharey=True)
    for ax, beta in zip(axes, betas, strict=True):
        probs = torch.softmax(beta * logits, dim=0)
        ax.bar(range(len(logits)), probs, color="tab:blue")
        ax.set_title(f"beta = {beta}")
        ax.set_xticks(range(len(logits)))
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("softmax(beta * z)")
    fig.suptitle("softmax temperature: the same logits z at several beta")
    tight_layout(fig)
    save_figure(fig, path)
    return path


def filters(weight: torch.Tensor, path: Path, title: str) -> Path:
    """First-layer weights as images: Linear rows as 28x28, or conv kernels as k x k."""
    plt = pyplot()
    if weight.ndim == 2:
        images = weight.reshape(-1, 28, 28)
    else:
        images = weight[:, 0]
    n = min(len(images), 64)
    cols = 8
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.5 * cols, 1.5 * rows + 0.4), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            w = images[k]
            limit = float(w.abs().max()) or 1.0
            ax.imshow(w.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
    fig.suptitle(title if n == len(images) else f"{title}; the first {n} of {len(images)}")
    tight_layout(fig)
    save_figure(fig, path)
    return path


def run_filters(run_dir: Path, path: Path | None = None) -> Path:
    """filters() for the first layer of the model the run reports (best after early
    stopping, else last), loaded and checked like predict and serve load it."""
    from digitlab.errors import CheckpointError
    from digitlab.training.checkpoint import load_model

    model, cfg, _meta, _checkpoint = load_model(run_dir)
    weights = model.state_dict()  # in module order: the first match is the first layer
    first = next((k for k, v in weights.items() if k.endswith("weight") and v.ndim in (2, 4)),
                 None)
    if first is None:
        raise CheckpointError(_("{run_dir}: the model has no linear or conv layer to draw")
                              .format(run_dir=run_dir))
    path = path or run_dir / "plots" / "filters.png"
    return filters(weights[first], path, f"{cfg.model.name}: first layer ({first}, "
                                         f"{tuple(weights[first].shape)}); red > 0 > blue")


def augmentations(cfg: Config, path: Path, draws: int = 7) -> Path:
    """The first training digit of each class as the model gets it: the stored image (deskewed
    with data.deskew) and `draws` draws of the config's data.augment_* knobs beside it."""
    from digitlab.data import load_dataset
    from digitlab.data.augment import Augment
    from digitlab.data.loader import normalize
    from digitlab.errors import UsageError

    augment = Augment.from_config(cfg.data)
    if not augment.active:
        raise UsageError(_("no data.augment_* knob is set, so there is nothing to draw; e.g. "
                           "--config configs/robust.toml or --set data.augment_rotate=10"))
    dataset = load_dataset(cfg.data)
    labels = dataset.train.labels
    first = [int((labels == c).nonzero()[0]) for c in range(len(dataset.classes))
             if (labels == c).any()]
    images = normalize(dataset.train.images[first], cfg.data.mean, cfg.data.std)
    background, ink = -cfg.data.mean / cfg.data.std, (1 - cfg.data.mean) / cfg.data.std
    gen = torch.Generator().manual_seed(cfg.train.seed)
    columns = [images] + [augment(images, gen, background, ink) for _draw in range(draws)]
    plt = pyplot()
    fig, axes = plt.subplots(len(first), draws + 1, figsize=(1.1 * (draws + 1), 1.1 * len(first)),
                             squeeze=False)
    for row in range(len(first)):
        for col, batch in enumerate(columns):
            ax = axes[row][col]
            ax.imshow(batch[row, 0].numpy(), cmap="gray", vmin=background, vmax=ink)
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0][0].set_title("stored", fontsize=8)
    for col in range(1, draws + 1):
        axes[0][col].set_title(f"draw {col}", fontsize=8)
    knobs = ", ".join(f"{name}={_short(getattr(augment, name))}"
                      for name in Augment.__dataclass_fields__ if getattr(augment, name))
    fig.suptitle(f"{dataset.title}: {knobs}" + (", deskew" if cfg.data.deskew else ""),
                 fontsize=9)
    tight_layout(fig)
    save_figure(fig, path)
    return path
