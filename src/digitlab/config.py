"""Frozen dataclass config. Defaults are the tutorial recipe; TOML and --set override them.

Flow: dataclass defaults -> --config FILE.toml -> shortcuts (--epochs ...) -> --set key=value.
Every value is checked in __post_init__ (each section its own fields, Config the rules that
span sections), so a Config that exists is a valid Config. What needs the machine (the device,
the DDP world, an import, the run that loss.teacher names) is checked when training starts, in
training/setup.py check_runtime.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path

from digitlab.data import SOURCES
from digitlab.errors import ConfigError
from digitlab.i18n import N_, _
from digitlab.models import ACTIVATIONS, INIT_SCHEMES, MODELS
from digitlab.registry import closest
from digitlab.training.losses import LOSSES
from digitlab.training.optim import OPTIMIZERS, SCHEDULERS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SEED_MAX = 2**32 - 1  # numpy's np.random.seed takes 0 .. 2**32 - 1
MAX_WIDTH = 65_536  # units of one linear layer
MAX_CHANNELS = 4_096  # of one conv block: each channel holds 28x28 activations per image
MAX_WORKERS = 64  # DataLoader processes; more only adds start-up time and memory
MAX_HISTORY = 10_000  # lbfgs: torch allocates a list of this length on every step
MAX_KERNEL = 27  # the images are 28x28: a wider kernel sees mostly padding
FLOAT32_MAX = 3.4028234663852886e38  # numbers become float32 tensors or arguments
# model.* and loss.* numbers scale activations and logits: beyond these a few layers of
# float32 overflow (or a division underflows) and the first batch is already nan
ACTIVATION_LIMIT = 1e6
MIN_SCALE = 1e-6
MIN_STD = 1e-3  # data.std: pixels are 0..1, so normalized inputs stay within about +-1000
MAX_PARAMETERS = 2**31  # 8 GiB of fp32 weights; digit models need well under 0.1 GiB
ESTIMATE_CLASSES = 10  # the head's size in the estimate; every bundled dataset has 10


def _check(ok: bool, key: str, allowed: str, value: object) -> None:
    if not ok:
        raise ConfigError(_("{key} must be {allowed}, got {value!r}").format(
            key=key, allowed=_(allowed), value=value))


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(_("{key} must be one of {choices}, got {value!r}{hint}").format(
            key=key, choices=list(choices), value=value, hint=closest(value, list(choices))))


def _check_name(registry, key: str, value: str) -> None:
    if value not in registry:
        raise ConfigError(_("{key}: unknown {kind} {value!r}{hint}; choose from {names}").format(
            key=key, kind=_(registry.kind), value=value, hint=closest(value, registry.names()),
            names=registry.names()))


def _plain_text(text: str) -> bool:
    """No NUL (no path can hold one) and no lone surrogate (what Python makes of undecodable
    bytes in argv; UTF-8 cannot write it)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _check_values(section: object, prefix: str, limit: float = FLOAT32_MAX) -> None:
    """Every float, alone or in a tuple, must be finite and within +-limit: nan fails every
    comparison and inf passes most (`inf > 0`), so range checks alone let them through, and
    torch refuses (with a traceback) any number that does not fit the float32 tensors.
    Strings must be plain text."""
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        items = [(f"{prefix}.{f.name}[{i}]", x) for i, x in enumerate(value)] \
            if isinstance(value, tuple) else [(f"{prefix}.{f.name}", value)]
        for key, x in items:
            if isinstance(x, str) and not _plain_text(x):
                raise ConfigError(_("{key} must be text without NUL characters or undecodable "
                                    "bytes (config.toml is UTF-8), got {value!r}").format(
                    key=key, value=x))
            if isinstance(x, float) and not math.isfinite(x):
                raise ConfigError(_("{key} must be a finite number, got {value!r}").format(
                    key=key, value=x))
            if isinstance(x, float) and abs(x) > limit:
                raise ConfigError(_("{key} must be between -{limit:g} and {limit:g}, got "
                                    "{value!r}").format(key=key, limit=limit, value=x))


def mlp_parameters(hidden: tuple[int, ...]) -> int:
    """Weights and biases of the "mlp" model with these hidden widths."""
    widths = (28 * 28, *hidden, ESTIMATE_CLASSES)
    return sum((a + 1) * b for a, b in itertools.pairwise(widths))


def conv_parameters(name: str, channels: tuple[int, ...], kernel_size: int) -> int:
    """About the weights of "resnet" (3x3 convs, two blocks a stage) or else "cnn" (one
    kernel_size conv a block, then a linear head); norm parameters are left out."""
    if name == "resnet":
        total, c_in = 9 * channels[0], channels[0]  # the stem
        for c_out in channels:
            total += 9 * c_in * c_out + 27 * c_out * c_out + c_in * c_out  # + 1x1 shortcut
            c_in = c_out
        return total + (c_in + 1) * ESTIMATE_CLASSES
    total, c_in, size = 0, 1, 28
    for c_out in channels:
        total += (kernel_size * kernel_size * c_in + 1) * c_out
        c_in, size = c_out, size // 2
    return total + (c_in * size * size + 1) * ESTIMATE_CLASSES


def _check_weights(key: str, value: tuple[int, ...], parameters: int) -> None:
    if parameters > MAX_PARAMETERS:
        raise ConfigError(_("{key} = {value} would need about {gib:,.0f} GiB of weights "
                            "({parameters:,} parameters); the limit is {limit:,} parameters "
                            "({limit_gib} GiB): use smaller widths").format(
            key=key, value=list(value), gib=parameters * 4 / 2**30, parameters=parameters,
            limit=MAX_PARAMETERS, limit_gib=MAX_PARAMETERS * 4 // 2**30))


@dataclass(frozen=True)
class DataConfig:
    name: str = "mnist"  # dataset source; see `digitlab list`
    dir: str = ""  # folder with the four IDX files; "" = $DIGITLAB_DATA, then the user cache
    download: bool = True  # fetch from the official mirrors (md5-checked) when nothing is found
    mean: float = 0.1307  # Normalize mean, in pixel units / 255 (MNIST train mean)
    std: float = 0.3081  # Normalize std, in pixel units / 255 (MNIST train std)
    batch_size: int = 64  # training images per step
    test_batch_size: int = 1000  # images per evaluation batch; affects speed only
    loader: str = "device"  # "device": one tensor on the device; "torch": Dataset + DataLoader
    num_workers: int = 0  # DataLoader worker processes (loader = "torch" only)
    val_size: float = 0.0  # held out from train for validation: a fraction (<1) or a count
    imbalance_ratio: float = 1.0  # >1 makes a long-tailed train set: largest/smallest class
    imbalance_profile: str = "exponential"  # class sizes fall "exponential"ly or in a "step"
    balance: str = "none"  # "none", "weights" (in the loss), "sampler", "lecun" (equal batches)
    balance_finetune_epochs: int = 0  # last N epochs at the true class frequencies
    augment_shift: int = 0  # random translation of training images, up to N pixels (device)

    def __post_init__(self):
        _check_values(self, "data")
        _check_name(SOURCES, "data.name", self.name)
        # pixels are scaled to 0..1 first; a mean outside that range or a tiny std sends the
        # inputs towards overflow, and the run would stop on a NaN loss with advice about lr
        _check(0 <= self.mean <= 1, "data.mean", N_("in [0, 1] (pixels are scaled to 0..1)"),
               self.mean)
        _check(self.std > 0, "data.std", N_("> 0"), self.std)
        _check(self.std >= MIN_STD, "data.std",
               N_(">= 0.001 (a smaller std blows 0..1 pixels up beyond 1000)"), self.std)
        _check(self.batch_size >= 1, "data.batch_size", N_("an integer >= 1"), self.batch_size)
        _check(self.test_batch_size >= 1, "data.test_batch_size", N_("an integer >= 1"),
               self.test_batch_size)
        _check_choice("data.loader", self.loader, ("device", "torch"))
        _check(0 <= self.num_workers <= MAX_WORKERS, "data.num_workers",
               N_("an integer from 0 to 64"), self.num_workers)
        _check(self.val_size >= 0 and (self.val_size < 1 or self.val_size == int(self.val_size)),
               "data.val_size", N_("a fraction in [0, 1) or a whole count"), self.val_size)
        _check(self.imbalance_ratio >= 1, "data.imbalance_ratio", N_(">= 1 (1 = balanced)"),
               self.imbalance_ratio)
        _check_choice("data.imbalance_profile", self.imbalance_profile, ("exponential", "step"))
        _check_choice("data.balance", self.balance, ("none", "weights", "sampler", "lecun"))
        _check(0 <= self.augment_shift <= 8, "data.augment_shift", N_("an integer in 0..8"),
               self.augment_shift)
        _check(self.augment_shift == 0 or self.loader == "device", "data.augment_shift",
               N_("used with data.loader = 'device' (it runs on batches on the device)"),
               self.augment_shift)
        _check(self.balance_finetune_epochs >= 0, "data.balance_finetune_epochs", N_(">= 0"),
               self.balance_finetune_epochs)
        _check(self.balance_finetune_epochs == 0 or self.balance != "none",
               "data.balance_finetune_epochs",
               N_("0 when data.balance = 'none' (it fine-tunes after balanced epochs)"),
               self.balance_finetune_epochs)


@dataclass(frozen=True)
class ModelConfig:
    name: str = "seed-mlp"  # architecture; see `digitlab list`
    activation: str = "relu"  # hidden activation of every model; see `digitlab list`
    hidden: tuple[int, ...] = (128, 64)  # "mlp": hidden layer widths
    channels: tuple[int, ...] = (32, 64)  # "cnn": conv block widths; "resnet": stage widths
    kernel_size: int = 3  # "cnn": convolution kernel (odd)
    pool: str = "max"  # "cnn": "max" or "avg" 2x2 pooling
    dropout: float = 0.0  # drop probability before the classifier (and after each mlp layer)
    batchnorm: bool = False  # "mlp", "cnn": batch norm after each linear/conv layer
    init: str = "default"  # "default" (PyTorch's), "kaiming", "xavier", "orthogonal"
    negative_slope: float = 0.01  # leakyrelu
    rrelu_lower: float = 0.125  # rrelu: random slope range in training (lower, upper)
    rrelu_upper: float = 0.3333333333333333  # (lower, upper) = (1/8, 1/3) as in PyTorch
    prelu_per_channel: bool = False  # prelu: one learned slope per channel instead of one
    softplus_beta: float = 1.0  # softplus sharpness
    softplus_threshold: float = 20.0  # softplus: linear above this beta * x
    alpha: float = 1.0  # elu, celu
    gelu_approximate: str = "none"  # gelu: "none" (exact erf) or "tanh"
    hardtanh_min: float = -1.0  # hardtanh clip range
    hardtanh_max: float = 1.0  # hardtanh: upper clip (see hardtanh_min)
    threshold: float = 0.1  # threshold: inputs at or below this ...
    threshold_value: float = 0.0  # ... are replaced by this
    shrink_lambda: float = 0.5  # softshrink, hardshrink band half-width

    def __post_init__(self):
        _check_values(self, "model", ACTIVATION_LIMIT)
        _check_name(MODELS, "model.name", self.name)
        _check_name(ACTIVATIONS, "model.activation", self.activation)
        # Sizes are bounded whether or not model.name uses them; the weight estimate comes
        # first, so that a huge width is refused with what it would cost.
        _check_weights("model.hidden", self.hidden, mlp_parameters(self.hidden))
        _check(len(self.hidden) >= 1 and all(1 <= h <= MAX_WIDTH for h in self.hidden),
               "model.hidden", N_("a non-empty list of widths from 1 to 65536"), self.hidden)
        _check(1 <= self.kernel_size <= MAX_KERNEL and self.kernel_size % 2 == 1,
               "model.kernel_size", N_("an odd integer from 1 to 27 (the images are 28x28)"),
               self.kernel_size)
        _check(1 <= len(self.channels) <= 4, "model.channels", N_("1 to 4 widths from 1 to 4096"),
               self.channels)
        _check_weights("model.channels", self.channels,
                       conv_parameters(self.name, self.channels, self.kernel_size))
        _check(all(1 <= c <= MAX_CHANNELS for c in self.channels), "model.channels",
               N_("1 to 4 widths from 1 to 4096"), self.channels)
        _check_choice("model.pool", self.pool, ("max", "avg"))
        _check(0.0 <= self.dropout < 1.0, "model.dropout", N_("in [0, 1)"), self.dropout)
        _check_choice("model.init", self.init, INIT_SCHEMES)
        _check(0.0 <= self.rrelu_lower <= self.rrelu_upper, "model.rrelu_lower",
               N_("<= model.rrelu_upper and >= 0"), self.rrelu_lower)
        _check(self.softplus_beta >= MIN_SCALE, "model.softplus_beta", N_(">= 1e-6"),
               self.softplus_beta)
        _check(self.alpha >= MIN_SCALE, "model.alpha", N_(">= 1e-6"), self.alpha)
        _check_choice("model.gelu_approximate", self.gelu_approximate, ("none", "tanh"))
        _check(self.hardtanh_min < self.hardtanh_max, "model.hardtanh_min",
               N_("< model.hardtanh_max"), self.hardtanh_min)
        _check(self.shrink_lambda >= 0, "model.shrink_lambda", N_(">= 0"), self.shrink_lambda)


@dataclass(frozen=True)
class LossConfig:
    name: str = "cross-entropy"  # see `digitlab list`
    label_smoothing: float = 0.0  # share of target mass spread over all classes, 0..1
    class_weights: tuple[float, ...] = ()  # one weight per class; () = all equal
    ignore_index: int = -100  # cross-entropy, nll: targets with this label are skipped
    pos_weight: float = 1.0  # bce: weight of the positive (one-hot 1) terms
    smooth_l1_beta: float = 1.0  # smooth-l1: where it switches from quadratic to linear
    margin: float = 1.0  # multi-margin hinge margin
    margin_p: int = 1  # multi-margin: 1 (hinge) or 2 (squared hinge)
    focal_gamma: float = 2.0  # focal: down-weights easy examples by (1 - p)^gamma
    focal_alpha: float = 1.0  # focal: overall weight (per-class weights: class_weights)
    teacher: str = ""  # kl-div: RUN_DIR of a trained teacher; "" = smoothed one-hot targets
    distill_temperature: float = 4.0  # kl-div with a teacher: softens both distributions
    temperature: float = 1.0  # softmax temperature beta: the loss sees beta * logits
    temperature_final: float = 1.0  # beta at the end of training (annealed linearly per step)

    def __post_init__(self):
        _check_values(self, "loss", ACTIVATION_LIMIT)
        _check_name(LOSSES, "loss.name", self.name)
        _check(0.0 <= self.label_smoothing < 1.0, "loss.label_smoothing", N_("in [0, 1)"),
               self.label_smoothing)
        _check(all(w >= 0 for w in self.class_weights), "loss.class_weights",
               N_("non-negative numbers"), self.class_weights)
        _check(all(w == 0 or w >= MIN_SCALE for w in self.class_weights) and (
            not self.class_weights or max(self.class_weights) > 0), "loss.class_weights",
            N_("weights that are 0 or >= 1e-6, not all 0 (the weighted mean would be 0 / 0)"),
            self.class_weights)
        _check(self.pos_weight >= MIN_SCALE, "loss.pos_weight", N_(">= 1e-6"), self.pos_weight)
        _check(self.smooth_l1_beta > 0, "loss.smooth_l1_beta", N_("> 0"), self.smooth_l1_beta)
        _check(self.margin_p in (1, 2), "loss.margin_p", N_("1 or 2"), self.margin_p)
        _check(self.focal_gamma >= 0, "loss.focal_gamma", N_(">= 0"), self.focal_gamma)
        _check(self.focal_alpha >= MIN_SCALE, "loss.focal_alpha", N_(">= 1e-6"), self.focal_alpha)
        _check(self.distill_temperature >= MIN_SCALE, "loss.distill_temperature", N_(">= 1e-6"),
               self.distill_temperature)
        _check(self.temperature >= MIN_SCALE, "loss.temperature", N_(">= 1e-6"), self.temperature)
        _check(self.temperature_final >= MIN_SCALE, "loss.temperature_final", N_(">= 1e-6"),
               self.temperature_final)
        if self.teacher and self.name != "kl-div":
            raise ConfigError(_("loss.teacher is used only by loss.name = 'kl-div' "
                                "(distillation), not {name!r}: add --set loss.name=kl-div, or "
                                "leave loss.teacher empty").format(name=self.name))


@dataclass(frozen=True)
class OptimConfig:
    name: str = "adam"  # see `digitlab list`
    lr: float = 1e-3  # learning rate (the peak for sched.name = "onecycle")
    betas: tuple[float, float] = (0.9, 0.999)  # Adam family: moment decay rates
    eps: float = 1e-8  # Adam family, rmsprop, adagrad, adadelta: denominator guard
    weight_decay: float = 0.0  # L2 penalty (decoupled for adamw)
    decay_bias_norm: bool = True  # false: no weight decay on biases and norm parameters
    momentum: float = 0.0  # sgd, rmsprop
    nesterov: bool = False  # sgd: Nesterov momentum (needs momentum > 0, dampening 0)
    dampening: float = 0.0  # sgd
    amsgrad: bool = False  # adam, adamw: keep the max of past squared gradients
    alpha: float = 0.99  # rmsprop: smoothing constant of the squared-gradient average
    centered: bool = False  # rmsprop: normalize by the gradient's variance estimate
    rho: float = 0.9  # adadelta: decay of the running averages
    lr_decay: float = 0.0  # adagrad
    initial_accumulator_value: float = 0.0  # adagrad
    momentum_decay: float = 0.004  # nadam
    etas: tuple[float, float] = (0.5, 1.2)  # rprop: step-size (decrease, increase) factors
    step_sizes: tuple[float, float] = (1e-6, 50.0)  # rprop: (min, max) step size
    lambd: float = 1e-4  # asgd: decay term
    asgd_alpha: float = 0.75  # asgd: power for eta update
    t0: float = 1e6  # asgd: step at which averaging starts
    max_iter: int = 20  # lbfgs: iterations per optimizer step
    history_size: int = 100  # lbfgs: remembered curvature pairs
    line_search: str = "strong_wolfe"  # lbfgs: "strong_wolfe" or "none"

    def __post_init__(self):
        _check_values(self, "optim")
        _check_name(OPTIMIZERS, "optim.name", self.name)
        _check(math.isfinite(self.lr) and self.lr > 0, "optim.lr", N_("a number > 0"), self.lr)
        _check(all(0.0 <= b < 1.0 for b in self.betas), "optim.betas", N_("two numbers in [0, 1)"),
               self.betas)
        _check(self.eps > 0, "optim.eps", N_("> 0"), self.eps)
        _check(self.weight_decay >= 0, "optim.weight_decay", N_(">= 0"), self.weight_decay)
        _check(0.0 <= self.momentum < 1.0, "optim.momentum", N_("in [0, 1)"), self.momentum)
        _check(not self.nesterov or (self.momentum > 0 and self.dampening == 0),
               "optim.nesterov", N_("used with momentum > 0 and dampening = 0"), self.nesterov)
        _check(0.0 <= self.alpha <= 1.0, "optim.alpha", N_("in [0, 1]"), self.alpha)
        _check(0.0 <= self.rho <= 1.0, "optim.rho", N_("in [0, 1]"), self.rho)
        _check(0 < self.etas[0] < 1 < self.etas[1], "optim.etas",
               N_("(0 < decrease < 1 < increase)"), self.etas)
        _check(0 < self.step_sizes[0] < self.step_sizes[1], "optim.step_sizes",
               N_("(0 < min < max)"), self.step_sizes)
        # torch refuses these with a ValueError, or ASGD's step size overflows a Python float
        for name in ("lr_decay", "initial_accumulator_value", "momentum_decay", "lambd", "t0"):
            _check(getattr(self, name) >= 0, f"optim.{name}", N_(">= 0"), getattr(self, name))
        _check(0.0 <= self.asgd_alpha <= 1.0, "optim.asgd_alpha", N_("in [0, 1]"),
               self.asgd_alpha)
        _check(self.max_iter >= 1, "optim.max_iter", N_("an integer >= 1"), self.max_iter)
        _check(1 <= self.history_size <= MAX_HISTORY, "optim.history_size",
               N_("an integer from 1 to 10000"), self.history_size)
        _check_choice("optim.line_search", self.line_search, ("strong_wolfe", "none"))


@dataclass(frozen=True)
class SchedConfig:
    name: str = "none"  # learning-rate schedule; see `digitlab list`
    step_size: int = 1  # step: epochs between decays
    gamma: float = 0.1  # step, multistep, exponential: lr multiplier per decay / per epoch
    milestones: tuple[int, ...] = ()  # multistep: epochs at which to decay
    min_lr: float = 0.0  # cosine, cosine-warm-restarts, plateau: the floor of the lr
    restart_epochs: int = 1  # cosine-warm-restarts: length of the first cycle, in epochs
    restart_mult: int = 1  # cosine-warm-restarts: each cycle is this many times longer
    factor: float = 0.1  # plateau: lr multiplier when validation loss stalls
    patience: int = 2  # plateau: epochs without improvement before decaying
    pct_start: float = 0.3  # onecycle: share of the steps spent rising to optim.lr
    div_factor: float = 25.0  # onecycle: starting lr = optim.lr / div_factor
    final_div_factor: float = 1e4  # onecycle: final lr = starting lr / final_div_factor
    warmup_epochs: float = 0.0  # linear warmup in front of the schedule, per step (0 = none)
    warmup_start_factor: float = 0.1  # warmup starts at optim.lr * this

    def __post_init__(self):
        _check_values(self, "sched")
        _check_name(SCHEDULERS, "sched.name", self.name)
        _check(self.step_size >= 1, "sched.step_size", N_("an integer >= 1"), self.step_size)
        _check(0.0 < self.gamma <= 1.0, "sched.gamma", N_("in (0, 1]"), self.gamma)
        _check(list(self.milestones) == sorted(set(self.milestones)) and
               all(m >= 1 for m in self.milestones), "sched.milestones",
               N_("increasing epoch numbers >= 1"), self.milestones)
        _check(self.min_lr >= 0, "sched.min_lr", N_(">= 0"), self.min_lr)
        _check(self.restart_epochs >= 1, "sched.restart_epochs", N_("an integer >= 1"),
               self.restart_epochs)
        _check(self.restart_mult >= 1, "sched.restart_mult", N_("an integer >= 1"),
               self.restart_mult)
        _check(0.0 < self.factor < 1.0, "sched.factor", N_("in (0, 1)"), self.factor)
        _check(self.patience >= 0, "sched.patience", N_(">= 0"), self.patience)
        _check(0.0 < self.pct_start < 1.0, "sched.pct_start", N_("in (0, 1)"), self.pct_start)
        _check(self.div_factor >= 1, "sched.div_factor", N_(">= 1"), self.div_factor)
        _check(self.final_div_factor >= 1, "sched.final_div_factor", N_(">= 1"),
               self.final_div_factor)
        _check(self.warmup_epochs >= 0, "sched.warmup_epochs", N_(">= 0"), self.warmup_epochs)
        _check(MIN_SCALE <= self.warmup_start_factor <= 1.0, "sched.warmup_start_factor",
               N_("in [1e-6, 1]"),
               self.warmup_start_factor)
        _check(not (self.name == "onecycle" and self.warmup_epochs > 0), "sched.warmup_epochs",
               N_("0 with onecycle (it has its own warmup: sched.pct_start)"), self.warmup_epochs)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 5  # full passes over the training split
    seed: int = 42  # seeds init, shuffling, splits and dropout; same seed, same run (CPU)
    device: str = "auto"  # "auto" = cuda, then mps, then cpu; or e.g. "cpu", "cuda:1"
    log_interval: int = 100  # print the batch loss every N batches (a host sync each time)
    out: str = ""  # run directory; "" = runs/<timestamp>-<dataset>-<model>
    amp: str = "off"  # autocast: "off", "bf16" (CPU and CUDA), "fp16" (CUDA, with GradScaler)
    clip_norm: float = 0.0  # clip the global gradient norm to this (0 = off)
    clip_value: float = 0.0  # clip each gradient element to +-this (0 = off)
    accum_steps: int = 1  # batches whose gradients add up before one optimizer step
    compile: bool = False  # torch.compile the model (pays off on GPUs; measure on CPUs)
    channels_last: bool = False  # convnets: NHWC memory layout, often faster convolutions
    deterministic: bool = False  # torch.use_deterministic_algorithms (slower on CUDA)
    early_stop_patience: int = 0  # stop after N epochs without improvement (0 = off)
    monitor: str = "val_loss"  # early stopping and "best" checkpoint: val_/test_ loss/accuracy
    mode: str = "auto"  # "min", "max", or "auto" (max for accuracy, min for loss)
    min_delta: float = 0.0  # the smallest change that counts as an improvement
    tensorboard: bool = False  # also log epoch scalars to RUN_DIR/tensorboard (pip tensorboard)

    def __post_init__(self):
        _check_values(self, "train")
        _check(self.epochs >= 1, "train.epochs", N_("an integer >= 1"), self.epochs)
        _check(0 <= self.seed <= SEED_MAX, "train.seed",
               N_("an integer from 0 to 4294967295 (numpy's seed range)"), self.seed)
        _check(self.log_interval >= 1, "train.log_interval", N_("an integer >= 1"),
               self.log_interval)
        ok = self.device in ("auto", "cpu", "mps", "cuda") or re.fullmatch(r"cuda:\d{1,4}",
                                                                            self.device)
        _check(ok, "train.device", N_("'auto', 'cpu', 'mps', 'cuda' or 'cuda:N'"), self.device)
        _check_choice("train.amp", self.amp, ("off", "bf16", "fp16"))
        _check(self.clip_norm >= 0, "train.clip_norm", N_(">= 0 (0 = off)"), self.clip_norm)
        _check(self.clip_value >= 0, "train.clip_value", N_(">= 0 (0 = off)"), self.clip_value)
        _check(self.accum_steps >= 1, "train.accum_steps", N_("an integer >= 1"), self.accum_steps)
        _check(self.early_stop_patience >= 0, "train.early_stop_patience", N_(">= 0"),
               self.early_stop_patience)
        _check_choice("train.monitor", self.monitor,
                      ("val_loss", "val_accuracy", "test_loss", "test_accuracy"))
        _check_choice("train.mode", self.mode, ("auto", "min", "max"))
        _check(self.min_delta >= 0, "train.min_delta", N_(">= 0"), self.min_delta)


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sched: SchedConfig = field(default_factory=SchedConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        """Checks that span sections; each section has checked its own fields."""
        _check_epochs_and_validation(self)
        _check_optimizer_and_loss(self)


def _check_epochs_and_validation(cfg: Config) -> None:
    data, train = cfg.data, cfg.train
    if data.balance != "none" and data.balance_finetune_epochs >= train.epochs:
        raise ConfigError(_("data.balance_finetune_epochs ({finetune}) must be less than "
                            "train.epochs ({epochs}): the balanced epochs come first").format(
            finetune=data.balance_finetune_epochs, epochs=train.epochs))
    if cfg.sched.warmup_epochs > train.epochs:
        raise ConfigError(_("sched.warmup_epochs ({warmup}) must be at most train.epochs "
                            "({epochs}): the learning rate would never reach optim.lr").format(
            warmup=cfg.sched.warmup_epochs, epochs=train.epochs))
    if cfg.sched.name == "plateau" and data.val_size == 0:
        raise ConfigError(_("sched.name = 'plateau' follows the validation loss: set "
                            "data.val_size (e.g. --set data.val_size=0.1)"))
    if train.early_stop_patience and train.monitor.startswith("val_") and data.val_size == 0:
        raise ConfigError(_("early stopping on train.monitor = '{monitor}' needs a validation "
                            "split: set data.val_size (e.g. --set data.val_size=0.1)").format(
            monitor=train.monitor))


def _check_optimizer_and_loss(cfg: Config) -> None:
    train = cfg.train
    if cfg.sched.min_lr > cfg.optim.lr:
        raise ConfigError(_("sched.min_lr ({min_lr}) must be at most optim.lr ({lr}): it is the "
                            "floor the schedule decays to").format(min_lr=cfg.sched.min_lr,
                                                                   lr=cfg.optim.lr))
    if cfg.optim.name == "lbfgs" and (train.accum_steps > 1 or train.amp == "fp16"
                                      or train.clip_norm or train.clip_value):
        raise ConfigError(_("optim.name = 'lbfgs' re-evaluates its closure and cannot be "
                            "combined with train.accum_steps > 1, fp16 or gradient clipping"))
    if cfg.loss.name == "kl-div" and (cfg.loss.class_weights or cfg.data.balance == "weights"):
        raise ConfigError(_("kl-div does not take class weights (loss.class_weights, "
                            "data.balance = 'weights'); use cross-entropy or focal"))


SECTIONS: dict[str, type] = typing.get_type_hints(Config)  # "data" -> DataConfig, ...

# CLI shortcuts and the key each one sets.
SHORTCUTS = {
    "dataset": "data.name",
    "model": "model.name",
    "epochs": "train.epochs",
    "seed": "train.seed",
    "device": "train.device",
    "data_dir": "data.dir",
    "out": "train.out",
}


def _coerce(key: str, value: object, typ: object) -> object:
    """Convert a TOML or --set value to the field's type, or say what was expected."""
    if typ is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(_("{key} must be true or false, got {value!r}").format(key=key,
                                                                                  value=value))
    if typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(_("{key} must be an integer, got {value!r}").format(key=key,
                                                                              value=value))
    if typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(_("{key} must be a number, got {value!r}").format(key=key, value=value))
    if typ is str:
        if isinstance(value, str):
            return value
        raise ConfigError(_("{key} must be a string, got {value!r}").format(key=key, value=value))
    if typing.get_origin(typ) is tuple:
        args = typing.get_args(typ)
        if len(args) == 2 and args[1] is Ellipsis:  # tuple[int, ...]: any length
            if isinstance(value, (list, tuple)):
                return tuple(_coerce(f"{key}[{i}]", v, args[0]) for i, v in enumerate(value))
            raise ConfigError(_("{key} must be a list, got {value!r}").format(key=key,
                                                                              value=value))
        if isinstance(value, (list, tuple)) and len(value) == len(args):
            pairs = enumerate(zip(value, args, strict=True))
            return tuple(_coerce(f"{key}[{i}]", v, t) for i, (v, t) in pairs)
        raise ConfigError(_("{key} must be a list of {count} values, got {value!r}").format(
            key=key, count=len(args), value=value))
    raise TypeError(f"no coercion for {typ}")  # a programming error, not a user one


def _split_key(key: str) -> tuple[str, str]:
    section, _sep, name = key.partition(".")
    if section not in SECTIONS:
        raise ConfigError(_("unknown config section {section!r} in {key!r}{hint}; choose from "
                            "{sections}").format(section=section, key=key,
                                                 hint=closest(section, list(SECTIONS)),
                                                 sections=list(SECTIONS)))
    fields = typing.get_type_hints(SECTIONS[section])
    if name not in fields:
        raise ConfigError(_("unknown config key {key!r}{hint}; {section} has {keys}").format(
            key=key, hint=closest(name, list(fields)), section=section, keys=list(fields)))
    return section, name


def parse_set(item: str) -> tuple[str, object]:
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(_("--set expects section.key=value, got {item!r}").format(item=item))
    section, name = _split_key(key)
    typ = typing.get_type_hints(SECTIONS[section])[name]
    if typ is str:
        raw = raw.strip()
        if not (raw[:1] in "'\"" and raw):  # a quoted string may be given TOML-style
            return key, raw  # otherwise the text is taken as it is
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            raise ConfigError(_("--set {key}: {raw!r} is not a valid quoted string; leave the "
                                "quotes out or close them").format(key=key, raw=raw)) from None
    else:
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
    return key, value


def load_toml(path: str | Path) -> dict[str, object]:
    """A TOML file as a table, or a ConfigError naming the file and what is wrong with it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(_("config file {path!r} does not exist").format(path=str(path))) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(_("cannot read config file {path!r}: {error}").format(
            path=str(path), error=e)) from None
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(_("config file {path!r} is not valid TOML: {error}").format(
            path=str(path), error=e)) from None
    return table


def read_toml(path: str | Path) -> dict[str, object]:
    """A config TOML as {"section.key": value}; every top-level key must be a [section]."""
    flat: dict[str, object] = {}
    for section, values in load_toml(path).items():
        if not isinstance(values, dict):
            raise ConfigError(_("{path}: top-level key {key!r} must be a [section]; choose from "
                                "{sections}").format(path=path, key=section,
                                                     sections=list(SECTIONS)))
        for name, value in values.items():
            flat[f"{section}.{name}"] = value
    return flat


def collect_overrides(file_values: dict[str, object], sets: list[str] = (),
                      shortcuts: dict[str, object] | None = None) -> dict[str, object]:
    """{key: value} in precedence order: the file, then shortcuts, then each --set."""
    overrides = dict(file_values)
    for name, value in (shortcuts or {}).items():
        if value is not None:
            overrides[SHORTCUTS[name]] = value
    for item in sets:
        key, value = parse_set(item)
        overrides[key] = value
    return overrides


def build_config(
    config_file: str | Path | None = None,
    sets: list[str] = (),
    shortcuts: dict[str, object] | None = None,
) -> tuple[Config, set[str]]:
    """The resolved config, and the keys the user set explicitly (file, shortcut or --set)."""
    overrides = collect_overrides(read_toml(config_file) if config_file else {}, sets, shortcuts)
    return apply_overrides(Config(), overrides), set(overrides)


def apply_overrides(cfg: Config, overrides: dict[str, object]) -> Config:
    per_section: dict[str, dict[str, object]] = {}
    for key, value in overrides.items():
        section, name = _split_key(key)
        typ = typing.get_type_hints(SECTIONS[section])[name]
        per_section.setdefault(section, {})[name] = _coerce(key, value, typ)
    changes = {
        section: dataclasses.replace(getattr(cfg, section), **values)
        for section, values in per_section.items()
    }
    return dataclasses.replace(cfg, **changes)


def to_dict(cfg: Config) -> dict[str, dict[str, object]]:
    return {
        section: {f.name: getattr(getattr(cfg, section), f.name)
                  for f in dataclasses.fields(SECTIONS[section])}
        for section in SECTIONS
    }


def from_dict(table: dict[str, dict[str, object]]) -> Config:
    flat = {f"{s}.{k}": v for s, values in table.items() for k, v in values.items()}
    return apply_overrides(Config(), flat)


_TOML_ESCAPES = {"\\": "\\\\", '"': '\\"', "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):  # TOML basic strings take no raw control characters
        return '"' + "".join(_TOML_ESCAPES.get(c, f"\\u{ord(c):04x}" if c < " " or c == "\x7f"
                                                else c) for c in value) + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def to_toml(cfg: Config) -> str:
    lines = []
    for section, values in to_dict(cfg).items():
        lines.append(f"[{section}]")
        lines += [f"{name} = {_toml_value(value)}" for name, value in values.items()]
        lines.append("")
    return "\n".join(lines)


def load_run_config(path: str | Path) -> Config:
    """The config a run directory recorded in its config.toml."""
    return apply_overrides(Config(), read_toml(path))


def check_teacher(run_dir: str) -> Config:
    """The config of the run that loss.teacher names, or one line on why it cannot teach.

    Checked when training starts, not in Config: a distilled run must stay loadable for
    evaluate, predict and serve after its teacher has moved or from another directory."""
    path = Path(run_dir)
    remedy = _("set loss.teacher to the run directory of a trained model (digitlab train --out "
               "DIR), or leave it empty")
    if not path.is_dir():
        raise ConfigError(_("loss.teacher = {path!r}: no such directory; {remedy}").format(
            path=run_dir, remedy=remedy))
    if not (path / "config.toml").is_file():
        raise ConfigError(_("loss.teacher = {path!r}: no config.toml there, so it is not a run "
                            "directory; {remedy}").format(path=run_dir, remedy=remedy))
    if not (path / "checkpoints" / "last.safetensors").is_file():
        raise ConfigError(_("loss.teacher = {path!r}: no checkpoints/last.safetensors there "
                            "(the run has not finished an epoch); {remedy}").format(
            path=run_dir, remedy=remedy))
    try:
        return load_run_config(path / "config.toml")
    except ConfigError as e:
        raise ConfigError(_("loss.teacher = {path!r}: its config.toml is not valid: "
                            "{error}").format(path=run_dir, error=e)) from None
