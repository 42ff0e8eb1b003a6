"""Loading a config: TOML files, --set overrides and CLI shortcuts converted to each field's
type, and back to TOML (a run's config.toml) and to plain dicts (checkpoint metadata)."""

from __future__ import annotations

import dataclasses
import difflib
import sys
import typing
from pathlib import Path

from digitlab.config.sections import SECTIONS, Config
from digitlab.errors import ConfigError
from digitlab.i18n import _
from digitlab.plugins import PluginError, import_modules
from digitlab.registry import closest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# CLI shortcuts and the key each one sets.
SHORTCUTS = {
    "dataset": "data.name",
    "model": "model.name",
    "epochs": "train.epochs",
    "lr": "optim.lr",
    "batch_size": "data.batch_size",
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
    if typ == (str | bool):  # "auto" or a switch (train.cuda_graphs)
        if isinstance(value, (str, bool)):
            return value
        raise ConfigError(_("{key} must be \"auto\", true or false, got {value!r}").format(
            key=key, value=value))
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


def _full_keys(name: str) -> list[str]:
    """The section.name keys a bare or misplaced name may mean: those whose field is name, or
    else those whose field is spelled close to it ("epoch" -> train.epochs)."""
    fields = {f"{section}.{f}": f for section, cls in SECTIONS.items()
              for f in typing.get_type_hints(cls)}
    exact = [key for key, f in fields.items() if f == name.lower()]
    close = difflib.get_close_matches(name.lower(), set(fields.values()), n=3, cutoff=0.8)
    return exact or [key for key, f in fields.items() if f in close]


def _did_you_mean(keys: list[str]) -> str:
    if len(keys) == 1:
        return _("did you mean {key}?").format(key=keys[0])
    return _("did you mean one of {keys}?").format(keys=", ".join(keys))


def _split_key(key: str) -> tuple[str, str]:
    section, _sep, name = key.partition(".")
    if not _sep:  # a bare field name: --set lr=0.1
        keys = _full_keys(key)
        hint = _did_you_mean(keys) if keys else _(
            "a key is section.name, e.g. optim.lr, with section one of {sections}").format(
            sections=list(SECTIONS))
        raise ConfigError(_("unknown config key {key!r}; {hint}").format(key=key, hint=hint))
    if section not in SECTIONS:
        raise ConfigError(_("unknown config section {section!r} in {key!r}{hint}; choose from "
                            "{sections}").format(section=section, key=key,
                                                 hint=closest(section, list(SECTIONS)),
                                                 sections=list(SECTIONS)))
    fields = typing.get_type_hints(SECTIONS[section])
    if name not in fields:
        elsewhere = [k for k in _full_keys(name) if k.partition(".")[2] == name]
        hint = f" ({_did_you_mean(elsewhere)})" if elsewhere else closest(name, list(fields))
        raise ConfigError(_("unknown config key {key!r}{hint}; {section} has {keys}").format(
            key=key, hint=hint, section=section, keys=list(fields)))
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
    # before any section is built: model.name may name a model that a plugin registers
    import_modules(per_section.get("train", {}).get("imports", ()), "train.imports")
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


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):  # TOML basic strings take no raw control characters
        return '"' + "".join(_TOML_ESCAPES.get(c, f"\\u{ord(c):04x}" if c < " " or c == "\x7f"
                                                else c) for c in value) + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def to_toml(cfg: Config) -> str:
    lines = []
    for section, values in to_dict(cfg).items():
        lines.append(f"[{section}]")
        lines += [f"{name} = {toml_value(value)}" for name, value in values.items()]
        lines.append("")
    return "\n".join(lines)


def load_run_config(path: str | Path) -> Config:
    """The config a run directory recorded in its config.toml; its train.imports (plugin
    modules) are imported first, and only those."""
    try:
        return apply_overrides(Config(), read_toml(path))
    except PluginError as e:
        raise PluginError(f"{path}: {e}") from e


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
