"""digitlab: train, compare, understand and use handwritten-digit classifiers in PyTorch."""

__version__ = "0.1.0"
