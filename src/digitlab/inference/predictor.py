"""Load a trained model from a run directory or a checkpoint file, and predict digits.

Everything needed (architecture, normalization, class names) is in the checkpoint's metadata,
so a checkpoint file alone is enough. Nothing is unpickled; `load_run` checks the file first.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from digitlab.data.deskew import deskew
from digitlab.data.folder import IMAGE_SUFFIXES  # the one list: folder datasets too
from digitlab.data.loader import normalize
from digitlab.errors import UsageError
from digitlab.i18n import _
from digitlab.inference.preprocess import ImageError, preprocess
from digitlab.inference.run import Run, load_run
from digitlab.models.shifted import with_test_shifts
from digitlab.scripts import digit_value


@dataclass(frozen=True)
class Predictor(Run):
    """A Run (model, class names, the normalization it was trained with) that reads digits.
    `Predictor.load` reads a run; the constructor takes a model in memory."""

    @classmethod
    def load(cls, source: str | Path, device: str = "auto") -> Predictor:
        """The model a run directory or checkpoint file reports; CheckpointError otherwise."""
        return cls.from_run(load_run(source, device))

    @classmethod
    def from_run(cls, run: Run) -> Predictor:
        return cls(**{f.name: getattr(run, f.name) for f in fields(Run)})

    def probabilities(self, digits: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 [N, 28, 28] (white ink on black) -> probabilities [N, C] on the CPU, with the
        run's temperature applied (calibrated: of the answers given with 80% about 80% are
        right, when a temperature was fitted)."""
        return self.read(digits)[1]

    @torch.no_grad()
    def read(self, digits: np.ndarray | torch.Tensor) -> tuple[np.ndarray, torch.Tensor]:
        """(the uint8 [N, 28, 28] the model saw, its probabilities [N, C]): the digits are
        deskewed first when the model was trained so (data.deskew), exactly as its training
        images were."""
        if isinstance(digits, torch.Tensor):
            images = digits.detach().to("cpu", torch.uint8)
        else:  # a copy: arrays read from files are often read-only, which torch warns about
            images = torch.from_numpy(np.array(digits, dtype=np.uint8))
        if self.cfg.data.deskew:
            images = deskew(images)
        model = with_test_shifts(self.model, self.cfg.data.test_shifts)  # as its test was read
        logits = model(normalize(images.to(self.device), self.mean, self.std)).float()
        return images.numpy(), (logits / self.temperature).softmax(dim=1).cpu()

    def predict_file(self, path: str | Path | bytes) -> tuple[np.ndarray, torch.Tensor]:
        """(the 28x28 the model saw, its probabilities)."""
        seen, probs = self.read(preprocess(path)[None])
        return seen[0], probs[0]

    def describe(self) -> dict:
        """What is loaded, as JSON-ready values: the checkpoint as RUN/checkpoints/FILE (never
        an absolute path, which GET /model would show to any page), and None for a number
        that is missing, not finite, or not a number in crafted metadata."""
        def number(value) -> float | None:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return None
            try:
                value = float(value)
            except OverflowError:
                return None
            return value if np.isfinite(value) else None

        metrics = self.meta.get("metrics")
        metrics = metrics if isinstance(metrics, dict) else {}
        epoch = self.meta.get("epoch")
        checkpoint = None if self.path is None else self.path.name  # None: a model in memory
        run = self.path.parent.parent.name if self.path is not None else ""
        if run and self.path.parent.name == "checkpoints":
            checkpoint = f"{run}/checkpoints/{self.path.name}"
        return {"model": self.cfg.model.name, "preset": self.cfg.train.preset or None,
                "dataset": self.meta.get("dataset"),
                "classes": list(self.classes),
                "epoch": epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None,
                "test_accuracy": number(metrics.get("test_accuracy")),
                "temperature": number(self.temperature),
                "checkpoint": checkpoint,
                "normalization": {"mean": number(self.mean), "std": number(self.std)},
                "config": {"model": self.cfg.model.name, "activation": self.cfg.model.activation,
                           "loss": self.cfg.loss.name, "optimizer": self.cfg.optim.name,
                           "epochs": self.cfg.train.epochs, "deskew": self.cfg.data.deskew,
                           "test_shifts": self.cfg.data.test_shifts}}


def expand_inputs(paths: list[str]) -> list[Path]:
    """Files as given; folders searched recursively for image files, in sorted order. A
    UsageError when that finds none."""
    files: list[Path] = []
    for item in paths:
        p = Path(item)
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file()
                            and f.suffix.lower() in IMAGE_SUFFIXES)
        else:
            files.append(p)
    if not files:
        raise UsageError(_("no image files found in {paths}").format(paths=" ".join(paths)))
    return files


def as_label(name: str) -> int | str:
    """A digit class as its value, an int (7 for "7" and for "৭": the Kaggle submission and
    `label` in predict's JSON), others keep their names ("Sneaker"). The class name itself is
    the `text` people read."""
    value = digit_value(name)
    return name if value is None else value


def check_min_confidence(value: float | None, option: str = "--min-confidence") -> None:
    """A confidence threshold is None (not used) or a probability in (0, 1]; else UsageError."""
    if value is not None and not 0 < value <= 1:  # also refuses NaN
        raise UsageError(_("{option} must be a probability in (0, 1], e.g. 0.6; got {value}")
                         .format(option=option, value=value))


def predicted_class(classes: tuple[str, ...], index: int) -> dict:
    """label (the digit value, see as_label), text (the class name: "৭") and index (the class
    index: 7 for "7", 17 for "৭" in the bilingual model, whose labels are both 7)."""
    return {"label": as_label(classes[index]), "text": classes[index], "index": index}


def prediction(probs: torch.Tensor, classes: tuple[str, ...], top_k: int = 1,
               min_confidence: float | None = None) -> dict:
    """One image's probabilities as JSON-ready values: status "ok", label, text and index (see
    predicted_class), confidence, probabilities, and top_k when top_k > 1; with
    min_confidence, "sure": whether the confidence reaches it. When the model's output is not
    finite (weights that overflow on this input), status "not-finite" and nulls: JSON has no
    NaN."""
    sure = {} if min_confidence is None else {"sure": None}
    if not bool(torch.isfinite(probs).all()):
        nulls = {"label": None, "confidence": None, "probabilities": None, **sure}
        return {"status": "not-finite", **nulls, **({"top_k": None} if top_k > 1 else {})}
    top = probs.topk(min(top_k, len(probs)))
    result = {"status": "ok", **predicted_class(classes, int(top.indices[0])),
              "confidence": float(top.values[0]),
              "probabilities": [round(float(p), 6) for p in probs]}
    if min_confidence is not None:
        result["sure"] = result["confidence"] >= min_confidence
    if top_k > 1:
        result["top_k"] = [{**predicted_class(classes, int(i)), "probability": float(v)}
                           for v, i in zip(top.values, top.indices, strict=True)]
    return result


def show(original: Path, digit: np.ndarray, label: str, confidence: float, path: Path) -> Path:
    """Save the input beside the 28x28 the model saw, titled with the prediction."""
    from PIL import Image

    from digitlab.viz.fonts import tight_layout
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
    tight_layout(fig)  # in a Bengali font when the label is "৭"
    save_figure(fig, path)
    return path


__all__ = ["ImageError", "Predictor", "as_label", "check_min_confidence", "expand_inputs",
           "predicted_class", "prediction", "show"]
