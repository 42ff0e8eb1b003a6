"""digitlab: train, compare, understand and use handwritten-digit classifiers in PyTorch.

The Python API (see docs/en/python-api.md):

    import digitlab as dl
    run = dl.train(dl.Config(), set={"model.name": "cnn", "train.epochs": 3})
    labels, probabilities = run.predict(images)
    run = dl.load_run("runs/...")

`import digitlab` stays light: torch and the rest load on first use of these names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from digitlab.api import Config, Run, load_config, load_run, train

__all__ = ["Config", "Run", "__version__", "load_config", "load_run", "train"]

_API = {"Config", "Run", "load_config", "load_run", "train"}


def __getattr__(name: str):
    if name in _API:  # digitlab.api imports torch: only when asked for
        from digitlab import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _API)
