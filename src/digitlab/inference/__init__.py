"""Inference: a photo to a 28x28 digit (preprocess, with strokes and photo), one way to load
a trained run (run), the Predictor (predictor), export to ONNX or TorchScript (export), a
labelled folder of images (labelled), the Kaggle submission (kaggle), and seeded generators of
photo-like test images (render) and of mouse drawings (mousedraw).

The modules are imported explicitly, so nothing depends on import order. `bench` and
`robustness` (the `digitlab bench` command, which pulls in rich and the training benchmarks)
are left to the command that uses them; export imports torch.onnx only when it exports.
"""

from digitlab.inference import (
    export,
    kaggle,
    labelled,
    mousedraw,
    photo,
    predictor,
    preprocess,
    render,
    run,
    strokes,
)

__all__ = ["export", "kaggle", "labelled", "mousedraw", "photo", "predictor", "preprocess",
           "render", "run", "strokes"]
