"""Plugins: your own models (and anything else a registry holds) in your own modules.

A plugin is a module that registers entries when imported, e.g. `@MODELS.register("my-net")`.
Three ways bring one in, and nothing else is ever imported:

    --import MODULE           any command, before it runs (repeatable)
    train.imports             the modules a run recorded; imported again whenever its config
                              is read, so predict, evaluate, serve and export find its model
    digitlab.plugins          an entry-point group; each entry point is loaded at CLI start

Module names are plain dotted names, imported as `python -m` would: from sys.path, with the
current directory looked at first.
"""

from __future__ import annotations

import importlib
import re
import sys
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

from digitlab.errors import ConfigError, UsageError
from digitlab.i18n import _

GROUP = "digitlab.plugins"
MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


class PluginError(UsageError):
    """A plugin module that cannot be imported: one line naming it, and the remedy."""


def check_module_name(name: object, key: str) -> str:
    """name, if it is a plain dotted module name ("my_models", "lab.nets"); else a ConfigError."""
    if not isinstance(name, str) or MODULE_NAME.fullmatch(name) is None or len(name) > 200:
        raise ConfigError(_("{key}: {name!r} is not a module name; give a dotted name such as "
                           "my_models or lab.nets (a file my_models.py in the current folder "
                           "is my_models)").format(key=key, name=name))
    return name


@contextmanager
def _current_directory_first():
    """The current directory at the front of sys.path while importing, as `python -m` has it."""
    here = str(Path.cwd())
    added = here not in sys.path
    if added:
        sys.path.insert(0, here)
    importlib.invalidate_caches()  # a module written a moment ago must be found
    try:
        yield
    finally:
        if added and here in sys.path:
            sys.path.remove(here)


def import_modules(names, source: str) -> None:
    """Import each module of names, in order; source says where they came from in the error
    ("--import", "train.imports"). A module already imported is not imported again."""
    for name in names:
        check_module_name(name, source)
        if name in sys.modules:
            continue
        try:
            with _current_directory_first():
                importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - any failure of user code is one line
            raise PluginError(_("{source} {name} failed: {error_type}: {error}; {remedy}").format(
                source=source, name=name, error_type=type(e).__name__, error=_first_line(e),
                remedy=_remedy(name, e))) from e


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else ""


def _remedy(name: str, error: Exception) -> str:
    missing = getattr(error, "name", None) if isinstance(error, ModuleNotFoundError) else None
    if missing and (name == missing or name.startswith(missing + ".")):  # itself, not a need
        return _("pip install the package that provides it, or run digitlab from the folder "
                 "that holds {file} (or put that folder on PYTHONPATH)").format(
            file=name.replace(".", "/") + ".py")
    return _("the module itself fails: fix it (--debug shows the traceback)")


def load_entry_points() -> None:
    """Load every entry point of the digitlab.plugins group (installed packages' plugins)."""
    for entry in metadata.entry_points(group=GROUP):
        try:
            entry.load()
        except Exception as e:  # noqa: BLE001
            raise PluginError(_(
                "plugin {name} = {value} (entry point group {group}) failed: {error_type}: "
                "{error}; reinstall or uninstall the package that provides it").format(
                name=entry.name, value=entry.value, group=GROUP, error_type=type(e).__name__,
                error=_first_line(e))) from e
