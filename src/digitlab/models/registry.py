"""The models registry: name -> builder(ModelConfig, num_classes) -> nn.Module."""

from digitlab.registry import Registry

MODELS: Registry = Registry("model")
