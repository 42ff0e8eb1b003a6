"""Load a trained model from a run directory or a checkpoint file, and predict digits.

Everything needed (architecture, normalization, class names) is in the checkpoint's metadata,
so a checkpoint file alone is enough. Nothing is unpickled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from digitlab.config import Config, from_dict, load_run_config
from digitlab.errors import CheckpointError
from digitlab.i18n import _
from digitlab.inference.preprocess import ImageError, preprocess
from digitlab.models import build_model
from digitlab.training.checkpoint import load_checkpoint, restore_model
from digitlab.training.distributed import resolve_device

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm",
                  ".pgm", ".pbm"}


def checkpoint_path(source: str | Path) -> Path:
    """RUN_DIR -> the checkpoint the run reported (best after early stopping, else last)."""
    source = Path(source)
    if source.is_file():
        return source
    if not source.is_dir():
        raise CheckpointError(_("{source} is neither a run directory nor a checkpoint file")
                              .format(source=source))
    best, last = source / "checkpoints" / "best.safetensors", source / "checkpoints" / \
        "last.safetensors"
    config = source / "config.toml"
    if config.is_file() and load_run_config(config).train.early_stop_patience and best.is_file():
        return best
    return last


@dataclass
class Predictor:
    model: torch.nn.Module
    cfg: Config
    classes: tuple[str, ...]
    mean: float
    std: float
    device: torch.device
    meta: dict
    path: Path

    @classmethod
    def load(cls, source: str | Path, device: str = "auto") -> Predictor:
        path = checkpoint_path(source)
        tensors, meta = load_checkpoint(path)
        try:
            cfg = from_dict(meta["config"])
            classes = tuple(meta["classes"])
        except (KeyError, TypeError, AttributeError) as e:
            raise CheckpointError(
                _("{path}: its metadata lacks the config or classes ({error})").format(
                    path=path, error=e)) from None
        model = build_model(cfg.model, len(classes))
        restore_model(model, tensors, str(path))
        dev = resolve_device(device)
        return cls(model.to(dev).eval(), cfg, classes, float(meta["mean"]), float(meta["std"]),
                   dev, meta, path)

    @torch.no_grad()
    def probabilities(self, digits: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 [N, 28, 28] (white ink on black) -> probabilities [N, C] on the CPU."""
        images = torch.as_tensor(np.asarray(digits), dtype=torch.uint8).to(self.device)
        x = (images.float() / 255.0 - self.mean) / self.std
        return self.model(x.unsqueeze(1)).float().softmax(dim=1).cpu()

    def predict_file(self, path: str | Path | bytes) -> tuple[np.ndarray, torch.Tensor]:
        digit = preprocess(path)
        return digit, self.probabilities(digit[None])[0]

    def describe(self) -> dict:
        metrics = self.meta.get("metrics", {})
        return {"model": self.cfg.model.name, "dataset": self.meta.get("dataset"),
                "classes": list(self.classes), "epoch": self.meta.get("epoch"),
                "test_accuracy": metrics.get("test_accuracy"), "checkpoint": str(self.path),
                "normalization": {"mean": self.mean, "std": self.std},
                "config": {"model": self.cfg.model.name, "activation": self.cfg.model.activation,
                           "loss": self.cfg.loss.name, "optimizer": self.cfg.optim.name,
                           "epochs": self.cfg.train.epochs}}


def expand_inputs(paths: list[str]) -> list[Path]:
    """Files as given; folders searched recursively for image files, in sorted order."""
    files: list[Path] = []
    for item in paths:
        p = Path(item)
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file()
                            and f.suffix.lower() in IMAGE_SUFFIXES)
        else:
            files.append(p)
    return files


def show(original: Path, digit: np.ndarray, label: str, confidence: float, path: Path) -> Path:
    """Save the input beside the 28x28 the model saw, titled with the prediction."""
    from PIL import Image

    from digitlab.viz.plots import pyplot, save_figure

    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(6, 3.2))
    with Image.open(original) as image:
        left.imshow(image.convert("RGB"))
    left.set_title(original.name, fontsize=8)
    right.imshow(digit, cmap="gray", vmin=0, vmax=255)
    right.set_title(f"model input: {label} ({100 * confidence:.1f}%)")
    for ax in (left, right):
        ax.axis("off")
    fig.tight_layout()
    save_figure(fig, path)
    return path


__all__ = ["ImageError", "Predictor", "expand_inputs", "show"]
