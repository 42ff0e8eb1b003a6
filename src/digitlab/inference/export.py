"""`digitlab export`: a run's model as ONNX or TorchScript, with normalization inside.

Input: float32 [N, 1, 28, 28], raw intensities in [0, 1], white ink on black as in MNIST.
Output: logits [N, C]. The batch dimension is dynamic.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from digitlab.errors import UsageError
from digitlab.i18n import _
from digitlab.inference.predictor import Predictor
from digitlab.io import atomic_write_bytes


class Normalized(nn.Module):
    """The model with the training normalization in front: pixels in [0, 1] -> logits."""

    def __init__(self, model: nn.Module, mean: float, std: float):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model((pixels - self.mean) / self.std)


def exportable(source: str | Path) -> tuple[Normalized, Predictor]:
    predictor = Predictor.load(source, device="cpu")
    wrapped = Normalized(predictor.model, predictor.mean, predictor.std).eval()
    return wrapped, predictor


def export(source: str | Path, fmt: str, out: str | Path) -> Path:
    out = Path(out)
    wrapped, _predictor = exportable(source)
    example = torch.rand(2, 1, 28, 28)
    tmp = out.with_name(f".{out.name}.tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        if fmt == "torchscript":
            traced = torch.jit.trace(wrapped, example)
            traced.save(str(tmp))
        elif fmt == "onnx":
            try:
                import onnx  # noqa: F401
            except ImportError:
                raise UsageError(_("ONNX export needs the export extra: "
                                   "pip install 'digitlab[export]'")) from None
            torch.onnx.export(wrapped, (example,), str(tmp), input_names=["pixels"],
                              output_names=["logits"], dynamo=False,
                              dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}},
                              opset_version=17)
        else:
            raise UsageError(_("unknown export format {export_format!r}; choose onnx or "
                               "torchscript").format(export_format=fmt))
        atomic_write_bytes(out, tmp.read_bytes())
    finally:
        tmp.unlink(missing_ok=True)
    return out
