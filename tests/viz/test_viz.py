"""Per-run plots and report, the lecture's figures, and `digitlab plot`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from digitlab.cli import main
from digitlab.models.activations import ACTIVATIONS, LECTURE
from digitlab.viz import figures

RUN_PLOTS = ("curves.png", "confusion.png", "predictions.png", "misclassified.png",
             "reliability.png")


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n"), path
    with Image.open(path) as image:
        image.load()
        assert image.width > 50 and image.height > 50, path
        extrema = image.convert("L").getextrema()
        assert extrema[0] != extrema[1], f"{path} is a blank image"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("viz") / "run"
    code = main(["train", "--dataset", "digits", "--epochs", "2", "--set", "data.val_size=0.1",
                 "--out", str(out)])
    assert code == 0
    return out


def test_run_leaves_every_plot(run):
    for name in RUN_PLOTS:
        assert_png(run / "plots" / name)
    rows = (run / "plots" / "confusion.csv").read_text().splitlines()
    assert len(rows) == 11 and rows[0].startswith("true \\ predicted")


def test_confusion_counts_add_up_to_the_test_set(run):
    evaluation = json.loads((run / "evaluation.json").read_text())
    matrix = evaluation["confusion"]
    assert sum(map(sum, matrix)) == evaluation["num_samples"] == 360
    assert sum(matrix[i][i] for i in range(10)) / 360 == pytest.approx(
        evaluation["test_accuracy"])
    csv_total = sum(int(v) for line in (run / "plots" / "confusion.csv").read_text()
                    .splitlines()[1:] for v in line.split(",")[1:])
    assert csv_total == 360


def test_per_class_metrics(run):
    evaluation = json.loads((run / "evaluation.json").read_text())
    per_class = evaluation["per_class"]
    assert list(per_class) == [str(i) for i in range(10)]
    for metrics in per_class.values():
        assert 0 <= metrics["precision"] <= 1 and 0 <= metrics["recall"] <= 1
        assert 0 <= metrics["f1"] <= 1 and metrics["support"] > 0
    assert sum(m["support"] for m in per_class.values()) == 360
    for pair in evaluation["most_confused"]:
        assert pair["true"] != pair["predicted"] and pair["count"] > 0


def test_report_is_self_contained(run):
    html = (run / "report.html").read_text()
    images = re.findall(r'<img [^>]*src="([^"]+)"', html)
    assert len(images) == len(RUN_PLOTS)
    assert all(src.startswith("data:image/png;base64,") for src in images)
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', html)
    assert "<script" not in html and "<link" not in html
    for text in ("Per class", "precision", "Config", "Metrics per epoch", "digits"):
        assert text in html


def test_plot_run_regenerates(run):
    for name in RUN_PLOTS:
        (run / "plots" / name).unlink()
    (run / "report.html").unlink()
    assert main(["plot", "run", str(run)]) == 0
    for name in RUN_PLOTS:
        assert_png(run / "plots" / name)
    assert (run / "report.html").is_file()


def test_train_analyzes_the_weights_it_reports(tmp_path):
    """Under early stopping the run reports its best epoch: the summary, and the analysis the
    train command draws afterwards, both evaluate best.safetensors, not the last epoch."""
    out = tmp_path / "stopped"
    assert main(["train", "--dataset", "digits", "--epochs", "4", "--set", "model.name=mlp",
                 "--set", "model.hidden=[16]", "--set", "data.val_size=0.2",
                 "--set", "train.early_stop_patience=1", "--set", "train.min_delta=100",
                 "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert summary["best_epoch"] == 1 and summary["epochs"] == 2
    assert Path(evaluation["checkpoint"]).name == "best.safetensors"
    assert evaluation["epoch"] == 1
    assert evaluation["test_accuracy"] == pytest.approx(summary["test_accuracy"], abs=1e-6)
    assert evaluation["test_loss"] == pytest.approx(summary["test_loss"], abs=1e-6)
    assert (out / "report.html").is_file()


def test_plot_filters(run, tmp_path):
    out = tmp_path / "filters.png"
    assert main(["plot", "filters", str(run), "--out", str(out)]) == 0
    assert_png(out)


def test_plot_activations_one_file_each(tmp_path):
    out = tmp_path / "acts"
    assert main(["plot", "activations", "--out", str(out)]) == 0
    files = sorted(p.name for p in out.glob("*.png"))
    assert len(LECTURE) == 22
    assert len(files) == len(ACTIVATIONS.names()) + 1  # one each, plus the overview
    for name in ("ReLU.png", "RReLU.png", "PReLU.png", "Softmin.png", "LogSoftmax.png",
                 "overview.png"):
        assert name in files
    for path in out.glob("*.png"):
        assert_png(path)


@pytest.mark.parametrize("figure", ["losses", "temperature"])
def test_plot_simple_figures(tmp_path, figure):
    out = tmp_path / f"{figure}.png"
    assert main(["plot", figure, "--out", str(out)]) == 0
    assert_png(out)


@pytest.mark.parametrize("sets", [["sched.name=onecycle"],
                                  ["sched.name=cosine", "sched.warmup_epochs=1"],
                                  ["sched.name=plateau", "data.val_size=0.1"]])
def test_plot_schedule(tmp_path, sets):
    out = tmp_path / "schedule.png"
    args = ["plot", "schedule", "--steps-per-epoch", "50", "--epochs", "4", "--out", str(out)]
    for item in sets:
        args += ["--set", item]
    assert main(args) == 0
    assert_png(out)


@pytest.mark.parametrize("sets", [["data.augment_lowres=0.5", "data.augment_stretch=0.3"],
                                  ["data.augment_rotate=10", "data.deskew=true"]])
def test_plot_augment(tmp_path, sets):
    out = tmp_path / "augment.png"
    args = ["plot", "augment", "--set", "data.name=digits", "--out", str(out)]
    for item in sets:
        args += ["--set", item]
    assert main(args) == 0
    assert_png(out)


def test_plot_augment_without_augmentation_is_a_usage_error(tmp_path, capsys):
    out = tmp_path / "augment.png"
    assert main(["plot", "augment", "--set", "data.name=digits", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data.augment_" in err[0] and not out.exists()


def test_activation_curve_matches_torch():
    import torch

    from digitlab.config import ModelConfig

    x = torch.linspace(-3, 3, 61)
    y, grad = figures.activation_curve("relu", ModelConfig(), x)
    assert torch.equal(y, x.clamp(min=0))
    assert torch.equal(grad, (x > 0).float())


def test_loss_curves_show_mse_saturating():
    import torch

    curves = figures.loss_curves(torch.tensor([-6.0, 0.0]))
    ce_grad_wrong = abs(curves["cross-entropy"][1][0])
    mse_grad_wrong = abs(curves["mse"][1][0])
    assert ce_grad_wrong > 0.9  # cross-entropy pushes hard when the true class is far behind
    assert mse_grad_wrong < 0.01  # the MSE-on-softmax gradient has all but vanished
