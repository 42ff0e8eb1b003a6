"""Training: the loop, evaluation, losses, optimizers and schedulers, checkpoints."""

from digitlab.training import checkpoint, evaluate, loop, losses, optim
from digitlab.training.loop import train

__all__ = ["checkpoint", "evaluate", "losses", "loop", "optim", "train"]
