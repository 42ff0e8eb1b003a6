"""`digitlab export`: a run's model as ONNX or TorchScript, with normalization inside.

Input: float32 [N, 1, 28, 28], raw intensities in [0, 1], white ink on black as in MNIST.
Output: logits [N, C]. The batch dimension is dynamic. A read run's model (crnn) takes
normalized lines [N, 1, 32, W] (data.lines.normalize) and gives logits [N, T, C + 1], the CTC
blank last, T = ceil(W / columns_per_step); batch and width are dynamic, and the metadata
also holds "digitlab.task" = "read" and "digitlab.columns_per_step". A model trained with
data.deskew deskews its input inside the file, with the same torch code as training. The run's
calibration temperature T (training.calibration; 1 when none was fitted) is stored beside the
graph, not in it, under the key "digitlab.temperature" (ONNX: the model's metadata_props;
TorchScript: an extra file): softmax(logits / T) gives the probabilities `digitlab predict`
reports.

The file is serialized in memory and written with `io.atomic_write_bytes` (a `mkstemp` name in
the target folder, then a rename), so no fixed temporary name exists for anyone to plant a
symlink at, and a reader sees the old file or the new one. An existing file is overwritten only
with `force` (`--force`), as train refuses an existing run folder.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch
from torch import nn

from digitlab.data.deskew import deskew
from digitlab.errors import UsageError
from digitlab.i18n import _
from digitlab.inference.predictor import Predictor
from digitlab.io import atomic_write_bytes, check_destination
from digitlab.models.crnn import HEIGHT as LINE_HEIGHT
from digitlab.models.shifted import with_test_shifts

FORMATS = ("onnx", "torchscript")


class Normalized(nn.Module):
    """The model with the training normalization in front: pixels in [0, 1] -> logits."""

    def __init__(self, model: nn.Module, mean: float, std: float, deskewed: bool = False):
        super().__init__()
        self.model = model
        self.deskewed = deskewed  # data.deskew: the same torch code as training, inside the file
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        # data.loader.normalize's arithmetic after its / 255 (the input is already in [0, 1])
        if self.deskewed:
            pixels = deskew(pixels * 255) / 255  # on whole levels, as the training uint8s
        return self.model((pixels - self.mean) / self.std)


def exportable(source: str | Path) -> tuple[Normalized, Predictor]:
    predictor = Predictor.load(source, device="cpu")
    model = with_test_shifts(predictor.model, predictor.cfg.data.test_shifts)  # as predict reads
    wrapped = Normalized(model, predictor.mean, predictor.std, predictor.cfg.data.deskew).eval()
    return wrapped, predictor


def serialized(wrapped: Normalized, fmt: str, metadata: dict[str, str]) -> bytes:
    """The ONNX or TorchScript file's bytes, made in memory, with `metadata` stored beside."""
    reads = hasattr(wrapped.model, "columns_per_step")  # a line of any width -> logits per step
    example = torch.rand(2, 1, LINE_HEIGHT, 64) if reads else torch.rand(2, 1, 28, 28)
    buffer = io.BytesIO()
    if fmt == "torchscript":
        torch.jit.save(torch.jit.trace(wrapped, example), buffer, _extra_files=metadata)
        return buffer.getvalue()
    import onnx

    axes = ({"pixels": {0: "batch", 3: "width"}, "logits": {0: "batch", 1: "steps"}} if reads
            else {"pixels": {0: "batch"}, "logits": {0: "batch"}})
    torch.onnx.export(wrapped, (example,), buffer, input_names=["pixels"],
                      output_names=["logits"], dynamo=False, dynamic_axes=axes,
                      opset_version=17)
    model = onnx.load_from_string(buffer.getvalue())
    onnx.helper.set_model_props(model, metadata)
    return model.SerializeToString()


def export(source: str | Path, fmt: str, out: str | Path, force: bool = False) -> Path:
    out = Path(out)
    if fmt not in FORMATS:
        raise UsageError(_("unknown export format {export_format!r}; choose onnx or "
                           "torchscript").format(export_format=fmt))
    if fmt == "onnx":
        try:
            import onnx  # noqa: F401
        except ImportError:
            raise UsageError(_("ONNX export needs the export extra: "
                               "pip install 'digitlab[export]'")) from None
    check_destination(out, force, "model.onnx")
    wrapped, predictor = exportable(source)
    metadata = {"digitlab.temperature": repr(predictor.temperature)}
    if hasattr(predictor.model, "columns_per_step"):  # train.task = "read": blank = C, last
        metadata.update({"digitlab.task": "read", "digitlab.columns_per_step":
                         str(predictor.model.columns_per_step)})
    data = serialized(wrapped, fmt, metadata)
    check_destination(out, force, "model.onnx")  # again: the export took a while
    try:
        atomic_write_bytes(out, data)
    except OSError as e:  # a read-only folder, a file where a folder should be, a full disk
        error = f"{e.strerror}: {e.filename}" if e.strerror and e.filename else str(e)
        raise UsageError(_("cannot write {path} ({error}); choose another --out").format(
            path=out, error=error)) from None
    return out
