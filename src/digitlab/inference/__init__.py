"""Inference: a photo to a 28x28 digit (preprocess, with strokes and photo), one way to load
a trained run (run), the Predictor (predictor), export to ONNX or TorchScript (export), a
labelled folder of images (labelled), the Kaggle submission (kaggle), and a seeded generator of
photo-like test images (render).

The modules are imported explicitly, so nothing depends on import order. `bench` (the
`digitlab bench` command, which pulls in rich and the training benchmarks) is left to the
command that uses it; export imports torch.onnx only when it exports.
"""

from digitlab.inference import (
    export,
    kaggle,
    labelled,
    photo,
    predictor,
    preprocess,
    render,
    run,
    strokes,
)

__all__ = ["export", "kaggle", "labelled", "photo", "predictor", "preprocess", "render", "run",
           "strokes"]
