"""Models. Each file registers its builders; import them all here so the registry is full."""

from digitlab.models import seed_mlp
from digitlab.models.registry import MODELS

__all__ = ["MODELS", "build_model", "seed_mlp"]


def build_model(cfg, num_classes: int):
    return MODELS.get(cfg.name)(cfg, num_classes)
