"""Rough edges a new user hit: `plot schedule` without the dataset, `evaluate` after the raw
files are gone (from the decoded cache), and what `sweep` prints and draws."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from digitlab.cli import main
from digitlab.config import Config, apply_overrides
from digitlab.data import SOURCES, load_dataset, mnist
from digitlab.data.loader import epoch_batches
from digitlab.data.sources import READS_FILES, TRAIN_SIZES, known_epoch_batches
from digitlab.errors import DataNotFound
from digitlab.training.setup import batches_per_epoch, training_splits
from digitlab.viz import figures, plots, sweep_report

# ------------------------------------------------------------- plot schedule, no dataset


@pytest.fixture
def no_data(tmp_path, monkeypatch, fresh_cache, offline) -> tuple[Path, Path]:
    """An empty DIGITLAB_DATA and an empty DIGITLAB_CACHE, and no network."""
    data = tmp_path / "empty-data"
    data.mkdir()
    monkeypatch.setenv("DIGITLAB_DATA", str(data))
    return data, fresh_cache


@pytest.mark.parametrize("dataset", sorted(mnist.FAMILIES))
@pytest.mark.parametrize(("sets", "steps"), [
    ([], 938),  # ceil(60000 / 64)
    (["data.val_size=10000"], 782),  # ceil(50000 / 64)
    (["data.val_size=0.1", "data.batch_size=100"], 540),  # 54000 / 100
    (["train.accum_steps=4"], 235),  # 938 batches, one optimizer step per 4
])
def test_plot_schedule_needs_no_dataset(dataset, sets, steps, no_data, tmp_path, monkeypatch,
                                        capsys):
    drawn = {}
    real = figures.schedule

    def spy(cfg, steps_per_epoch, path):
        drawn["batches"] = steps_per_epoch
        drawn["steps"] = -(-steps_per_epoch // cfg.train.accum_steps)
        return real(cfg, steps_per_epoch, path)

    monkeypatch.setattr(figures, "schedule", spy)
    out = tmp_path / "schedule.png"
    args = ["plot", "schedule", "--set", f"data.name={dataset}", "--epochs", "2", "--out",
            str(out)]
    for item in sets:
        args += ["--set", item]
    assert main(args) == 0, capsys.readouterr().err
    assert out.stat().st_size > 1000 and out.read_bytes().startswith(b"\x89PNG")
    assert drawn["steps"] == steps
    data, cache = no_data
    assert not any(data.iterdir()) and not any(cache.iterdir()), "nothing read or written"


def test_every_source_has_a_known_size_or_reads_its_files():
    # a new source must say how big its training split is, or that only its files tell
    assert set(TRAIN_SIZES) | set(READS_FILES) == set(SOURCES.names())
    assert not set(TRAIN_SIZES) & set(READS_FILES)
    for name in READS_FILES:
        cfg = apply_overrides(Config(), {"data.name": name, "data.dir": "somewhere"})
        assert known_epoch_batches(cfg.data) is None


@pytest.mark.parametrize("overrides", [
    {}, {"data.val_size": 0.1}, {"data.val_size": 100, "data.batch_size": 100},
    {"data.balance": "sampler"}, {"data.balance": "weights", "data.batch_size": 1},
])
@pytest.mark.parametrize("name", ["digits", "synthetic", "mnist"])
def test_known_batches_are_what_loading_counts(name, overrides, request):
    cfg = apply_overrides(Config(), {"data.name": name, **overrides})
    if name == "mnist":
        directory = request.getfixturevalue("mnist_dir")
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, dir=str(directory)))
    dataset = load_dataset(cfg.data)
    assert len(dataset.train) == TRAIN_SIZES[name]
    train, _val = training_splits(dataset, cfg)
    loaded = epoch_batches(train.labels, cfg.data.batch_size, cfg.data.balance,
                           len(dataset.classes))
    assert known_epoch_batches(cfg.data) == batches_per_epoch(cfg) == loaded


@pytest.mark.parametrize("overrides", [{"data.balance": "lecun"},
                                       {"data.imbalance_ratio": 10.0}])
def test_label_dependent_batches_load_the_dataset(overrides):
    cfg = apply_overrides(Config(), {"data.name": "digits", **overrides})
    assert known_epoch_batches(cfg.data) is None
    dataset = load_dataset(cfg.data)
    train, _val = training_splits(dataset, cfg)
    assert batches_per_epoch(cfg) == epoch_batches(train.labels, cfg.data.batch_size,
                                                   cfg.data.balance, 10)


# ------------------------------------------------------------ evaluate from the cache


def test_evaluate_after_the_raw_files_are_gone(mnist_dir, tmp_path, fresh_cache, offline,
                                               capsys):
    raw = shutil.copytree(mnist_dir, tmp_path / "raw")
    run = tmp_path / "run"
    # 1,000 training images (the rest held out) keep the epoch short; the test split is whole
    assert main(["train", "--data-dir", str(raw), "--epochs", "1", "--device", "cpu",
                 "--set", "data.val_size=59000", "--out", str(run)]) == 0
    summary = json.loads((run / "summary.json").read_text())
    shutil.rmtree(raw)
    (run / "evaluation.json").unlink()
    capsys.readouterr()
    assert main(["evaluate", str(run), "--device", "cpu"]) == 0, capsys.readouterr().err
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert evaluation["num_samples"] == 10_000 and evaluation["dataset"] == "mnist"
    assert evaluation["test_accuracy"] == pytest.approx(summary["test_accuracy"], abs=1e-6)

    # without the decoded set either, the message says where it looked
    shutil.rmtree(fresh_cache / "tensors")
    assert main(["evaluate", str(run), "--device", "cpu"]) == DataNotFound.exit_code
    err = capsys.readouterr().err
    assert "MNIST was not found" in err and "(decoded before): no complete MNIST set" in err


def test_incomplete_or_foreign_cached_sets_are_not_used(fresh_cache):
    folder = fresh_cache / "tensors" / "mnist-0123456789abcdef"
    folder.mkdir(parents=True)
    small = {"images": torch.zeros(5, 28, 28, dtype=torch.uint8),
             "labels": torch.zeros(5, dtype=torch.int64)}
    save_file(small, folder / "train.safetensors")
    save_file(small, folder / "test.safetensors")
    (fresh_cache / "tensors" / "fashion-mnist-0123456789abcdef").mkdir()
    assert mnist.cached_splits(mnist.MNIST) is None  # 5 images, not 60,000 and 10,000
    full = {"images": torch.zeros(60_000, 28, 28, dtype=torch.uint8),
            "labels": torch.arange(60_000) % 10}
    save_file(full, folder / "train.safetensors")
    assert mnist.cached_splits(mnist.MNIST) is None  # the test split is still short
    save_file({"images": full["images"][:10_000], "labels": full["labels"][:10_000]},
              folder / "test.safetensors")
    train, test, where = mnist.cached_splits(mnist.MNIST)
    assert (len(train), len(test), where) == (60_000, 10_000, folder)
    assert mnist.cached_splits(mnist.FASHION) is None


# ---------------------------------------------------------------- sweep output, figures


@pytest.fixture
def figures_drawn(monkeypatch) -> list:
    """The matplotlib figures plots and sweep_report save, kept open for inspection."""
    kept = []

    def keep(fig, path):
        fig.canvas.draw()
        kept.append(fig)

    monkeypatch.setattr(plots, "save_figure", keep)
    monkeypatch.setattr(sweep_report, "save_figure", keep)
    yield kept
    for fig in kept:
        plots.pyplot().close(fig)


def visible_ticks(ax) -> list[float]:
    low, high = sorted(ax.get_xlim())
    return [t for t in ax.get_xticks() if low <= t <= high]


def assert_whole_epochs(ax) -> None:
    ticks = visible_ticks(ax)
    assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_distinct_colors_for_24_runs():
    colors = plots.distinct_colors(24)
    assert len(set(colors)) == 24
    assert len(set(plots.distinct_colors(plots.DISTINCT_COLORS))) == plots.DISTINCT_COLORS


@pytest.mark.parametrize("epochs", [1, 2, 7])
def test_run_curves_have_whole_epoch_ticks(epochs, figures_drawn, tmp_path):
    history = [{"epoch": e, "train_loss": 1 / e, "train_accuracy": 0.5, "test_loss": 1 / e,
                "test_accuracy": 0.6, "lr": 1e-3} for e in range(1, epochs + 1)]
    plots.curves(history, tmp_path / "curves.png")
    (fig,) = figures_drawn
    for ax in fig.axes:
        assert_whole_epochs(ax)


def fake_sweep(out: Path, combos: int, epochs: int) -> list[dict]:
    rows = []
    for k in range(combos):
        row = {"optim.lr": k / 1000, "seed": 42, "run": f"lr={k}", "status": "completed",
               "test_accuracy": 0.9 + k / 1000, "test_loss": 0.3, "train_seconds": 1.0}
        (out / row["run"]).mkdir(parents=True)
        (out / row["run"] / "metrics.jsonl").write_text("".join(
            json.dumps({"epoch": e, "val_accuracy": 0.8 + k / 100 + e / 100}) + "\n"
            for e in range(1, epochs + 1)))
        rows.append(row)
    return rows


@pytest.mark.parametrize(("combos", "epochs"), [(24, 1), (3, 4)])
def test_sweep_figure_colours_and_ticks(combos, epochs, figures_drawn, tmp_path):
    rows = fake_sweep(tmp_path, combos, epochs)
    sweep_report.sweep_figure(tmp_path, ["optim.lr"], rows)
    (fig,) = figures_drawn
    ax_bar, ax_curve = fig.axes
    line_colors = {tuple(line.get_color()) for line in ax_curve.lines}
    bar_colors = {patch.get_facecolor()[:3] for patch in ax_bar.patches}
    assert len(ax_curve.lines) == combos and len(line_colors) == combos
    assert bar_colors == line_colors  # a run's curve in its bar's colour
    assert_whole_epochs(ax_curve)


def test_sweep_prints_each_result_and_a_table(tmp_path, capsys, no_analysis):
    out = tmp_path / "sweep"
    assert main(["sweep", "--grid", "optim.lr=0.01,1e6", "--set", "optim.name=sgd",
                 "--dataset", "digits", "--epochs", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("[1/2] "))
    second = next(i for i, line in enumerate(lines) if line.startswith("[2/2] "))
    # the result of each run on the line after its name, before the next run starts
    assert second == first + 2
    assert re.fullmatch(r" {4}test accuracy \d+\.\d\d%, test loss \d+\.\d{4}, \d+\.\d s",
                        lines[first + 1])
    assert lines[second + 1].startswith("    failed: ") and "nan" in lines[second + 1]
    table = "\n".join(lines[second + 2:])
    assert "sweep: 2 runs" in table
    for header in ("optim.lr", "seed", "test accuracy", "test loss", "status"):
        assert header in table
    summary = json.loads((out / "optim.lr=0.01_seed=42" / "summary.json").read_text())
    row = next(line for line in lines[second + 2:] if "0.01" in line)
    assert f"{100 * summary['test_accuracy']:.2f}%" in row and "completed" in row
    assert any("1000000.0" in line and "failed" in line for line in lines[second + 2:])
    assert lines[-1].startswith("2 runs, 1 failed")


def test_plotting_keeps_a_backend_the_user_chose():
    # digitlab forced Agg on every plot, which switched a notebook's inline backend off:
    # the user's own plt.show() then drew nothing
    import subprocess
    import sys

    code = ("import matplotlib; matplotlib.use('svg'); import matplotlib.pyplot as plt; "
            "from digitlab.viz.plots import pyplot; pyplot(); print(matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "svg"
    code = "from digitlab.viz.plots import pyplot; import matplotlib; pyplot(); " \
           "print(matplotlib.get_backend())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().lower() == "agg"  # the CLI: no display needed


@pytest.mark.parametrize("epochs,warmup,title", [
    (1, 0, "sched.name = cosine: 1 epoch x 10 steps"),
    (3, 1, "sched.name = cosine, warmup 1 epoch: 3 epochs x 10 steps"),
])
def test_schedule_title_counts_epochs(tmp_path, monkeypatch, epochs, warmup, title):
    """A one-epoch run's schedule said "1 epochs"."""
    saved = {}
    monkeypatch.setattr(figures, "save_figure", lambda fig, path: saved.update(fig=fig))
    cfg = apply_overrides(Config(), {"sched.name": "cosine", "train.epochs": epochs,
                                     "sched.warmup_epochs": warmup})
    figures.schedule(cfg, 10, tmp_path / "s.png")
    assert saved["fig"].axes[0].get_title() == title
