"""`digitlab evaluate RUN_DIR --images DIR`: both layouts, broken files mixed in, the JSON and
the gallery it writes, and the one-line errors for a folder it cannot use."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digitlab.cli import main
from digitlab.inference.predictor import Predictor, as_label

PER_CLASS = 3  # sklearn digits per class: 30 images, a second or two through the model


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def sklearn_pngs() -> list[tuple[str, Image.Image]]:
    """(label, image): real 8x8 handwriting from sklearn, dark ink on white, as 32x32."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    picked = []
    for label in range(10):
        for i in np.flatnonzero(bunch.target == label)[:PER_CLASS]:
            pixels = (255 - bunch.images[i] * 255 / 16).astype(np.uint8)
            picked.append((str(label), Image.fromarray(pixels).resize((32, 32), Image.NEAREST)))
    return picked


def write_folders(root: Path) -> Path:
    for k, (label, image) in enumerate(sklearn_pngs()):
        (root / label).mkdir(parents=True, exist_ok=True)
        image.save(root / label / f"digit{k:02d}.png")
    return root


def write_labels_csv(root: Path) -> Path:
    rows = ["file,label"]
    for k, (label, image) in enumerate(sklearn_pngs()):
        name = f"scans/page{k % 2}/{k:02d}.png"  # files in sub-folders, named in the CSV
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        image.save(root / name)
        rows.append(f"{name},{label}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def add_broken_files(root: Path, folder: str = "3") -> list[str]:
    """A truncated PNG and a text file named .png; their names relative to root."""
    good = next((root / folder).glob("*.png")).read_bytes()
    (root / folder / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / folder / "text.png").write_text("this is not an image\n")
    return [f"{folder}/text.png", f"{folder}/truncated.png"]


def snapshot(folder: Path) -> dict:
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


@pytest.fixture
def run_dir(digits_run, tmp_path) -> Path:
    """A copy of the shared run, so that the files written here stay in this test."""
    return Path(shutil.copytree(digits_run, tmp_path / "run"))


def test_folders_with_broken_files(run_dir, tmp_path):
    images = write_folders(tmp_path / "my digits")
    broken = add_broken_files(images)
    (images / "README.txt").write_text("outside the label folders\n")
    before = snapshot(images)
    code, out, err = run_cli(["evaluate", str(run_dir), "--images", str(images)])
    assert code == 1  # unreadable files: exit 1, after the report is written
    assert snapshot(images) == before  # nothing written into the user's folder
    for name in broken:
        assert str(images / name) in err
    assert "2 of 32 files could not be read" in err
    assert "accuracy" in out and "most confused" in out and "README.txt" in out

    evaluation = json.loads((run_dir / "evaluation-my-digits.json").read_text())
    counts = evaluation["counts"]
    assert counts == {"files": 32, "read": 30, "unreadable": 2, "ignored": 1,
                      "correct": counts["correct"], "wrong": 30 - counts["correct"]}
    assert evaluation["layout"] == "folders"
    # unreadable files count as errors in `accuracy`, not in `accuracy_readable`
    assert evaluation["accuracy"] == pytest.approx(counts["correct"] / 32)
    assert evaluation["accuracy_readable"] == pytest.approx(counts["correct"] / 30)
    assert sorted(u["file"] for u in evaluation["unreadable"]) == broken
    assert all(u["label"] == "3" and u["reason"] for u in evaluation["unreadable"])
    assert evaluation["ignored"] == ["README.txt"]
    three = evaluation["per_class"]["3"]
    assert (three["support"], three["unreadable"]) == (PER_CLASS + 2, 2)
    assert three["recall"] == pytest.approx(three["correct"] / (PER_CLASS + 2))
    confusion = np.array(evaluation["confusion"])
    assert confusion.shape == (10, 10) and confusion.sum() == 30
    assert np.trace(confusion) == counts["correct"]
    assert sum(p["count"] for p in evaluation["most_confused"]) <= counts["wrong"]

    gallery = run_dir / "plots" / "mistakes-my-digits.png"
    assert evaluation["gallery"] == "plots/mistakes-my-digits.png"
    with Image.open(gallery) as image:
        assert image.format == "PNG" and image.width > 300


def test_labels_csv_matches_predict(run_dir, tmp_path):
    """Every file is read as `digitlab predict` reads it: the mistakes are exactly the files
    whose predict_file label differs from the CSV's, most confident first."""
    images = write_labels_csv(tmp_path / "scans-2024")
    code, out, err = run_cli(["evaluate", str(run_dir), "--images", str(images)])
    assert code == 0, err
    assert err == ""
    evaluation = json.loads((run_dir / "evaluation-scans-2024.json").read_text())
    assert evaluation["layout"] == "labels.csv"
    assert evaluation["counts"]["files"] == 30 and evaluation["unreadable"] == []
    assert evaluation["accuracy"] == evaluation["accuracy_readable"]

    predictor = Predictor.load(run_dir, "cpu")
    expected = set()
    for line in (images / "labels.csv").read_text().splitlines()[1:]:
        name, label = line.split(",")
        _, probs = predictor.predict_file(images / name)
        if str(as_label(predictor.classes[int(probs.argmax())])) != label:
            expected.add(name)
    mistakes = evaluation["mistakes"]
    assert {m["file"] for m in mistakes} == expected
    confidences = [m["confidence"] for m in mistakes]
    assert confidences == sorted(confidences, reverse=True)
    assert (run_dir / "plots" / "mistakes-scans-2024.png").is_file()


def test_labels_csv_missing_file_is_unreadable(run_dir, tmp_path):
    images = write_labels_csv(tmp_path / "csv")
    with open(images / "labels.csv", "a", encoding="utf-8") as f:
        f.write("gone.png,4\n")
    code, _, err = run_cli(["evaluate", str(run_dir), "--images", str(images)])
    assert code == 1
    assert "gone.png" in err
    evaluation = json.loads((run_dir / "evaluation-csv.json").read_text())
    assert [u["file"] for u in evaluation["unreadable"]] == ["gone.png"]
    assert evaluation["per_class"]["4"]["unreadable"] == 1


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_non_regular_file_is_unreadable_not_opened(run_dir, tmp_path):
    images = write_folders(tmp_path / "fifo")
    os.mkfifo(images / "7" / "pipe.png")  # open() would block until a writer comes
    code, _, err = run_cli(["evaluate", str(run_dir), "--images", str(images)])
    assert code == 1
    assert "pipe.png" in err and "FIFO" in err


@pytest.mark.parametrize("layout", ["folders", "csv"])
def test_unknown_label_is_a_one_line_error(run_dir, tmp_path, layout):
    images = tmp_path / "unknown"
    if layout == "folders":
        write_folders(images)
        shutil.copytree(images / "4", images / "four")
    else:
        write_labels_csv(images)
        with open(images / "labels.csv", "a", encoding="utf-8") as f:
            f.write("scans/page0/00.png-again,four\n")
    code, out, err = run_cli(["evaluate", str(run_dir), "--images", str(images)])
    assert code == 2
    assert "'four'" in err and "0, 1, 2" in err
    assert len(err.strip().splitlines()) == 1
    assert not list(run_dir.glob("evaluation-*.json"))


@pytest.mark.parametrize("contents", ["empty", "loose-files", "empty-label-folders"])
def test_folder_in_neither_layout_is_a_usage_error(run_dir, tmp_path, contents):
    images = tmp_path / contents
    images.mkdir()
    if contents == "loose-files":
        Image.new("L", (28, 28)).save(images / "a.png")
    elif contents == "empty-label-folders":
        (images / "3").mkdir()
    code, _, err = run_cli(["evaluate", str(run_dir), "--images", str(images)])
    assert code == 2
    assert err.startswith("digitlab: error: ") and "labels.csv" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("csv_text, line", [
    ("name,digit\na.png,3\n", 1),  # no file,label header
    ("file,label\na.png\n", 2),  # a short row
    ("file,label\na.png,3\nb.png,\n", 3),  # an empty label
    ("file,label\na.png,3\na.png,5\n", 3),  # listed twice
])
def test_bad_labels_csv_names_the_line(run_dir, tmp_path, csv_text, line):
    images = tmp_path / "bad-csv"
    images.mkdir()
    (images / "labels.csv").write_text(csv_text, encoding="utf-8")
    code, _, err = run_cli(["evaluate", str(run_dir), "--images", str(images)])
    assert code == 2
    assert f"labels.csv:{line}:" in err
    assert len(err.strip().splitlines()) == 1


def test_missing_images_folder(run_dir, tmp_path):
    code, _, err = run_cli(["evaluate", str(run_dir), "--images", str(tmp_path / "nope")])
    assert code == 2 and "not a folder" in err


def test_data_dir_and_images_exclude_each_other(run_dir, tmp_path):
    images = write_folders(tmp_path / "imgs")
    code, _, err = run_cli(["evaluate", str(run_dir), "--images", str(images),
                            "--data-dir", str(tmp_path)])
    assert code == 2 and "--data-dir" in err


def test_never_writes_into_the_images_folder(digits_run, tmp_path):
    images = write_folders(tmp_path / "imgs")
    run_dir = Path(shutil.copytree(digits_run, images / "run"))
    before = snapshot(images)
    code, _, err = run_cli(["evaluate", str(run_dir), "--images", str(images)])
    assert code == 2 and "outside the images folder" in err
    assert snapshot(images) == before


def test_not_a_run_dir(tmp_path):
    images = write_folders(tmp_path / "imgs")
    code, _, err = run_cli(["evaluate", str(tmp_path / "no-run"), "--images", str(images)])
    assert code == 2 and err.startswith("digitlab: error: ")


def test_zero_support_class_is_null_not_nan(run_dir, tmp_path):
    """Classes with no files have no recall (null in the JSON, '-' in the table)."""
    images = tmp_path / "only-sevens"
    write_folders(images)
    for folder in images.iterdir():
        if folder.name != "7":
            shutil.rmtree(folder)
    code, out, err = run_cli(["evaluate", str(run_dir), "--images", str(images)])
    assert code == 0, err
    text = (run_dir / "evaluation-only-sevens.json").read_text()
    assert "NaN" not in text
    evaluation = json.loads(text)
    assert evaluation["per_class"]["2"]["support"] == 0
    assert evaluation["per_class"]["2"]["recall"] is None
    assert evaluation["per_class"]["7"]["support"] == PER_CLASS


def test_every_file_unreadable(run_dir, tmp_path):
    """Nothing read: accuracy 0, no accuracy over the files read (null), exit 1, and still
    the JSON and an (empty) gallery."""
    images = tmp_path / "broken"
    (images / "1").mkdir(parents=True)
    (images / "1" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    (images / "1" / "b.jpg").write_text("text")
    code, out, err = run_cli(["evaluate", str(run_dir), "--images", str(images)])
    assert code == 1
    assert "a.png" in err and "b.jpg" in err
    evaluation = json.loads((run_dir / "evaluation-broken.json").read_text())
    assert evaluation["accuracy"] == 0.0 and evaluation["accuracy_readable"] is None
    assert evaluation["counts"]["unreadable"] == 2 and evaluation["mistakes"] == []
    assert (run_dir / "plots" / "mistakes-broken.png").is_file()
