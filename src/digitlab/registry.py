"""The one small registry: a name -> builder table that fails loudly. Names are looked up in
any letter case ("ReLU" finds "relu") and always answered in the registered spelling."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Generic, TypeVar

from digitlab.i18n import _

T = TypeVar("T", bound=Callable)


def closest(name: str, choices: list[str]) -> str:
    """' (did you mean X?)' for the nearest valid choice, in any letter case, or '' when
    nothing is close."""
    folded = {choice.casefold(): choice for choice in choices}
    match = difflib.get_close_matches(name.casefold(), list(folded), n=1, cutoff=0.5)
    return _(" (did you mean {name!r}?)").format(name=folded[match[0]]) if match else ""


def canonical(name: str, choices: list[str]) -> str | None:
    """The choice that is name in any letter case, or None."""
    return next((choice for choice in choices if choice.casefold() == name.casefold()), None)


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind  # "model", "optimizer", ... used in error messages
        self._builders: dict[str, T] = {}
        self._help: dict[str, str] = {}

    def register(self, name: str, help: str = "") -> Callable[[T], T]:
        def decorator(builder: T) -> T:
            if name in self:  # "relu" and "ReLU" are one name
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._builders[name] = builder
            self._help[name] = help or (builder.__doc__ or "").strip().split("\n")[0]
            return builder

        return decorator

    def get(self, name: str) -> T:
        found = self.canonical(name)
        if found is None:
            raise KeyError(_("unknown {kind} {name!r}{hint}; choose from {names}").format(
                kind=_(self.kind), name=name, hint=closest(name, self.names()), names=self.names()))
        return self._builders[found]

    def canonical(self, name: str) -> str | None:
        """The registered spelling of name, given in any letter case, or None."""
        return canonical(name, self.names())

    def names(self) -> list[str]:
        return list(self._builders)

    def describe(self, name: str) -> str:
        return self._help[self.canonical(name) or name]

    def __contains__(self, name: str) -> bool:
        return self.canonical(name) is not None
