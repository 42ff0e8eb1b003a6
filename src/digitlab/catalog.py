"""`digitlab list`: every registry with its one-line descriptions."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from digitlab.data import SOURCES
from digitlab.i18n import N_, _
from digitlab.models import ACTIVATIONS, MODELS
from digitlab.training.losses import LOSSES
from digitlab.training.optim import OPTIMIZERS, SCHEDULERS

KINDS = {"activations": N_("activations"), "models": N_("models"), "losses": N_("losses"),
         "optimizers": N_("optimizers"), "schedulers": N_("schedulers"),
         "datasets": N_("datasets")}
REGISTRIES = {  # kind -> (registry, the config key that picks from it)
    "activations": (ACTIVATIONS, "model.activation"),
    "models": (MODELS, "model.name"),
    "losses": (LOSSES, "loss.name"),
    "optimizers": (OPTIMIZERS, "optim.name"),
    "schedulers": (SCHEDULERS, "sched.name"),
    "datasets": (SOURCES, "data.name"),
}


def catalog() -> dict[str, dict[str, str]]:
    """{kind: {name: description}} for every registry."""
    return {kind: {name: registry.describe(name) for name in registry.names()}
            for kind, (registry, _) in REGISTRIES.items()}


def print_catalog(console: Console | None = None) -> None:
    console = console or Console(highlight=False, soft_wrap=True)
    for kind, entries in catalog().items():
        table = Table(title=f"{_(KINDS[kind])} ({REGISTRIES[kind][1]})", title_justify="left",
                      show_header=False, box=None, padding=(0, 2))
        for name, description in entries.items():
            table.add_row(f"[bold]{name}[/bold]", escape(_(description)))
        console.print(table)
        console.print()
