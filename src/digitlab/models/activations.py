"""The activations registry: the 22 of the lecture, plus silu, mish and hardswish.

A builder takes the model config (for the activation's parameters) and the width of the layer
it follows (for per-channel PReLU) and returns a fresh module: never share one module between
layers, because PReLU and RReLU carry state.

softmin, softmax and logsoftmax normalize over the feature dimension (dim=1). As hidden
activations they are unusual: they squash a whole layer into one distribution, so each unit's
output depends on all the others and most units end up near zero. They are here so the lecture's
list can be tried, not because they train well.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from digitlab.i18n import N_
from digitlab.registry import Registry

if TYPE_CHECKING:
    from digitlab.config import ModelConfig

ACTIVATIONS: Registry = Registry(N_("activation"))


def build_activation(cfg: ModelConfig, width: int) -> nn.Module:
    return ACTIVATIONS.get(cfg.activation)(cfg, width)


@ACTIVATIONS.register("relu", "max(0, x); the tutorial's choice")
def relu(cfg: ModelConfig, width: int) -> nn.Module:
    return nn.ReLU()


@ACTIVATIONS.register("rrelu", "random negative slope in [rrelu_lower, rrelu_upper] in training")
def rrelu(cfg: ModelConfig, width: int) -> nn.Module:
    return nn.RReLU(lower=cfg.rrelu_lower, upper=cfg.rrelu_upper)


@ACTIVATIONS.register("leakyrelu", "x for x > 0, negative_slope * x otherwise")
def leakyrelu(cfg: ModelConfig, width: int) -> nn.Module:
    return nn.LeakyReLU(negative_slope=cfg.negative_slope)


@ACTIVATIONS.register("prelu", "leaky ReLU whose slope is learned (shared, or per channel)")
def prelu(cfg: ModelConfig, width: int) -> nn.Module:
    return nn.PReLU(num_parameters=width if cfg.prelu_per_channel else 1, init=0.25)


@ACTIVATIONS.register("softplus", "log(1 + exp(beta x)) / beta: a smooth ReLU")
def softplus(cfg: ModelConfig, width: int) -> nn.Module:
    return nn.Softplus(beta=cfg.softplus_beta, threshold=cfg.softplus_threshold)


@ACTIVATIONS.register("elu", "x for x > 0, alpha (exp(x) - 1) otherwise")
def elu(cfg: ModelConfig, width: int) -> nn.Module:
    return nn.ELU(alpha=cfg.alpha)


@ACTIVATIONS.register("celu", "ELU made continuously differentiable for any alpha")
def celu(cfg: ModelConfig, width: int) -> nn.Module:
    return nn.CELU(alpha=cfg.alpha)


@ACTIVATIONS.register("selu", "scaled ELU with fixed constants; self-normalizing")
def selu(cfg: ModelConfig, width: int) -> nn.Module:
    return nn.SELU()


@ACTIVATIONS.register("gelu", "x * Phi(x); gelu_approximate = 'none' (exact) or 'tanh'")
def gelu(cfg: ModelConfig, width: int) -> nn.Module:
    return nn.GELU(approximate=cfg.gelu_approximate)


@ACTIVATIONS.register("relu6", "ReLU clipped at 6")
def relu6(cfg: ModelConfig, width: int) -> nn.Module:
    return nn.ReLU6()


@ACTIVATIONS.register("sigmoid", "1 / (1 + exp(-x)); saturates at both ends")
def sigmoid(cfg: ModelConfig, width: int) -> nn.Module:
    return nn.Sigmoid()


@ACTIVATIONS.register("tanh", "hyperbolic tangent; zero-centred sigmoid")
def tanh(cfg: ModelConfig, width: int) -> nn.Module:
    return nn.Tanh()


@ACTIVATIONS.register("softsign", "x / (1 + |x|); a slower-saturating tanh")
def softsign(cfg: ModelConfig, width: int) -> nn.Module:
    return nn.Softsign()


@ACTIVATIONS.register("hardtanh", "x clipped to [hardtanh_min, hardtanh_max]")
def hardtanh(cfg: ModelConfig, width: int) -> nn.Module:
    return nn.Hardtanh(min_val=cfg.hardtanh_min, max_val=cfg.hardtanh_max)


@ACTIVATIONS.register("threshold", "x if x > threshold, else threshold_value")
def threshold(cfg: ModelConfig, width: int) -> nn.Module:
    return nn.Threshold(threshold=cfg.threshold, value=cfg.threshold_value)


@ACTIVATIONS.register("tanhshrink", "x - tanh(x)")
def tanhshrink(cfg: ModelConfig, width: int) -> nn.Module:
    return nn.Tanhshrink()


@ACTIVATIONS.register("softshrink", "moves x toward 0 by shrink_lambda, zero inside the band")
def softshrink(cfg: ModelConfig, width: int) -> nn.Module:
    return nn.Softshrink(lambd=cfg.shrink_lambda)


@ACTIVATIONS.register("hardshrink", "x outside [-shrink_lambda, shrink_lambda], zero inside")
def hardshrink(cfg: ModelConfig, width: int) -> nn.Module:
    return nn.Hardshrink(lambd=cfg.shrink_lambda)


@ACTIVATIONS.register("logsigmoid", "log(sigmoid(x)); always negative")
def logsigmoid(cfg: ModelConfig, width: int) -> nn.Module:
    return nn.LogSigmoid()


@ACTIVATIONS.register("softmin", "softmax of -x over the features (unusual as a hidden layer)")
def softmin(cfg: ModelConfig, width: int) -> nn.Module:
    return nn.Softmin(dim=1)


@ACTIVATIONS.register("softmax", "softmax over the features (unusual as a hidden layer)")
def softmax(cfg: ModelConfig, width: int) -> nn.Module:
    return nn.Softmax(dim=1)


@ACTIVATIONS.register("logsoftmax", "log-softmax over the features (unusual as a hidden layer)")
def logsoftmax(cfg: ModelConfig, width: int) -> nn.Module:
    return nn.LogSoftmax(dim=1)


@ACTIVATIONS.register("silu", "x * sigmoid(x), also called swish")
def silu(cfg: ModelConfig, width: int) -> nn.Module:
    return nn.SiLU()


@ACTIVATIONS.register("mish", "x * tanh(softplus(x))")
def mish(cfg: ModelConfig, width: int) -> nn.Module:
    return nn.Mish()


@ACTIVATIONS.register("hardswish", "piecewise-linear swish, cheap on mobile CPUs")
def hardswish(cfg: ModelConfig, width: int) -> nn.Module:
    return nn.Hardswish()


LECTURE = ACTIVATIONS.names()[:22]  # the lecture's 22, in its order; the last three are extras
