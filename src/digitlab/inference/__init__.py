"""Inference: a photo to a 28x28 digit (preprocess), one way to load a trained run (run),
the Predictor (predictor) and export to ONNX or TorchScript (export).

The modules are imported explicitly, so nothing depends on import order. `bench` (the
`digitlab bench` command, which pulls in rich and the training benchmarks) is left to the
command that uses it; export imports torch.onnx only when it exports.
"""

from digitlab.inference import export, predictor, preprocess, run

__all__ = ["export", "predictor", "preprocess", "run"]
