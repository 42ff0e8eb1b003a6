"""The Python API: train a model, open a run directory and use it, from a notebook or a script.

    import digitlab as dl
    run = dl.train(dl.Config(), set={"model.name": "cnn", "train.epochs": 3})
    run.summary["test_accuracy"], run.metrics, run.model
    labels, probabilities = run.predict(images)   # uint8 [N, 28, 28], or image files
    run.predictions(images)                       # [{"label": 7, "text": "৭", ...}, ...]
    run.plot("curves")                            # a matplotlib Figure
    read_run.read("number.jpg", digits=run)      # whole numbers: [{"text": "4721", ...}]
    run = dl.load_run("runs/...")                 # the same Run, from disk

A thin layer over what the CLI runs: `train` is digitlab.training.loop.train followed by the
evaluation `digitlab train` writes (viz.analysis.evaluate_run); a Run reads the run directory,
and its model and predictions come from inference.predictor.Predictor, so the Python API, the
CLI, predict and serve always agree.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from digitlab.config import Config, apply_overrides, read_toml
from digitlab.errors import CheckpointError, ConfigError, TrainingError, UsageError
from digitlab.i18n import _
from digitlab.inference.predictor import Predictor, as_label, expand_inputs, prediction
from digitlab.inference.preprocess import preprocess
from digitlab.io import read_jsonl
from digitlab.registry import closest

Images = np.ndarray | torch.Tensor | str | Path | Sequence[str | Path]


def load_config(path: str | Path) -> Config:
    """The Config a TOML file describes (a preset from configs/, or a run's config.toml):
    the defaults, then the file's [section] keys; ConfigError naming the key otherwise."""
    return Config.from_toml(path)


@dataclass(frozen=True)
class Run:
    """A finished run directory: its config, summary and per-epoch metrics as written on disk,
    and, loaded on first use, the model it reports (the best epoch's weights when early stopping
    restored them, else the last ones), in eval mode."""

    run_dir: Path
    config: Config
    summary: dict  # summary.json
    metrics: list[dict]  # metrics.jsonl: one dict per epoch
    device: str = field(default="auto", compare=False)  # where the model is loaded

    @functools.cached_property
    def predictor(self) -> Predictor:
        """The Predictor `digitlab predict` and `serve` use for this run."""
        return Predictor.load(self.run_dir, device=self.device)

    @property
    def model(self) -> torch.nn.Module:
        """The trained nn.Module, in eval mode, on the run's device."""
        return self.predictor.model

    @property
    def classes(self) -> tuple[str, ...]:
        return self.predictor.classes

    def predict(self, images: Images) -> tuple[list[int | str], torch.Tensor]:
        """(labels, probabilities [N, C] on the CPU) for uint8 [N, 28, 28] digits (white ink on
        black, as in MNIST), or for image files and folders, preprocessed as `digitlab predict`
        does. Probabilities carry the run's calibration temperature; labels are digit values
        for digit classes (7 for "7" and for the Bengali "৭"), names otherwise. The class
        names themselves: `predictions` or `run.classes[probabilities.argmax(dim=1)[i]]`."""
        probabilities = self._probabilities(images)
        labels = [as_label(self.classes[i]) for i in probabilities.argmax(dim=1).tolist()]
        return labels, probabilities

    def predictions(self, images: Images, top_k: int = 1) -> list[dict]:
        """One dict per image, as `digitlab predict --json` prints it: label (the digit value),
        text (the class name, "৭"), index (the class index: 7 for "7", 17 for "৭" in a
        bilingual model), confidence, probabilities, and top_k when top_k > 1."""
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise UsageError(_("top_k must be a whole number of at least 1, got {value!r}")
                             .format(value=top_k))
        return [prediction(probs, self.classes, top_k) for probs in self._probabilities(images)]

    def read(self, images, *, digits: Run | None = None, method: str = "auto",
             beam: int = 0) -> list[dict]:
        """Handwritten numbers, read as `digitlab read` reads them: one dict per image, as
        `--json` prints it (text, confidence, method, and each digit's label, probability and
        box; "file" for files). images: image files or folders, or one image (a PIL Image or a
        uint8 array [H, W]). This run is a CTC run (`--task read`) or a single-digit one (the
        line cut into digits); digits: a single-digit Run to read beside a CTC run (combined)."""
        from digitlab.inference.reader import Reader, read_images

        partner = digits.predictor if digits is not None else None
        return read_images(Reader.of(self.predictor, method, beam, partner), images)

    def _probabilities(self, images: Images) -> torch.Tensor:
        """[N, C] on the CPU, with the run's temperature (see predict)."""
        if isinstance(images, (str, Path)):
            images = [images]
        if isinstance(images, (list, tuple)):
            digits = self._read_files(images)
        else:
            digits = _check_digits(images)
        return self.predictor.read(digits)[1]

    def _read_files(self, paths: Sequence[str | Path]) -> np.ndarray:
        if not all(isinstance(p, (str, Path)) for p in paths):
            raise UsageError(_("predict takes an array of digits or a list of image paths, not "
                               "a list of {kind}").format(kind=type(paths[0]).__name__))
        files = expand_inputs([str(p) for p in paths])
        return np.stack([preprocess(f) for f in files])

    def plot(self, name: str):
        """A matplotlib Figure (Jupyter shows it inline): "curves" (loss, accuracy and learning
        rate per epoch) or "confusion" (the test confusion matrix of evaluation.json); the same
        figures as plots/curves.png and plots/confusion.png."""
        if name not in PLOTS:
            raise UsageError(_("unknown plot {name!r}{hint}; choose from {names}").format(
                name=name, hint=closest(name, list(PLOTS)), names=list(PLOTS)))
        fig = PLOTS[name](self)
        fig._repr_png_ = functools.partial(_png, fig)  # shown inline without pyplot's backend
        return fig


def _png(fig) -> bytes:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def _curves(run: Run):
    from digitlab.viz.plots import curves_figure

    if not run.metrics:
        raise UsageError(_("{run_dir}/metrics.jsonl holds no epochs to plot").format(
            run_dir=run.run_dir))
    return curves_figure(run.metrics)


def _confusion(run: Run):
    from digitlab.viz.plots import confusion_figure

    path = run.run_dir / "evaluation.json"
    if not path.is_file():
        raise UsageError(_("{path} does not exist: run `digitlab evaluate {run_dir}` first").format(
            path=path, run_dir=run.run_dir))
    evaluation = json.loads(path.read_text(encoding="utf-8"))
    classes = evaluation.get("classes") or list(evaluation["per_class"])  # older runs: keys
    return confusion_figure(torch.tensor(evaluation["confusion"]), tuple(classes))


PLOTS: dict[str, Callable[[Run], object]] = {"curves": _curves, "confusion": _confusion}


def _check_digits(images: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """uint8 [N, 28, 28], or a UsageError saying what to change."""
    if not isinstance(images, (np.ndarray, torch.Tensor)):
        raise UsageError(_("predict takes a uint8 array or tensor [N, 28, 28], or a list of image "
                           "paths; got {kind}").format(kind=type(images).__name__))
    shape = tuple(images.shape)
    if len(shape) != 3 or shape[1:] != (28, 28):
        raise UsageError(_("predict takes digits of shape [N, 28, 28], got {shape}; one image "
                           "is images[None]").format(shape=list(shape)))
    if images.dtype not in (np.uint8, torch.uint8):
        raise UsageError(_("predict takes uint8 pixels 0..255 (white ink on black), got "
                           "{dtype}; convert with (x * 255).round() and .astype(np.uint8)")
                         .format(dtype=images.dtype))
    return images


def load_run(path: str | Path, *, device: str = "auto") -> Run:
    """The run `digitlab train --out DIR` or `train()` wrote in `path`; CheckpointError when
    the folder is not a finished run. The model is loaded on `device` on first use."""
    run_dir = Path(path)
    if not run_dir.is_dir():
        raise CheckpointError(_("{path}: no such run directory; give a folder that `digitlab "
                                "train --out DIR` or digitlab.train() wrote").format(path=path))
    missing = [name for name in ("config.toml", "summary.json") if not (run_dir / name).is_file()]
    if missing:
        raise CheckpointError(_("{path} is not a finished run directory (no {files} there); give "
                                "a folder that `digitlab train --out DIR` or digitlab.train() "
                                "wrote").format(path=path, files=" or ".join(missing)))
    try:
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(_("cannot read {path}: {error}").format(
            path=run_dir / "summary.json", error=e)) from None
    return Run(run_dir, load_config(run_dir / "config.toml"), summary,
               read_jsonl(run_dir / "metrics.jsonl"), device)


def train(config: Config | str | Path | None = None, *,
          set: Mapping[str, object] | None = None,  # noqa: A002 (the CLI's --set)
          model: torch.nn.Module | None = None, data: tuple | None = None,
          classes: Sequence[str] | None = None) -> Run:
    """Train as `digitlab train` does and return the finished Run (evaluation.json, plots/
    and report.html written too).

    config: a Config, a TOML file (see load_config) or None for the defaults.
    set: {"section.key": value} applied on top, like --set (e.g. {"train.epochs": 3}).
    model: your own nn.Module, trained from its weights; its class must be a registered model
    (@MODELS.register, see "Your own model"), or model.name must name the registered builder
    that makes it, so the run can be loaded again. Its module goes into train.imports.
    data: your own (train_images, train_labels, test_images, test_labels), uint8 [N, 28, 28]
    (white ink on black) and integer class indices [N], arrays or tensors; or a pair of
    torch Datasets (train, test) yielding (image, label). The run records the dataset "user":
    `digitlab evaluate` and --resume cannot read these tensors again.
    classes: the names of data='s classes, one per class index (e.g. "০".."৯" for Bengali
    digits), which predict, reports and figures show; "0", "1", ... when not given.
    Like `digitlab train` without --dataset, a run that never names its dataset falls back to
    the bundled digits set when MNIST can be neither found nor downloaded.
    """
    from digitlab.training import distributed
    from digitlab.training.loop import train as train_loop
    from digitlab.training.setup import given_dataset
    from digitlab.viz.analysis import evaluate_run

    overrides = dict(set or {})
    bad = [key for key in overrides if not isinstance(key, str)]
    if bad:
        raise ConfigError(_("set takes {{'section.key': value}}, e.g. {{'train.epochs': 3}}; "
                            "got the key {key!r}").format(key=bad[0]))
    if isinstance(config, (str, Path)):
        overrides = {**read_toml(config), **overrides}
        config = None
    cfg = apply_overrides(config or Config(), overrides)
    named = "data.name" in overrides or (config is not None
                                         and config.data.name != Config().data.name)
    if model is not None:
        cfg = apply_overrides(cfg, _model_overrides(model, cfg, "model.name" in overrides))
    if data is None and classes is not None:
        raise UsageError(_("classes= names the classes of data=; give data= too (a named "
                           "dataset brings its own class names)"))
    dataset = None if data is None else given_dataset(*_named_splits(data, classes), cfg)
    summary = train_loop(cfg, fallback=not named, dataset=dataset, init=model)
    if summary["status"] != "completed":
        raise TrainingError(_("training failed: the test loss is not finite; see {run_dir}/"
                              "summary.json and retrain with a lower learning rate").format(
            run_dir=summary["run_dir"]))
    if distributed.is_main_process() and dataset is not None:  # on the same tensors
        _evaluate_given(Path(summary["run_dir"]), summary["device"], dataset)
    elif distributed.is_main_process():  # evaluation.json, plots/ and report.html, once
        evaluate_run(summary["run_dir"], device=summary["device"])
    return load_run(summary["run_dir"])


def _named_splits(data: tuple, classes: Sequence[str] | None) -> tuple:
    """user_splits(data), with `classes` as the class names when given: distinct, non-empty
    strings, at least one per class index in the labels; UsageError otherwise."""
    from digitlab.training.setup import user_splits

    train, test, numbered = user_splits(data)
    if classes is None:
        return train, test, numbered
    if not isinstance(classes, (list, tuple)) or not all(isinstance(c, str) and c.strip()
                                                         for c in classes):
        raise UsageError(_("classes= takes a list of non-empty class names, e.g. "
                           "[\"০\", \"১\", ...]; got {value!r}").format(value=classes))
    names = tuple(classes)
    if len(set(names)) != len(names) or len(names) < len(numbered):
        raise UsageError(_("classes= must name each of the {count} classes in data= once; got "
                           "{names}").format(count=len(numbered), names=list(names)))
    return train, test, names


def _model_overrides(model: torch.nn.Module, cfg: Config, named: bool) -> dict[str, object]:
    """model.name for `model` (the name its class is registered under, else the model.name
    given, whose builder training checks makes that class) and train.imports with the module
    that registers it, so that loading the run imports it again."""
    from digitlab.models import MODELS

    if not isinstance(model, torch.nn.Module):
        raise UsageError(_("model= takes an nn.Module instance, got {kind}").format(
            kind=type(model).__name__))
    names = [name for name in MODELS.names() if MODELS.get(name) is type(model)]
    if not names and not named:
        raise UsageError(_("model=: {kind} is not a registered model, so the run could not be "
                           "loaded again; register the class with @MODELS.register(\"name\") "
                           "(from digitlab.models import MODELS) in a module of yours (--import "
                           "it for the CLI), or name its registered builder with "
                           "set={{'model.name': ...}}").format(kind=type(model).__name__))
    name = names[0] if names else cfg.model.name
    module = MODELS.get(name).__module__
    imports = cfg.train.imports
    if module not in imports and module != "__main__" and module.split(".")[0] != "digitlab":
        imports = (*imports, module)  # __main__ cannot be imported again: this session only
    return {"model.name": name, "train.imports": list(imports)}


def _evaluate_given(run_dir: Path, device: str, dataset) -> dict:
    """What evaluate_run does after training, on the user's own test split."""
    from digitlab.inference.run import load_run as load_model
    from digitlab.viz.analysis import analyze

    run = load_model(run_dir, device)
    recorded = run.meta.get("calibration")
    return analyze(run.model, dataset, run.cfg, run.device, run_dir,
                   extra={"checkpoint": str(run.path), "epoch": run.meta.get("epoch"),
                          "device": str(run.device)},
                   temperature=run.temperature,
                   recorded=recorded if isinstance(recorded, dict) else {})


__all__ = ["Config", "Run", "load_config", "load_run", "train"]
