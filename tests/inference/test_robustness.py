"""`digitlab bench --parts robustness`: the mouse drawings are seeded and look like the page's,
each set's files read back with their labels, a tiny run is scored on every set, and bad
--parts, --runs and sizes are refused in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from digitlab.cli import main
from digitlab.data.dataset import Split
from digitlab.inference import mousedraw, robustness
from digitlab.inference.mousedraw import CANVAS, SKELETONS, drawing, parse, strokes
from digitlab.inference.preprocess import preprocess
from digitlab.inference.robustness import (
    PRESETS,
    SETS,
    Readings,
    read_files,
    write_mouse,
    write_photos,
    write_pngs,
    write_sklearn,
)
from helpers import flat

# ---------------------------------------------------------------- box-filled 16x16 scans


@pytest.mark.parametrize("binary", [True, False])
def test_box_filled_scans_stretch_the_digit_to_fill_16x16(binary):
    one = np.zeros((28, 28), np.uint8)
    one[4:24, 13:16] = 255  # a thin upright bar: 20 rows, 3 columns, soft edges on the side
    one[4:24, 12] = one[4:24, 16] = 100
    scan = robustness.box_filled(one, binary=binary)
    assert scan.shape == (16, 16) and scan.dtype == np.uint8
    ink = scan < 255  # any ink (dark on white)
    assert ink.any(0).all() and ink.any(1).all()  # touches every side: stretched both ways
    if binary:
        assert set(np.unique(scan).tolist()) <= {0, 255}


def test_eight_by_eight_counts_ink_in_4x4_blocks_as_scikit_learn_did():
    bar = np.zeros((28, 28), np.uint8)
    bar[4:24, 12:16] = 255  # 20 rows x 4 columns: fitted to 32 rows x 6 or 7 columns
    scan = robustness.eight_by_eight(bar)
    assert scan.shape == (8, 8) and scan.dtype == np.uint8
    counts = (255 - scan.astype(np.float64)) * 16 / 255
    assert np.allclose(counts, counts.round(), atol=0.02)  # whole counts 0..16
    assert (counts[:, 3:5] >= 8).all()  # the bar runs down the middle, top to bottom
    assert (counts[:, :2] == 0).all() and (counts[:, 6:] == 0).all()
    assert counts.sum() == pytest.approx(32 * round(4 * 32 / 20) , abs=32)


def test_scan_files_are_labelled_pngs(tmp_path):
    images = np.zeros((3, 28, 28), np.uint8)
    images[:, 6:22, 10:18] = 255
    files = robustness.write_pngs(tmp_path / "s", images, np.array([4, 5, 6]), 5,
                                   robustness.box_filled)
    assert [label for _, label, _ in files] == [4, 5, 6]
    for path, _, _ in files:
        with Image.open(path) as image:
            assert image.size == (16, 16) and image.mode == "L"


# ---------------------------------------------------------------- mouse drawings


def test_drawings_are_seeded():
    first, label = drawing(7, seed=3)
    again, same_label = drawing(7, seed=3)
    assert (label, same_label) == (7, 7)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, drawing(7, seed=4)[0])  # another seed, another hand
    assert not np.array_equal(first, drawing(17, seed=3)[0])  # another 7 of the same series


def test_drawings_look_like_the_page_sends_them():
    images, labels = zip(*(drawing(i) for i in range(20)), strict=True)
    assert sorted(set(labels)) == list(range(10))  # any ten in a row hold every digit
    for image in images:
        assert image.shape == (CANVAS, CANVAS) and image.dtype == np.uint8
        ink = image > 127
        assert 0.01 < ink.mean() < 0.3  # white strokes on a mostly black pad
        assert image.max() == 255 and image.min() == 0
        # anti-aliased edges: grey levels between the pad and the pen, as a canvas draws them
        assert ((image > 0) & (image < 255)).any()


@pytest.mark.parametrize("digit", sorted(SKELETONS))
def test_every_skeleton_draws_one_digit_in_the_pad(digit):
    assert len(SKELETONS) == 10
    rng = np.random.default_rng(digit)
    for skeleton in SKELETONS[digit]:
        for stroke in skeleton:
            points, corners = parse(stroke)
            assert points.shape[1] == 2 and len(points) >= 2 and len(corners) == len(points)
            assert (points >= 0).all() and (points <= 100).all()  # the 100-unit box
    for _ in range(5):
        paths = strokes(digit, rng)
        assert 1 <= len(paths) <= 2
        for path in paths:  # within the pad, up to the tremor at its edge
            assert path.shape[1] == 2 and (path > -3).all() and (path < CANVAS + 3).all()
        ink = mousedraw.draw(paths) > 127
        rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
        # a digit at least a third of the pad tall, never a speck
        assert rows[-1] - rows[0] >= CANVAS // 3 and cols[-1] - cols[0] >= mousedraw.PEN


def test_mouse_files_are_the_drawings(tmp_path):
    files = write_mouse(tmp_path / "mouse", 12, seed=5)
    assert [label for _, label, _ in files] == [i % 10 for i in range(12)]
    for index, (path, _label, _tag) in enumerate(files[:3]):
        with Image.open(path) as image:
            assert (image.format, image.mode, image.size) == ("PNG", "RGBA", (CANVAS, CANVAS))
            assert np.array_equal(np.asarray(image.convert("L")), drawing(index, 5)[0])
        assert preprocess(path).shape == (28, 28)


# ---------------------------------------------------------------- the other sets


def test_sklearn_set_holds_every_digit_as_dark_ink_on_white(tmp_path):
    from sklearn.datasets import load_digits

    digits = load_digits()
    files = write_sklearn(tmp_path / "sklearn")
    assert len(files) == 1797
    assert [label for _, label, _ in files] == digits.target.tolist()
    for index in (0, 1000, 1796):
        with Image.open(files[index][0]) as image:
            pixels = np.asarray(image)
        assert pixels.shape == (8, 8)
        expected = (255 - digits.images[index] * 255 / 16).round()
        assert np.array_equal(pixels, expected.astype(np.uint8))
    readings = read_files(files[:40])
    assert readings.total == 40 and readings.unreadable == 0
    assert readings.labels.tolist() == digits.target[:40].tolist()


def tiny_test_split(count: int = 12) -> Split:
    """Strokes of MNIST's size in 28x28 frames: a bar, a ring, a hook; labels 0..count-1 % 10."""
    import torch

    rng = np.random.default_rng(0)
    images = np.zeros((count, 28, 28), np.uint8)
    for i in range(count):
        top, left = rng.integers(4, 8, 2)
        images[i, top:top + 16, left + 4:left + 7] = 255
        images[i, top:top + 3, left:left + 12] = 255 * (i % 2)
    return Split(torch.from_numpy(images), torch.arange(count) % 10)


def test_mnist_png_set_is_the_tensors(tmp_path):
    split = tiny_test_split()
    files = write_pngs(tmp_path / "png", split.images.numpy(), split.labels.numpy(), 50)
    assert len(files) == 12  # at most the split
    for (path, label, _tag), image, expected in zip(files, split.images, split.labels,
                                                    strict=True):
        assert label == int(expected)
        with Image.open(path) as written:
            assert np.array_equal(np.asarray(written), image.numpy())
    readings = read_files(files)
    assert readings.labels.tolist() == split.labels.tolist()


def test_photo_set_is_jpeg_with_labels_and_features(tmp_path):
    split = tiny_test_split()
    files = write_photos(tmp_path / "photos", split.images.numpy(), split.labels.numpy(), 3)
    assert [label for _, label, _ in files] == [0, 1, 2]
    for path, _label, tag in files:
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
        assert tag and tag != "all"  # plain, or the scene's features
    assert read_files(files).total == 3


# ---------------------------------------------------------------- scoring runs


@pytest.fixture(scope="module")
def bench_json(digits_run, tmp_path_factory) -> dict:
    """The robustness part on the bundled digits, every preset given as the tiny run."""
    import contextlib
    import io

    runs = ",".join(f"{name}={digits_run}" for name in PRESETS)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["bench", "--parts", "robustness", "--dataset", "digits", "--json",
                     "--runs", runs, "--robustness-mnist", "40", "--robustness-photos", "4",
                     "--robustness-mouse", "20", "--robustness-scans", "12"])
    assert code == 0
    return json.loads(out.getvalue())


def test_a_tiny_run_is_scored_on_every_set(bench_json, digits_run):
    result = bench_json["robustness"]
    assert list(result["sets"]) == list(SETS)
    counts = {name: row["count"] for name, row in result["sets"].items()}
    assert counts == {"sklearn": 1797, "photos": 4, "mouse": 20, "scans8": 12, "scans16": 12,
                      "grey16": 12, "tensors": 40, "png": 40}
    summary = json.loads((digits_run / "summary.json").read_text())
    for name in PRESETS:
        assert result["presets"][name] == {"run": str(digits_run),
                                           "train_seconds": summary["train_seconds"]}
    for row in result["sets"].values():
        assert 0 <= row["unreadable"] <= row["count"]
        assert all(0.0 <= row["accuracy"][p] <= 1.0 for p in PRESETS)
        assert len({row["accuracy"][p] for p in PRESETS}) == 1  # one model, one answer
    # the run learned these digits (~94% on their tensors); their PNGs read back the same way
    tensors, png = (result["sets"][s]["accuracy"]["seed"] for s in ("tensors", "png"))
    assert tensors > 0.7
    assert result["png_gap_pp"]["best"] == pytest.approx(100 * (tensors - png))


def test_the_table_shows_every_set_and_preset(bench_json):
    console = Console(record=True, width=120)
    console.print(robustness.table(bench_json["robustness"], "scikit-learn digits"))
    text = flat(console.export_text())
    for name, row in bench_json["robustness"]["sets"].items():
        title = SETS[name].format(dataset="scikit-learn digits")
        accuracy = f"{100 * row['accuracy']['seed']:.2f}%"
        assert f"{title} {row['count']:,} {row['unreadable']:,} {accuracy} {accuracy}" in text
    assert all(name in text for name in PRESETS)
    assert "gap, tensors - PNG (pp)" in text and "training time (s)" in text


def test_presets_without_a_run_are_trained(monkeypatch, digits_run, tmp_path):
    """The training side, with a stand-in for train_preset (a real preset takes minutes)."""
    from digitlab.training import bench as training_bench

    configs = tmp_path / "configs"
    configs.mkdir()
    for name in PRESETS:
        (configs / f"{name}.toml").write_text("")
    trained = []

    def fake_train(name, seed, data_dir, out):
        trained.append((name, seed))
        shutil.copytree(digits_run, out)
        return {"train_seconds": 1.5}

    monkeypatch.setattr(training_bench, "CONFIGS", configs)
    monkeypatch.setattr(training_bench, "train_preset", fake_train)
    sets = {name: Readings(np.zeros((2, 28, 28), np.uint8), np.array([1, 2]), 3)
            for name in SETS}
    monkeypatch.setattr(robustness, "build_sets", lambda test, sizes: sets)
    result = robustness.run_robustness(tiny_test_split(), {"seed": digits_run},
                                       robustness.Sizes(), None, Console(quiet=True))
    assert trained == [("best", 0), ("robust", 0)]
    assert result["presets"]["best"] == {"run": None, "train_seconds": 1.5}
    assert result["presets"]["seed"]["run"] == str(digits_run)
    for row in result["sets"].values():
        assert (row["count"], row["unreadable"]) == (3, 1)
        assert all(0 <= row["accuracy"][p] <= 2 / 3 for p in PRESETS)  # the unreadable is wrong


# ---------------------------------------------------------------- bad input


def one_line_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("digitlab: error: ") and err.count("\n") == 1, err
    return err


def test_unknown_part_is_refused(capsys):
    err = one_line_error(capsys, ["bench", "--parts", "robustness,robust"])
    assert "'robust'" in err and "robustness" in err


@pytest.mark.parametrize("runs, expected", [
    ("fast=RUN", "unknown preset 'fast'"),
    ("best", "expected PRESET=RUN_DIR"),
    ("best=", "expected PRESET=RUN_DIR"),
    ("best=RUN,best=RUN", "best is given twice"),
    ("best=does/not/exist", "no such run directory"),
])
def test_bad_runs_are_refused(capsys, digits_run, runs, expected):
    err = one_line_error(capsys, ["bench", "--parts", "robustness",
                                  "--runs", runs.replace("RUN", str(digits_run))])
    assert expected in err


def test_runs_need_the_robustness_part(capsys, digits_run):
    err = one_line_error(capsys, ["bench", "--parts", "predict", "--runs", f"best={digits_run}"])
    assert "--parts robustness" in err


@pytest.mark.parametrize("flag", ["--robustness-mnist", "--robustness-photos",
                                  "--robustness-mouse", "--robustness-scans"])
def test_sizes_must_be_positive(capsys, flag):
    err = one_line_error(capsys, ["bench", "--parts", "robustness", flag, "0"])
    assert flag in err


def test_a_missing_preset_is_named_before_any_work(capsys, monkeypatch, digits_run, tmp_path):
    from digitlab.training import bench as training_bench

    monkeypatch.setattr(training_bench, "CONFIGS", tmp_path)  # no presets at all
    monkeypatch.setattr(robustness, "build_sets", None)  # would fail if it were reached
    err = one_line_error(capsys, ["bench", "--parts", "robustness", "--dataset", "digits",
                                  "--runs", f"seed={digits_run}"])
    assert str(Path(tmp_path) / "best.toml") in err
