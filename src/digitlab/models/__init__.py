"""Models and activations. Each file registers its builders; importing them all here means the
registries are full whatever is imported first."""

# isort: off
from digitlab.models import seed_mlp  # first, so the default model is listed first
from digitlab.models import activations, cnn, crnn, lenet, mlp, resnet, smallcnn
# isort: on
from digitlab.models.activations import ACTIVATIONS, build_activation
from digitlab.models.init import INIT_SCHEMES
from digitlab.models.registry import MODELS

__all__ = ["ACTIVATIONS", "INIT_SCHEMES", "MODELS", "activations", "build_activation",
           "build_model", "cnn", "crnn", "lenet", "mlp", "resnet", "seed_mlp",
           "smallcnn"]


def build_model(cfg, num_classes: int):
    """The model named by cfg.name (a ModelConfig), with num_classes outputs."""
    return MODELS.get(cfg.name)(cfg, num_classes)
