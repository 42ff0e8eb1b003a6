"""Frozen dataclass config. Defaults are the tutorial recipe; TOML and --set override them.

Flow: dataclass defaults -> --config FILE.toml -> shortcuts (--epochs ...) -> --set key=value.
Every value is checked in __post_init__, so a Config that exists is a valid Config.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path

from digitlab.errors import ConfigError
from digitlab.registry import closest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _check(ok: bool, key: str, allowed: str, value: object) -> None:
    if not ok:
        raise ConfigError(f"{key} must be {allowed}, got {value!r}")


def _check_name(registry, key: str, value: str) -> None:
    if value not in registry:
        raise ConfigError(
            f"{key}: unknown {registry.kind} {value!r}{closest(value, registry.names())}; "
            f"choose from {registry.names()}"
        )


@dataclass(frozen=True)
class DataConfig:
    name: str = "mnist"  # dataset source; see `digitlab.data.SOURCES`
    dir: str = ""  # folder with the four IDX files; "" = $DIGITLAB_DATA, then the user cache
    download: bool = True  # fetch from the official mirrors (md5-checked) when nothing is found
    mean: float = 0.1307  # Normalize mean, in pixel units / 255 (MNIST train mean)
    std: float = 0.3081  # Normalize std, in pixel units / 255 (MNIST train std)
    batch_size: int = 64  # training images per step
    test_batch_size: int = 1000  # images per evaluation batch; affects speed only
    loader: str = "device"  # "device": one tensor on the device; "torch": Dataset + DataLoader
    num_workers: int = 0  # DataLoader worker processes (loader = "torch" only)

    def __post_init__(self):
        from digitlab.data import SOURCES

        _check_name(SOURCES, "data.name", self.name)
        _check(self.std > 0, "data.std", "> 0", self.std)
        _check(self.batch_size >= 1, "data.batch_size", "an integer >= 1", self.batch_size)
        _check(self.test_batch_size >= 1, "data.test_batch_size", "an integer >= 1",
               self.test_batch_size)
        _check(self.loader in ("device", "torch"), "data.loader", "'device' or 'torch'",
               self.loader)
        _check(self.num_workers >= 0, "data.num_workers", "an integer >= 0", self.num_workers)


@dataclass(frozen=True)
class ModelConfig:
    name: str = "seed-mlp"  # architecture; see `digitlab.models.MODELS`

    def __post_init__(self):
        from digitlab.models import MODELS

        _check_name(MODELS, "model.name", self.name)


@dataclass(frozen=True)
class LossConfig:
    name: str = "cross-entropy"  # see `digitlab.training.losses.LOSSES`
    label_smoothing: float = 0.0  # share of target mass spread over all classes, 0..1

    def __post_init__(self):
        from digitlab.training.losses import LOSSES

        _check_name(LOSSES, "loss.name", self.name)
        _check(0.0 <= self.label_smoothing < 1.0, "loss.label_smoothing", "in [0, 1)",
               self.label_smoothing)


@dataclass(frozen=True)
class OptimConfig:
    name: str = "adam"  # see `digitlab.training.optim.OPTIMIZERS`
    lr: float = 1e-3  # learning rate
    betas: tuple[float, float] = (0.9, 0.999)  # Adam-family moment decay rates
    eps: float = 1e-8  # Adam-family denominator guard
    weight_decay: float = 0.0  # L2 penalty (decoupled for adamw)
    momentum: float = 0.0  # SGD momentum

    def __post_init__(self):
        from digitlab.training.optim import OPTIMIZERS

        _check_name(OPTIMIZERS, "optim.name", self.name)
        _check(math.isfinite(self.lr) and self.lr > 0, "optim.lr", "a number > 0", self.lr)
        _check(len(self.betas) == 2 and all(0.0 <= b < 1.0 for b in self.betas),
               "optim.betas", "two numbers in [0, 1)", self.betas)
        _check(self.eps > 0, "optim.eps", "> 0", self.eps)
        _check(self.weight_decay >= 0, "optim.weight_decay", ">= 0", self.weight_decay)
        _check(0.0 <= self.momentum < 1.0, "optim.momentum", "in [0, 1)", self.momentum)


@dataclass(frozen=True)
class SchedConfig:
    name: str = "none"  # learning-rate schedule; see `digitlab.training.optim.SCHEDULERS`
    step_size: int = 1  # "step": epochs between decays
    gamma: float = 0.1  # "step": lr multiplier at each decay
    min_lr: float = 0.0  # "cosine": lr reached at the last epoch

    def __post_init__(self):
        from digitlab.training.optim import SCHEDULERS

        _check_name(SCHEDULERS, "sched.name", self.name)
        _check(self.step_size >= 1, "sched.step_size", "an integer >= 1", self.step_size)
        _check(0.0 < self.gamma <= 1.0, "sched.gamma", "in (0, 1]", self.gamma)
        _check(self.min_lr >= 0, "sched.min_lr", ">= 0", self.min_lr)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 5  # full passes over the training split
    seed: int = 42  # seeds init, shuffling and the fallback split; same seed, same run (CPU)
    device: str = "auto"  # "auto" = cuda, then mps, then cpu; or e.g. "cpu", "cuda:1"
    log_interval: int = 100  # print the batch loss every N batches (a host sync each time)
    out: str = ""  # run directory; "" = runs/<timestamp>-<dataset>-<model>

    def __post_init__(self):
        _check(self.epochs >= 1, "train.epochs", "an integer >= 1", self.epochs)
        _check(self.seed >= 0, "train.seed", "an integer >= 0", self.seed)
        _check(self.log_interval >= 1, "train.log_interval", "an integer >= 1",
               self.log_interval)
        ok = self.device in ("auto", "cpu", "mps", "cuda") or self.device.startswith("cuda:")
        _check(ok, "train.device", "'auto', 'cpu', 'mps', 'cuda' or 'cuda:N'", self.device)


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sched: SchedConfig = field(default_factory=SchedConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


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
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    if typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key} must be a number, got {value!r}")
    if typ is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key} must be a string, got {value!r}")
    if typing.get_origin(typ) is tuple:
        args = typing.get_args(typ)
        if isinstance(value, (list, tuple)) and len(value) == len(args):
            pairs = enumerate(zip(value, args, strict=True))
            return tuple(_coerce(f"{key}[{i}]", v, t) for i, (v, t) in pairs)
        raise ConfigError(f"{key} must be a list of {len(args)} values, got {value!r}")
    raise TypeError(f"no coercion for {typ}")  # a programming error, not a user one


def _split_key(key: str) -> tuple[str, str]:
    section, _, name = key.partition(".")
    if section not in SECTIONS:
        raise ConfigError(
            f"unknown config section {section!r} in {key!r}{closest(section, list(SECTIONS))}; "
            f"choose from {list(SECTIONS)}"
        )
    fields = typing.get_type_hints(SECTIONS[section])
    if name not in fields:
        raise ConfigError(
            f"unknown config key {key!r}{closest(name, list(fields))}; "
            f"{section} has {list(fields)}"
        )
    return section, name


def _parse_set(item: str) -> tuple[str, object]:
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set expects section.key=value, got {item!r}")
    section, name = _split_key(key)
    typ = typing.get_type_hints(SECTIONS[section])[name]
    if typ is str:
        raw = raw.strip()
        # a quoted string may be given TOML-style; otherwise take the text as it is
        value = tomllib.loads(f"v = {raw}")["v"] if raw[:1] in "'\"" and raw else raw
    else:
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
    return key, value


def read_toml(path: str | Path) -> dict[str, dict[str, object]]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config file {str(path)!r}: {e}") from None
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {e}") from None
    flat: dict[str, object] = {}
    for section, values in table.items():
        if not isinstance(values, dict):
            raise ConfigError(
                f"{path}: top-level key {section!r} must be a [section]; "
                f"choose from {list(SECTIONS)}"
            )
        for name, value in values.items():
            flat[f"{section}.{name}"] = value
    return flat


def build_config(
    config_file: str | Path | None = None,
    sets: list[str] = (),
    shortcuts: dict[str, object] | None = None,
) -> tuple[Config, set[str]]:
    """The resolved config, and the keys the user set explicitly (file, shortcut or --set)."""
    overrides: dict[str, object] = dict(read_toml(config_file)) if config_file else {}
    for name, value in (shortcuts or {}).items():
        if value is not None:
            overrides[SHORTCUTS[name]] = value
    for item in sets:
        key, value = _parse_set(item)
        overrides[key] = value
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


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
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
