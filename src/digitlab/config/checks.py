"""The checks every config section uses: one-line ConfigErrors, finite numbers, plain text,
names (in any letter case, stored as registered), and bounds on model size (estimated before
anything is allocated)."""

from __future__ import annotations

import dataclasses
import itertools
import math

from digitlab.errors import ConfigError
from digitlab.i18n import _
from digitlab.registry import canonical, closest

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


def check(ok: bool, key: str, allowed: str, value: object) -> None:
    if not ok:
        raise ConfigError(_("{key} must be {allowed}, got {value!r}").format(
            key=key, allowed=_(allowed), value=value))


def check_choice(section: object, key: str, choices: tuple[str, ...]) -> None:
    """The field `key` of section must be one of choices, in any letter case; see settle."""
    value = getattr(section, key.partition(".")[2])
    name = canonical(value, list(choices))
    if name is None:
        raise ConfigError(_("{key} must be one of {choices}, got {value!r}{hint}").format(
            key=key, choices=list(choices), value=value, hint=closest(value, list(choices))))
    settle(section, key, name)


def check_name(section: object, key: str, registry) -> None:
    """The field `key` of section must name an entry of registry, in any letter case; see
    settle."""
    value = getattr(section, key.partition(".")[2])
    name = registry.canonical(value)
    if name is None:
        raise ConfigError(_("{key}: unknown {kind} {value!r}{hint}; choose from {names}").format(
            key=key, kind=_(registry.kind), value=value, hint=closest(value, registry.names()),
            names=registry.names()))
    settle(section, key, name)


def settle(section: object, key: str, name: str) -> None:
    """Store a name given in any letter case ("ReLU") in its registered spelling ("relu"), so
    that the frozen config, config.toml and checkpoints hold one spelling. Sections are frozen;
    their __post_init__ may still set their own fields this way."""
    object.__setattr__(section, key.partition(".")[2], name)


def plain_text(text: str) -> bool:
    """No NUL (no path can hold one) and no lone surrogate (what Python makes of undecodable
    bytes in argv; UTF-8 cannot write it)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def check_values(section: object, prefix: str, limit: float = FLOAT32_MAX) -> None:
    """Every float, alone or in a tuple, must be finite and within +-limit: nan fails every
    comparison and inf passes most (`inf > 0`), so range checks alone let them through, and
    torch refuses (with a traceback) any number that does not fit the float32 tensors.
    Strings must be plain text."""
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        items = [(f"{prefix}.{f.name}[{i}]", x) for i, x in enumerate(value)] \
            if isinstance(value, tuple) else [(f"{prefix}.{f.name}", value)]
        for key, x in items:
            if isinstance(x, str) and not plain_text(x):
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


def conv_parameters(name: str, channels: tuple[int, ...], kernel_size: int,
                    hidden: tuple[int, ...]) -> int:
    """About the weights of "resnet" (3x3 convs, two blocks a stage), "smallcnn" (5x5 and 3x3
    convs to a 5x5 map, then the hidden linear layers) or else "cnn" (one kernel_size conv a
    block, then a linear head); norm parameters are left out."""
    if name == "smallcnn" and len(channels) == 2:
        widths = (channels[1] * 25, *hidden, ESTIMATE_CLASSES)
        return (26 * channels[0] + (9 * channels[0] + 1) * channels[1]
                + sum((a + 1) * b for a, b in itertools.pairwise(widths)))
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


def check_weights(key: str, value: tuple[int, ...], parameters: int) -> None:
    if parameters > MAX_PARAMETERS:
        raise ConfigError(_("{key} = {value} would need about {gib:,.0f} GiB of weights "
                            "({parameters:,} parameters); the limit is {limit:,} parameters "
                            "({limit_gib} GiB): use smaller widths").format(
            key=key, value=list(value), gib=parameters * 4 / 2**30, parameters=parameters,
            limit=MAX_PARAMETERS, limit_gib=MAX_PARAMETERS * 4 // 2**30))


