"""Training: the loop, evaluation, losses, optimizers and schedulers, checkpoints.

The registries (losses, optim) are imported here so they are complete whatever is imported
first. The loop is not: importing `digitlab.config` (which validates names against these
registries) must not pull in the whole training loop. `digitlab.training.train` still works.
"""

from digitlab.training import losses, optim

__all__ = ["losses", "optim", "train"]


def __getattr__(name: str):
    if name == "train":  # imported on first use only
        from digitlab.training.loop import train

        return train
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
