"""What a trained model learned, on the test split: per-class metrics, the confusion matrix,
the most-confused pairs, the highest-loss images, how honest its confidence is before and
after the run's temperature (ECE), and for classes in two scripts (Latin "7" and Bengali "৭")
the confusions between them; written as evaluation.json, plots and the HTML report.
Drawn by `digitlab train` once a run has finished, by `digitlab evaluate` and by
`digitlab plot run`."""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

import torch
import torch.nn.functional as F

from digitlab.config import Config
from digitlab.data import Dataset, load_dataset
from digitlab.data.loader import normalize
from digitlab.errors import CheckpointError, UsageError
from digitlab.i18n import _
from digitlab.inference.run import load_run
from digitlab.io import atomic_write_text, ensure_writable, read_jsonl, write_json
from digitlab.models.shifted import with_test_shifts
from digitlab.scripts import script_report
from digitlab.training.calibration import (
    ECE_BINS,
    confidence_bins,
    expected_calibration_error,
    nll,
)
from digitlab.training.setup import USER_DATA
from digitlab.viz import plots
from digitlab.viz.report import write_report


@torch.no_grad()
def split_logits(model: torch.nn.Module, images: torch.Tensor, cfg: Config,
                 device: torch.device) -> torch.Tensor:
    """Logits [N, C] on the CPU, in evaluation batches, normalized on the device."""
    was_training = model.training
    model.eval()
    chunks = []
    for start in range(0, len(images), cfg.data.test_batch_size):
        batch = normalize(images[start:start + cfg.data.test_batch_size].to(device),
                          cfg.data.mean, cfg.data.std)
        chunks.append(model(batch).float().cpu())
    model.train(was_training)
    return torch.cat(chunks)


def class_report(confusion: torch.Tensor, classes: tuple[str, ...]) -> dict:
    """Precision, recall, F1 and support per class, plus their macro averages."""
    confusion = confusion.double()
    tp = confusion.diag()
    precision = tp / confusion.sum(dim=0).clamp(min=1)
    recall = tp / confusion.sum(dim=1).clamp(min=1)
    f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
    per_class = {
        name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(classes, precision, recall, f1, confusion.sum(dim=1),
                                    strict=True)
    }
    macro = {"precision": float(precision.mean()), "recall": float(recall.mean()),
             "f1": float(f1.mean())}
    return {"per_class": per_class, "macro": macro}


def most_confused(confusion: torch.Tensor, classes: tuple[str, ...], k: int = 10) -> list[dict]:
    off_diagonal = confusion.clone()
    off_diagonal.fill_diagonal_(0)
    counts, index = off_diagonal.flatten().sort(descending=True)
    c = len(classes)
    return [{"true": classes[int(i) // c], "predicted": classes[int(i) % c], "count": int(n)}
            for n, i in zip(counts[:k], index[:k], strict=True) if n > 0]


def with_scripts(confusion: torch.Tensor, classes: tuple[str, ...]) -> dict:
    """{"scripts": ...} for classes in two scripts (scripts.script_report: per-script accuracy,
    right digit in the wrong script, the confusions between scripts); {} for one script."""
    report = script_report(confusion, classes)
    return {} if report is None else {"scripts": report}


def confusion_csv(confusion: torch.Tensor, classes: tuple[str, ...]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["true \\ predicted", *classes])
    for name, row in zip(classes, confusion.tolist(), strict=True):
        writer.writerow([name, *row])
    return out.getvalue()


def calibration_report(logits: torch.Tensor, labels: torch.Tensor, temperature: float,
                       recorded: dict, plot: Path | None = None) -> dict:
    """ECE and NLL on the test split with the raw softmax and with the run's temperature;
    `recorded` is the checkpoint's "calibration" metadata (where T was fitted), {} if none.
    With `plot`, also the reliability diagram there."""
    before, after = logits.softmax(dim=1), (logits / temperature).softmax(dim=1)
    count, reason = recorded.get("num_samples"), recorded.get("reason")
    fitted_on = None
    if recorded.get("fitted_on") == "validation" and isinstance(count, int):
        fitted_on, reason = f"validation, {count} images", None
    elif not isinstance(reason, str):
        reason = "the checkpoint records no calibration (written before it existed)"
    if plot is not None:
        plots.reliability({"before (T = 1)": confidence_bins(before, labels),
                           f"after (T = {temperature:.3f})": confidence_bins(after, labels)}, plot)
    return {"temperature": temperature, "fitted_on": fitted_on, "reason": reason,
            "bins": ECE_BINS,
            "ece_before": expected_calibration_error(before, labels),
            "ece_after": expected_calibration_error(after, labels),
            "nll_before": nll(logits, labels), "nll_after": nll(logits, labels, temperature)}


def analyze(model: torch.nn.Module, dataset: Dataset, cfg: Config, device: torch.device,
            run_dir: Path, extra: dict | None = None, gallery_size: int = 24,
            temperature: float = 1.0, recorded: dict | None = None) -> dict:
    """Evaluate on the test split and write evaluation.json, plots/ and report.html.
    temperature and recorded: the checkpoint's calibration (see calibration_report)."""
    test = dataset.test
    logits = split_logits(with_test_shifts(model, cfg.data.test_shifts), test.images, cfg, device)
    probs = (logits / temperature).softmax(dim=1)  # the confidence predict and serve show
    confidence, preds = probs.max(dim=1)
    c = len(dataset.classes)
    confusion = torch.bincount(test.labels * c + preds, minlength=c * c).view(c, c)
    losses = F.cross_entropy(logits, test.labels, reduction="none")
    report = class_report(confusion, dataset.classes)
    evaluation = {
        "test_accuracy": float((preds == test.labels).float().mean()),
        "test_loss": float(losses.mean()),  # cross-entropy, whatever the training loss was
        "num_samples": len(test),
        "dataset": dataset.name,
        "dataset_title": dataset.title,
        "model": cfg.model.name,
        "classes": list(dataset.classes),
        **(extra or {}),
        "per_class": report["per_class"],
        "macro_avg": report["macro"],
        "per_class_accuracy": {k: v["recall"] for k, v in report["per_class"].items()},
        "most_confused": most_confused(confusion, dataset.classes),
        "confusion": confusion.tolist(),
        **with_scripts(confusion, dataset.classes),
        "calibration": calibration_report(logits, test.labels, temperature, recorded or {},
                                          run_dir / "plots" / "reliability.png"),
    }
    plot_dir = run_dir / "plots"
    plots.confusion(confusion, dataset.classes, plot_dir / "confusion.png")
    atomic_write_text(plot_dir / "confusion.csv", confusion_csv(confusion, dataset.classes))
    n = min(6, len(test), cfg.data.test_batch_size)
    plots.predictions_grid(test.images[:n], test.labels[:n], preds[:n], dataset.classes,
                           plot_dir / "predictions.png", n=n)
    wrong = (preds != test.labels).nonzero().squeeze(1)
    worst = wrong[losses[wrong].argsort(descending=True)[:gallery_size]]
    plots.gallery(test.images[worst], test.labels[worst], preds[worst], confidence[worst],
                  dataset.classes, plot_dir / "misclassified.png")
    history = read_jsonl(run_dir / "metrics.jsonl")
    if history:
        plots.curves(history, plot_dir / "curves.png")
    write_json(run_dir / "evaluation.json", evaluation)
    write_report(run_dir)
    return evaluation


def evaluate_run(run_dir: str | Path, data_dir: str | None = None, device: str = "auto") -> dict:
    """Evaluate the model a run reports (inference.load_run: the best checkpoint when early
    stopping restored it, else the last) on its test split; (re)write evaluation.json, plots/
    and report.html. Used by `digitlab train` after training, `evaluate` and `plot run`."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.toml").is_file():
        raise CheckpointError(_("{run_dir} is not a run directory (no config.toml there)")
                              .format(run_dir=run_dir))
    for folder in (run_dir, run_dir / "plots"):  # before any work: a clear line, no traceback
        ensure_writable(folder)
    run = load_run(run_dir, device)
    if run.meta.get("dataset") == USER_DATA:  # else it would quietly read data.name's set
        raise UsageError(_("{run_dir} was trained on data given to digitlab.train(data=...), "
                           "which is not on disk; evaluate it from Python with "
                           "digitlab.load_run(...).predict(your test images)").format(
            run_dir=run_dir))
    if run.cfg.train.task == "read":  # whole numbers: no confusion matrix (viz/reading.py)
        from digitlab.viz.reading import analyze_read

        return analyze_read(run, run_dir, data_dir)
    cfg = run.cfg
    if data_dir:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, dir=data_dir))
    dataset = load_dataset(cfg.data)
    if len(dataset.classes) == len(run.classes):  # the names the run was trained with label it
        dataset = dataclasses.replace(dataset, classes=run.classes)
    recorded = run.meta.get("calibration")
    return analyze(run.model, dataset, cfg, run.device, run_dir,
                   extra={"checkpoint": str(run.path), "epoch": run.meta.get("epoch"),
                          "device": str(run.device)},
                   temperature=run.temperature,
                   recorded=recorded if isinstance(recorded, dict) else {})
