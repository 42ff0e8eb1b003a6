"""`digitlab evaluate RUN_DIR --images DIR`: a trained run on labelled image files.

Every file goes through the same path as `digitlab predict` (inference.labelled). Results go
to RUN_DIR/evaluation-<name>.json and a gallery of the mistakes to
RUN_DIR/plots/mistakes-<name>.png (name: DIR's folder name); nothing is written into DIR.

An unreadable file counts as an error: `accuracy` is correct / all labelled files, so each
unreadable file counts as a wrong answer; `accuracy_readable` is correct / files read. The
confusion matrix and precision hold only the files read (an unreadable file has no prediction).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from digitlab.errors import UsageError
from digitlab.i18n import _
from digitlab.inference.labelled import (
    LabelledSet,
    Readings,
    check_labels,
    find_labelled,
    read_labelled,
)
from digitlab.inference.predictor import Predictor
from digitlab.inference.preprocess import ImageError, open_image
from digitlab.io import ensure_writable, write_json
from digitlab.viz.analysis import most_confused, with_scripts
from digitlab.viz.fonts import apply_font
from digitlab.viz.plots import pyplot, save_figure

GALLERY_SIZE = 48  # mistakes drawn, the most confident first
PAIRS_PER_ROW = 4  # original + model input, side by side


def output_name(folder: Path) -> str:
    """DIR's folder name, safe in a file name ("images" when nothing is left)."""
    return re.sub(r"[^\w.-]+", "-", folder.resolve().name).strip(".-") or "images"


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None  # None (null): nothing to divide


def per_class(labels: torch.Tensor, preds: torch.Tensor, found_labels: list[int],
              classes: tuple[str, ...]) -> dict:
    """Per class: support (every labelled file, unreadable ones too), correct, unreadable,
    recall (correct / support), precision (over the files read) and F1."""
    c = len(classes)
    support = torch.bincount(torch.tensor(found_labels, dtype=torch.long), minlength=c)
    correct = torch.bincount(labels[preds == labels], minlength=c)
    predicted = torch.bincount(preds, minlength=c)
    read = torch.bincount(labels, minlength=c)
    table = {}
    for k, name in enumerate(classes):
        recall = _ratio(int(correct[k]), int(support[k]))
        precision = _ratio(int(correct[k]), int(predicted[k]))
        f1 = None
        if recall is not None and precision is not None:
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        table[name] = {"support": int(support[k]), "correct": int(correct[k]),
                       "unreadable": int(support[k] - read[k]), "predicted": int(predicted[k]),
                       "recall": recall, "precision": precision, "f1": f1}
    return table


def summarize(found: LabelledSet, readings: Readings, classes: tuple[str, ...]) -> dict:
    index = {name: k for k, name in enumerate(classes)}
    labels = torch.tensor([index[f.label] for f in readings.files], dtype=torch.long)
    confidence, preds = (readings.probs.max(dim=1) if len(labels)
                         else (torch.zeros(0), torch.zeros(0, dtype=torch.long)))
    c = len(classes)
    confusion = torch.bincount(labels * c + preds, minlength=c * c).view(c, c)
    correct = int((preds == labels).sum())
    total = len(found.files)
    wrong = (preds != labels).nonzero().flatten()
    wrong = wrong[confidence[wrong].argsort(descending=True)].tolist()
    return {
        "images_dir": str(found.folder), "layout": found.layout,
        "accuracy": correct / total,  # unreadable files count as wrong answers
        "accuracy_readable": _ratio(correct, len(labels)),
        "counts": {"files": total, "read": len(labels), "correct": correct,
                   "wrong": len(labels) - correct, "unreadable": len(readings.unreadable),
                   "ignored": len(found.ignored)},
        "classes": list(classes),
        "per_class": per_class(labels, preds, [index[f.label] for f in found.files], classes),
        "most_confused": most_confused(confusion, classes),
        "confusion": confusion.tolist(),  # rows: true, columns: predicted; files read only
        **with_scripts(confusion, classes),
        "mistakes": [{"file": readings.files[i].name, "true": classes[int(labels[i])],
                      "predicted": classes[int(preds[i])], "confidence": float(confidence[i]),
                      "index": i} for i in wrong],
        "unreadable": [{"file": f.name, "label": f.label, "reason": reason}
                       for f, reason in readings.unreadable],
        "ignored": found.ignored,
    }


def _thumbnail(path: Path, side: int = 112) -> np.ndarray | None:
    try:
        image = open_image(path).convert("RGB")  # the same size guards as preprocess
    except ImageError:
        return None  # read once already; changed since: the cell stays blank
    image.thumbnail((side, side))
    return np.asarray(image)


def mistakes_gallery(readings: Readings, mistakes: list[dict], path: Path, title: str) -> None:
    """Each mistake as a pair: the original file, and beside it the 28x28 the model saw,
    titled true / predicted (confidence)."""
    plt = pyplot()
    shown = mistakes[:GALLERY_SIZE]
    rows = max(1, -(-len(shown) // PAIRS_PER_ROW))
    cols = 2 * PAIRS_PER_ROW
    fig, axes = plt.subplots(rows, cols, figsize=(1.5 * cols, 1.9 * rows + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for k, mistake in enumerate(shown):
        original, seen = axes.flat[2 * k], axes.flat[2 * k + 1]
        item = readings.files[mistake["index"]]
        thumbnail = _thumbnail(item.path)
        if thumbnail is not None:
            original.imshow(thumbnail, interpolation="nearest")
        original.set_title(f"{item.path.name[:18]}\ntrue {mistake['true']}", fontsize=7)
        seen.imshow(readings.digits[mistake["index"]], cmap="gray", vmin=0, vmax=255)
        seen.set_title(f"model input\npred {mistake['predicted']} "
                       f"({100 * mistake['confidence']:.0f}%)", fontsize=7, color="crimson")
    if not shown:
        axes[0, 0].text(0.5, 0.5, "no misclassified images", ha="center", va="center")
    more = len(mistakes) - len(shown)
    fig.suptitle(title + (f" (the {len(shown)} most confident; {more} more in the JSON)"
                          if more > 0 else ""))
    height = fig.get_figheight()
    apply_font(fig)  # before measuring: Bengali class names are drawn in a Bengali font
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / height))  # 0.4 inch for the title, any height
    save_figure(fig, path)


def evaluate_images(run_dir: str | Path, images_dir: str | Path, device: str = "auto") -> dict:
    """Evaluate the run's model on labelled image files; write evaluation-<name>.json and
    plots/mistakes-<name>.png in the run directory. Returns the evaluation with the paths."""
    run_dir, images_dir = Path(run_dir), Path(images_dir)
    if any(out.resolve().is_relative_to(images_dir.resolve())
           for out in (run_dir, run_dir / "plots")):
        raise UsageError(_("--images {folder}: the results would be written inside it (to "
                           "{run_dir}); keep the run directory outside the images folder")
                         .format(folder=images_dir, run_dir=run_dir))
    found = find_labelled(images_dir)
    predictor = Predictor.load(run_dir, device)  # a CheckpointError for a bad run
    found = check_labels(found, predictor.classes)  # labels as the model's class names
    for folder in (run_dir, run_dir / "plots"):  # before the work: a clear line, no traceback
        ensure_writable(folder)
    readings = read_labelled(predictor, found.files)
    evaluation = summarize(found, readings, predictor.classes)
    name = output_name(images_dir)
    json_path = run_dir / f"evaluation-{name}.json"
    gallery_path = run_dir / "plots" / f"mistakes-{name}.png"
    mistakes_gallery(readings, evaluation["mistakes"], gallery_path,
                     f"mistakes on {images_dir.resolve().name}")
    for mistake in evaluation["mistakes"]:
        del mistake["index"]  # an index into the files read: meaningless outside
    evaluation = {**evaluation, "run_dir": str(run_dir), "checkpoint": str(predictor.path),
                  "model": predictor.cfg.model.name, "device": str(predictor.device),
                  "gallery": str(gallery_path.relative_to(run_dir).as_posix())}
    write_json(json_path, evaluation)
    return {**evaluation, "json_path": str(json_path), "gallery_path": str(gallery_path)}


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def format_report(evaluation: dict) -> str:
    """The lines `digitlab evaluate --images` prints: totals, a per-class table (classes
    with files or predictions), the most-confused pairs, the files written."""
    counts = evaluation["counts"]
    lines = [_("{folder} ({layout}): {files} files, {read} read, {unreadable} unreadable")
             .format(folder=evaluation["images_dir"], layout=evaluation["layout"],
                     files=counts["files"], read=counts["read"],
                     unreadable=counts["unreadable"]),
             _("accuracy {accuracy} ({correct} of {files}; unreadable files count as errors); "
               "{readable} of the files read").format(
                 accuracy=_percent(evaluation["accuracy"]), correct=counts["correct"],
                 files=counts["files"], readable=_percent(evaluation["accuracy_readable"])),
             "", table_header()]
    for name, row in evaluation["per_class"].items():
        if row["support"] or row["predicted"]:
            lines.append(f"{name:>8} {row['support']:>8} {row['correct']:>8} "
                         f"{_percent(row['recall']):>8} {_percent(row['precision']):>10} "
                         f"{row['unreadable']:>11}")
    pairs = ", ".join(f"{p['true']}->{p['predicted']} ({p['count']})"
                      for p in evaluation["most_confused"])
    lines += ["", _("most confused (true->predicted): {pairs}").format(pairs=pairs or _("none"))]
    if evaluation["ignored"]:
        lines.append(_("ignored (not inside a label folder): {files}").format(
            files=", ".join(evaluation["ignored"])))
    lines.append(_("-> {json} and {gallery}").format(json=evaluation["json_path"],
                                                     gallery=evaluation["gallery_path"]))
    return "\n".join(lines)


def table_header() -> str:
    """The per-class table's header (each word translated on its own; widths fixed)."""
    names = [_("class"), _("support"), _("correct"), _("recall"), _("precision"),
             _("unreadable")]
    widths = [8, 8, 8, 8, 10, 11]
    return " ".join(f"{name:>{width}}" for name, width in zip(names, widths, strict=True))
