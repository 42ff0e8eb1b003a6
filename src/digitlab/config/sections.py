"""The config sections: frozen dataclasses whose defaults are the tutorial recipe. Each checks
its own fields in __post_init__; Config checks the rules that span sections. DataConfig lives
in config/data.py."""

from __future__ import annotations

import math
import re
import typing
from dataclasses import dataclass, field

from digitlab.config.checks import (
    ACTIVATION_LIMIT,
    MAX_CHANNELS,
    MAX_HISTORY,
    MAX_KERNEL,
    MAX_WIDTH,
    MIN_SCALE,
    SEED_MAX,
    check,
    check_choice,
    check_name,
    check_values,
    check_weights,
    conv_parameters,
    mlp_parameters,
    settle,
)
from digitlab.config.data import DataConfig
from digitlab.errors import ConfigError
from digitlab.i18n import N_, _
from digitlab.models import ACTIVATIONS, INIT_SCHEMES, MODELS
from digitlab.plugins import check_module_name
from digitlab.training.losses import LOSSES
from digitlab.training.optim import OPTIMIZERS, SCHEDULERS


@dataclass(frozen=True)
class ModelConfig:
    name: str = "seed-mlp"  # architecture; see `digitlab list`
    activation: str = "relu"  # hidden activation of every model; see `digitlab list`
    hidden: tuple[int, ...] = (128, 64)  # "mlp", "smallcnn": hidden widths; "crnn": hidden[0]
    channels: tuple[int, ...] = (32, 64)  # "cnn", "smallcnn", "crnn": conv widths; "resnet": stages
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
        check_values(self, "model", ACTIVATION_LIMIT)
        check_name(self, "model.name", MODELS)
        check_name(self, "model.activation", ACTIVATIONS)
        # Sizes are bounded whether or not model.name uses them; the weight estimate comes
        # first, so that a huge width is refused with what it would cost.
        check_weights("model.hidden", self.hidden, mlp_parameters(self.hidden))
        check(len(self.hidden) >= 1 and all(1 <= h <= MAX_WIDTH for h in self.hidden),
               "model.hidden", N_("a non-empty list of widths from 1 to 65536"), self.hidden)
        check(1 <= self.kernel_size <= MAX_KERNEL and self.kernel_size % 2 == 1,
               "model.kernel_size", N_("an odd integer from 1 to 27 (the images are 28x28)"),
               self.kernel_size)
        check(1 <= len(self.channels) <= 4, "model.channels", N_("1 to 4 widths from 1 to 4096"),
               self.channels)
        check_weights("model.channels", self.channels,
                       conv_parameters(self.name, self.channels, self.kernel_size, self.hidden))
        check(all(1 <= c <= MAX_CHANNELS for c in self.channels), "model.channels",
               N_("1 to 4 widths from 1 to 4096"), self.channels)
        check(self.name != "smallcnn" or len(self.channels) == 2, "model.channels",
               N_("two widths for smallcnn (its 5x5 and 3x3 convolutions)"), self.channels)
        check_choice(self, "model.pool", ("max", "avg"))
        check(0.0 <= self.dropout < 1.0, "model.dropout", N_("in [0, 1)"), self.dropout)
        check_choice(self, "model.init", INIT_SCHEMES)
        check(0.0 <= self.rrelu_lower <= self.rrelu_upper, "model.rrelu_lower",
               N_("<= model.rrelu_upper and >= 0"), self.rrelu_lower)
        check(self.softplus_beta >= MIN_SCALE, "model.softplus_beta", N_(">= 1e-6"),
               self.softplus_beta)
        check(self.alpha >= MIN_SCALE, "model.alpha", N_(">= 1e-6"), self.alpha)
        check_choice(self, "model.gelu_approximate", ("none", "tanh"))
        check(self.hardtanh_min < self.hardtanh_max, "model.hardtanh_min",
               N_("< model.hardtanh_max"), self.hardtanh_min)
        check(self.shrink_lambda >= 0, "model.shrink_lambda", N_(">= 0"), self.shrink_lambda)


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
        check_values(self, "loss", ACTIVATION_LIMIT)
        check_name(self, "loss.name", LOSSES)
        check(0.0 <= self.label_smoothing < 1.0, "loss.label_smoothing", N_("in [0, 1)"),
               self.label_smoothing)
        check(all(w >= 0 for w in self.class_weights), "loss.class_weights",
               N_("non-negative numbers"), self.class_weights)
        check(all(w == 0 or w >= MIN_SCALE for w in self.class_weights) and (
            not self.class_weights or max(self.class_weights) > 0), "loss.class_weights",
            N_("weights that are 0 or >= 1e-6, not all 0 (the weighted mean would be 0 / 0)"),
            self.class_weights)
        check(self.pos_weight >= MIN_SCALE, "loss.pos_weight", N_(">= 1e-6"), self.pos_weight)
        check(self.smooth_l1_beta > 0, "loss.smooth_l1_beta", N_("> 0"), self.smooth_l1_beta)
        check(self.margin_p in (1, 2), "loss.margin_p", N_("1 or 2"), self.margin_p)
        check(self.focal_gamma >= 0, "loss.focal_gamma", N_(">= 0"), self.focal_gamma)
        check(self.focal_alpha >= MIN_SCALE, "loss.focal_alpha", N_(">= 1e-6"), self.focal_alpha)
        check(self.distill_temperature >= MIN_SCALE, "loss.distill_temperature", N_(">= 1e-6"),
               self.distill_temperature)
        check(self.temperature >= MIN_SCALE, "loss.temperature", N_(">= 1e-6"), self.temperature)
        check(self.temperature_final >= MIN_SCALE, "loss.temperature_final", N_(">= 1e-6"),
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
        check_values(self, "optim")
        check_name(self, "optim.name", OPTIMIZERS)
        check(math.isfinite(self.lr) and self.lr > 0, "optim.lr", N_("a number > 0"), self.lr)
        check(all(0.0 <= b < 1.0 for b in self.betas), "optim.betas", N_("two numbers in [0, 1)"),
               self.betas)
        check(self.eps > 0, "optim.eps", N_("> 0"), self.eps)
        check(self.weight_decay >= 0, "optim.weight_decay", N_(">= 0"), self.weight_decay)
        check(0.0 <= self.momentum < 1.0, "optim.momentum", N_("in [0, 1)"), self.momentum)
        check(not self.nesterov or (self.momentum > 0 and self.dampening == 0),
               "optim.nesterov", N_("used with momentum > 0 and dampening = 0"), self.nesterov)
        check(0.0 <= self.alpha <= 1.0, "optim.alpha", N_("in [0, 1]"), self.alpha)
        check(0.0 <= self.rho <= 1.0, "optim.rho", N_("in [0, 1]"), self.rho)
        check(0 < self.etas[0] < 1 < self.etas[1], "optim.etas",
               N_("(0 < decrease < 1 < increase)"), self.etas)
        check(0 < self.step_sizes[0] < self.step_sizes[1], "optim.step_sizes",
               N_("(0 < min < max)"), self.step_sizes)
        # torch refuses these with a ValueError, or ASGD's step size overflows a Python float
        for name in ("lr_decay", "initial_accumulator_value", "momentum_decay", "lambd", "t0"):
            check(getattr(self, name) >= 0, f"optim.{name}", N_(">= 0"), getattr(self, name))
        check(0.0 <= self.asgd_alpha <= 1.0, "optim.asgd_alpha", N_("in [0, 1]"),
               self.asgd_alpha)
        check(self.max_iter >= 1, "optim.max_iter", N_("an integer >= 1"), self.max_iter)
        check(1 <= self.history_size <= MAX_HISTORY, "optim.history_size",
               N_("an integer from 1 to 10000"), self.history_size)
        check_choice(self, "optim.line_search", ("strong_wolfe", "none"))


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
        check_values(self, "sched")
        check_name(self, "sched.name", SCHEDULERS)
        check(self.step_size >= 1, "sched.step_size", N_("an integer >= 1"), self.step_size)
        check(0.0 < self.gamma <= 1.0, "sched.gamma", N_("in (0, 1]"), self.gamma)
        check(list(self.milestones) == sorted(set(self.milestones)) and
               all(m >= 1 for m in self.milestones), "sched.milestones",
               N_("increasing epoch numbers >= 1"), self.milestones)
        check(self.min_lr >= 0, "sched.min_lr", N_(">= 0"), self.min_lr)
        check(self.restart_epochs >= 1, "sched.restart_epochs", N_("an integer >= 1"),
               self.restart_epochs)
        check(self.restart_mult >= 1, "sched.restart_mult", N_("an integer >= 1"),
               self.restart_mult)
        check(0.0 < self.factor < 1.0, "sched.factor", N_("in (0, 1)"), self.factor)
        check(self.patience >= 0, "sched.patience", N_(">= 0"), self.patience)
        check(0.0 < self.pct_start < 1.0, "sched.pct_start", N_("in (0, 1)"), self.pct_start)
        check(self.div_factor >= 1, "sched.div_factor", N_(">= 1"), self.div_factor)
        check(self.final_div_factor >= 1, "sched.final_div_factor", N_(">= 1"),
               self.final_div_factor)
        check(self.warmup_epochs >= 0, "sched.warmup_epochs", N_(">= 0"), self.warmup_epochs)
        check(MIN_SCALE <= self.warmup_start_factor <= 1.0, "sched.warmup_start_factor",
               N_("in [1e-6, 1]"),
               self.warmup_start_factor)
        check(not (self.name == "onecycle" and self.warmup_epochs > 0), "sched.warmup_epochs",
               N_("0 with onecycle (it has its own warmup: sched.pct_start)"), self.warmup_epochs)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 5  # full passes over the training split
    seed: int = 42  # seeds init, shuffling, splits and dropout; same seed, same run (CPU)
    device: str = "auto"  # "auto" = cuda, then mps, then cpu; or e.g. "cpu", "cuda:1"
    log_interval: int = 100  # print the batch loss every N batches (a host sync each time)
    log_every_steps: int = 0  # a row every N optimizer steps in RUN_DIR/steps.jsonl, .csv (0 = off)
    out: str = ""  # run directory; "" = runs/<timestamp>-<dataset>-<model>
    amp: str = "off"  # autocast: "off", "bf16" (CPU and CUDA), "fp16" (CUDA, with GradScaler)
    clip_norm: float = 0.0  # clip the global gradient norm to this (0 = off)
    clip_value: float = 0.0  # clip each gradient element to +-this (0 = off)
    accum_steps: int = 1  # batches whose gradients add up before one optimizer step
    compile: bool = False  # torch.compile the model (pays off on GPUs; measure on CPUs)
    cuda_graphs: str | bool = "auto"  # CUDA: replay each training step as one CUDA graph
    channels_last: bool = False  # convnets: NHWC memory layout, often faster convolutions
    deterministic: bool = False  # torch.use_deterministic_algorithms (slower on CUDA)
    early_stop_patience: int = 0  # stop after N epochs without improvement (0 = off)
    monitor: str = "val_loss"  # early stopping and "best" checkpoint: val_/test_ loss/accuracy
    mode: str = "auto"  # "min", "max", or "auto" (max for accuracy, min for loss)
    min_delta: float = 0.0  # the smallest change that counts as an improvement
    tensorboard: bool = False  # also log epoch scalars to RUN_DIR/tensorboard (pip tensorboard)
    task: str = "classify"  # "classify" (one digit an image) or "read" (whole numbers: crnn, CTC)
    preset: str = ""  # the preset this run started from (configs/NAME.toml sets it); serve shows it
    imports: tuple[str, ...] = ()  # plugin modules (--import) imported again to load the run

    def __post_init__(self):
        check_values(self, "train")
        check(self.epochs >= 1, "train.epochs", N_("an integer >= 1"), self.epochs)
        check(0 <= self.seed <= SEED_MAX, "train.seed",
               N_("an integer from 0 to 4294967295 (numpy's seed range)"), self.seed)
        check(self.log_interval >= 1, "train.log_interval", N_("an integer >= 1"),
               self.log_interval)
        check(self.log_every_steps >= 0, "train.log_every_steps",
              N_("an integer >= 0 (0 = off)"), self.log_every_steps)
        ok = self.device in ("auto", "cpu", "mps", "cuda") or re.fullmatch(r"cuda:\d{1,4}",
                                                                            self.device)
        check(ok, "train.device", N_("'auto', 'cpu', 'mps', 'cuda' or 'cuda:N'"), self.device)
        check_choice(self, "train.amp", ("off", "bf16", "fp16"))
        graphs = self.cuda_graphs
        check(isinstance(graphs, bool) or (isinstance(graphs, str) and graphs.lower() == "auto"),
              "train.cuda_graphs", N_('"auto", true or false'), graphs)
        if isinstance(graphs, str):
            settle(self, "train.cuda_graphs", "auto")
        check(self.clip_norm >= 0, "train.clip_norm", N_(">= 0 (0 = off)"), self.clip_norm)
        check(self.clip_value >= 0, "train.clip_value", N_(">= 0 (0 = off)"), self.clip_value)
        check(self.accum_steps >= 1, "train.accum_steps", N_("an integer >= 1"), self.accum_steps)
        check(self.early_stop_patience >= 0, "train.early_stop_patience", N_(">= 0"),
               self.early_stop_patience)
        check_choice(self, "train.monitor",
                     ("val_loss", "val_accuracy", "test_loss", "test_accuracy"))
        check_choice(self, "train.mode", ("auto", "min", "max"))
        check_choice(self, "train.task", ("classify", "read"))
        check(self.min_delta >= 0, "train.min_delta", N_(">= 0"), self.min_delta)
        check(re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,39}", self.preset) is not None or
              self.preset == "", "train.preset",
              N_("empty or a short name: up to 40 of a-z, 0-9, '.', '_', '-'"), self.preset)
        for i, name in enumerate(self.imports):
            check_module_name(name, f"train.imports[{i}]")


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
        _check_task(self)

    @classmethod
    def from_toml(cls, path) -> Config:
        """The Config a TOML file describes (a preset from configs/, a run's config.toml): the
        defaults, then the file's [section] keys, checked as --config checks them."""
        from digitlab.config.loading import apply_overrides, read_toml

        return apply_overrides(cls(), read_toml(path))


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


def _check_task(cfg: Config) -> None:
    """train.task = "read" trains crnn with the CTC loss on lines composed on the device
    (training/read_loop.py); what it does not use is refused rather than ignored."""
    read = cfg.train.task == "read"
    if read != (cfg.model.name == "crnn"):
        raise ConfigError(_("train.task = 'read' trains model.name = 'crnn', and crnn only "
                            "reads: give --task read, which sets both, or neither"))
    if not read:
        return
    unused = [key for key, off in (
        ("loss.*", cfg.loss == LossConfig()), ("data.balance", cfg.data.balance == "none"),
        ("data.deskew", not cfg.data.deskew), ("data.loader", cfg.data.loader == "device"),
        ("train.accum_steps", cfg.train.accum_steps == 1),
        ("optim.name", cfg.optim.name != "lbfgs")) if not off]
    if unused:
        raise ConfigError(_("train.task = 'read' does not use {key} (the CTC loss, lines "
                            "composed on the device, one step a batch, no L-BFGS); leave it at "
                            "its default").format(key=unused[0]))


SECTIONS: dict[str, type] = typing.get_type_hints(Config)  # "data" -> DataConfig, ...

