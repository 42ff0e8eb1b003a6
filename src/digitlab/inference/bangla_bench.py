"""`digitlab bench --parts bangla`: the Bengali presets, measured as their users meet them.

- bangla: configs/bangla.toml trained on CMATERdb with seeds 0, 1 and 2: each one's test
  accuracy and training time, and the mean (the goal: at least 99.0% on average, in at most
  about 3 minutes each on a 2-core CPU);
- photos: CMATERdb's test digits rendered as phone photos by `inference.render` (as the
  robustness part renders MNIST's), read back through predict's preprocessing and read by the
  seed-0 model, beside the same model on the test tensors: the photo path should cost at most
  a point;
- bilingual: configs/bilingual.toml (seed 0) on MNIST and CMATERdb together, 20 classes: the
  exact accuracy on each script's test split, and the confusions from one script to the other;
  then MNIST test digits written as 28x28 PNGs and read back through predict's preprocessing,
  as a user's Latin digits reach the model, beside the same digits as tensors.
The runs are trained in temporary folders and removed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from rich.table import Table

from digitlab.data.sources import SOURCES
from digitlab.i18n import _
from digitlab.inference.predictor import Predictor
from digitlab.inference.robustness import (
    BATCH_SIZE,
    Readings,
    accuracy,
    read_files,
    write_photos,
    write_pngs,
)

SEEDS = (0, 1, 2)
PHOTOS = 1000  # the whole CMATERdb test split
LATIN_PNGS = 2000  # MNIST test digits read back through predict by the bilingual model
CONFUSIONS_SHOWN = 6


def test_split(cfg_data, name: str):
    """A source's test split as stored (not deskewed: the predictor deskews what it reads)."""
    from dataclasses import replace

    return SOURCES.get(name)(replace(cfg_data, name=name)).test


def image_path(predictor: Predictor, test, count: int, write) -> dict:
    """The first `count` test digits as tensors and written by `write`, then read back."""
    images, labels = test.images.numpy(), test.labels.numpy()
    count = min(count, len(labels))
    tensors = Readings(images[:count], labels[:count].astype(np.int64), count)
    with tempfile.TemporaryDirectory(prefix="digitlab-bangla-") as folder:
        written = read_files(write(Path(folder), images, labels, count))
    return {"count": count, "tensors": accuracy(predictor, tensors),
            "images": accuracy(predictor, written)}


def confusion(predictor: Predictor, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    from digitlab.training.evaluate import confusion_matrix

    predicted = torch.cat([predictor.probabilities(images[i:i + BATCH_SIZE]).argmax(1)
                           for i in range(0, len(images), BATCH_SIZE)])
    return confusion_matrix(labels, predicted, len(predictor.classes))


def run_bangla(data_dir: str | None, console, photos: int = PHOTOS,
               latin_pngs: int = LATIN_PNGS) -> dict:
    """Train and measure both presets; the results as a dict (see the module docstring)."""
    from digitlab.training.bench import preset_path, train_preset
    from digitlab.viz.analysis import with_scripts

    for name in ("bangla", "bilingual"):
        preset_path(name)  # both exist before any training
    result: dict = {"runs": []}
    with tempfile.TemporaryDirectory(prefix="digitlab-bangla-") as out:
        for seed in SEEDS:
            console.print(_("bangla: training preset bangla (seed {seed}) ...").format(seed=seed))
            summary = train_preset("bangla", seed, data_dir, Path(out) / f"bangla-{seed}")
            result["runs"].append({"seed": seed, "test_accuracy": summary["test_accuracy"],
                                   "train_seconds": summary["train_seconds"]})
        predictor = Predictor.load(Path(out) / f"bangla-{SEEDS[0]}", device="cpu")
        test = test_split(predictor.cfg.data, "cmaterdb")
        console.print(_("bangla: writing the test digits as photos and reading them back ..."))
        paths = image_path(predictor, test, photos, write_photos)
        result["photos"] = {"count": paths["count"], "tensors": paths["tensors"],
                            "photos": paths["images"]}
        console.print(_("bangla: training preset bilingual (seed {seed}) ...").format(
            seed=SEEDS[0]))
        summary = train_preset("bilingual", SEEDS[0], data_dir, Path(out) / "bilingual")
        predictor = Predictor.load(Path(out) / "bilingual", device="cpu")
        test = test_split(predictor.cfg.data, "mnist+cmaterdb")
        matrix = confusion(predictor, test.images, test.labels)
        console.print(_("bangla: reading MNIST test digits as PNG files with the bilingual "
                        "model ..."))
        latin = image_path(predictor, test_split(predictor.cfg.data, "mnist"), latin_pngs,
                           write_pngs)
        result["bilingual"] = {"train_seconds": summary["train_seconds"],
                               "test_accuracy": summary["test_accuracy"], "latin_png": latin,
                               **with_scripts(matrix, predictor.classes)}
    accs = [r["test_accuracy"] for r in result["runs"]]
    secs = [r["train_seconds"] for r in result["runs"]]
    result["mean_accuracy"], result["mean_seconds"] = sum(accs) / len(accs), sum(secs) / len(secs)
    result["photos"]["gap_pp"] = 100 * (result["photos"]["tensors"] - result["photos"]["photos"])
    return result


def tables(result: dict) -> list[Table]:
    runs = Table(title=_("bangla preset on CMATERdb (1,000 test digits)"))
    for column in (_("seed"), _("test accuracy"), _("training")):
        runs.add_column(column, justify="right")
    for run in result["runs"]:
        runs.add_row(str(run["seed"]), f"{100 * run['test_accuracy']:.2f}%",
                     f"{run['train_seconds']:.1f} s")
    runs.add_row(_("mean"), f"{100 * result['mean_accuracy']:.2f}%",
                 f"{result['mean_seconds']:.1f} s")
    photos = result["photos"]
    paths = Table(title=_("bangla preset (seed 0): the test digits as tensors and as photos"))
    for column in (_("input"), _("accuracy")):
        paths.add_column(column, justify="right")
    paths.add_row(_("tensors"), f"{100 * photos['tensors']:.2f}%")
    paths.add_row(_("photos through predict"), f"{100 * photos['photos']:.2f}%")
    paths.add_row(_("gap"), f"{photos['gap_pp']:.2f} pp")
    return [runs, paths, bilingual_table(result["bilingual"])]


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def bilingual_table(bilingual: dict) -> Table:
    """Per script: exact accuracy and right-digit-wrong-script rate; then the most frequent
    confusions between the scripts in the caption."""
    from digitlab.scripts import SCRIPTS

    report = bilingual["scripts"]
    crossed = ", ".join(f"{c['true']}->{c['predicted']} {c['count']}"
                        for c in report["confusions"][:CONFUSIONS_SHOWN])
    table = Table(title=_("bilingual preset (seed 0), 20 classes: {seconds:.1f} s of training")
                  .format(seconds=bilingual["train_seconds"]),
                  caption=_("between the scripts: {confusions}").format(
                      confusions=crossed or _("none")))
    for column in (_("script"), _("test images"), _("accuracy"), _("right digit, wrong script")):
        table.add_column(column, justify="right")
    for script, numbers in report["per_script"].items():
        table.add_row(_(SCRIPTS[script]), f"{numbers['images']:,}", percent(numbers["accuracy"]),
                      percent(numbers["value_right_script_wrong"]))
    latin = bilingual["latin_png"]
    table.add_row(_("Latin, tensors"), f"{latin['count']:,}", percent(latin["tensors"]), "")
    table.add_row(_("Latin, PNG through predict"), f"{latin['count']:,}",
                  percent(latin["images"]), "")
    return table
