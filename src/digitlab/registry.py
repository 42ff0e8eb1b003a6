"""The one small registry: a name -> builder table that fails loudly."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Generic, TypeVar

from digitlab.i18n import _

T = TypeVar("T", bound=Callable)


def closest(name: str, choices: list[str]) -> str:
    """' (did you mean X?)' for the nearest valid choice, or '' when nothing is close."""
    match = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    return _(" (did you mean {name!r}?)").format(name=match[0]) if match else ""


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind  # "model", "optimizer", ... used in error messages
        self._builders: dict[str, T] = {}
        self._help: dict[str, str] = {}

    def register(self, name: str, help: str = "") -> Callable[[T], T]:
        def decorator(builder: T) -> T:
            if name in self._builders:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._builders[name] = builder
            self._help[name] = help or (builder.__doc__ or "").strip().split("\n")[0]
            return builder

        return decorator

    def get(self, name: str) -> T:
        if name not in self._builders:
            raise KeyError(_("unknown {kind} {name!r}{hint}; choose from {names}").format(
                kind=_(self.kind), name=name, hint=closest(name, self.names()), names=self.names()))
        return self._builders[name]

    def names(self) -> list[str]:
        return list(self._builders)

    def describe(self, name: str) -> str:
        return self._help[name]

    def __contains__(self, name: str) -> bool:
        return name in self._builders
