"""The models registry: name -> builder(ModelConfig, num_classes) -> nn.Module."""

from digitlab.i18n import N_
from digitlab.registry import Registry

MODELS: Registry = Registry(N_("model"))
