"""The `folder` source: ImageFolder layout, class order, both test modes, clear errors naming
the file, and the decoded-tensor cache (a second load does not decode again)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

import digitlab.inference.preprocess as pre
from digitlab.config import DataConfig
from digitlab.data import SOURCES
from digitlab.data.folder import class_order
from digitlab.errors import ConfigError, DataError
from helpers import TINY, cli


def draw_digit(path: Path, label: int, variant: int) -> None:
    """Dark strokes on white paper, one simple shape per class, shifted by `variant`."""
    image = Image.new("L", (48, 48), 255)
    pen = ImageDraw.Draw(image)
    shapes = [
        lambda: pen.ellipse((12 + variant, 8, 36, 40), outline=0, width=4),
        lambda: pen.line((24 + variant, 6, 24, 42), fill=0, width=4),
        lambda: pen.line((8, 8, 40, 40 - variant), fill=0, width=4),
        lambda: pen.rectangle((10, 10 + variant, 38, 38), outline=0, width=4),
    ]
    shapes[label % len(shapes)]()
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def make_folder(root: Path, classes=("0", "1", "2"), per_class: int = 5) -> Path:
    for index, name in enumerate(classes):
        for variant in range(per_class):
            draw_digit(root / name / f"{variant}.png", index, variant)
    return root


def load(root: Path, **fields):
    return SOURCES.get("folder")(DataConfig(name="folder", dir=str(root), **fields))


def test_numeric_class_order():
    assert class_order(["10", "2", "1", "0"]) == ["0", "1", "2", "10"]
    assert class_order(["b", "a10", "a2"]) == ["a10", "a2", "b"]  # not all numbers: text order


def test_holdout_is_stratified_seeded_and_uses_predicts_preprocessing(tmp_path):
    root = make_folder(tmp_path / "digits", classes=("10", "2", "1"), per_class=5)
    dataset = load(root)
    assert dataset.name == "folder"
    assert dataset.classes == ("1", "2", "10")  # numeric, not "1" < "10" < "2"
    # 20% of each class of 5 is 1 image: 3 test, 12 train, every class in both
    assert (len(dataset.train), len(dataset.test)) == (12, 3)
    assert sorted(dataset.test.labels.tolist()) == [0, 1, 2]
    assert torch.bincount(dataset.train.labels).tolist() == [4, 4, 4]
    assert dataset.train.images.dtype == torch.uint8
    assert dataset.train.images.shape == (12, 28, 28)
    again = load(root)
    assert torch.equal(again.test.images, dataset.test.images)  # the same split every time
    # every image is exactly what `digitlab predict` would feed the model
    expected = {pre.preprocess(p).tobytes() for p in sorted(root.rglob("*.png"))}
    seen = {image.numpy().tobytes() for split in (dataset.train, dataset.test)
            for image in split.images}
    assert seen == expected


def test_test_fraction(tmp_path):
    root = make_folder(tmp_path / "digits", per_class=5)
    dataset = load(root, test_fraction=0.4)
    assert (len(dataset.train), len(dataset.test)) == (9, 6)


def test_test_dir(tmp_path):
    train_root = make_folder(tmp_path / "train", per_class=3)
    test_root = make_folder(tmp_path / "test", per_class=2)
    dataset = load(train_root, test_dir=str(test_root))
    assert (len(dataset.train), len(dataset.test)) == (9, 6)  # no hold-out from train
    assert dataset.test.labels.tolist() == [0, 0, 1, 1, 2, 2]


def test_test_dir_needs_the_same_classes(tmp_path):
    train_root = make_folder(tmp_path / "train", classes=("0", "1", "2"), per_class=2)
    test_root = make_folder(tmp_path / "test", classes=("0", "1"), per_class=2)
    with pytest.raises(DataError, match=r"has the classes 0, 1, but data.dir .* has 0, 1, 2"):
        load(train_root, test_dir=str(test_root))


def test_broken_image_is_named(tmp_path):
    root = make_folder(tmp_path / "digits", per_class=2)
    broken = root / "1" / "scan.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(DataError) as error:
        load(root)
    assert str(broken) in str(error.value)
    assert "fix or remove this file" in str(error.value)


def test_non_image_file_is_named_and_hidden_files_are_skipped(tmp_path):
    root = make_folder(tmp_path / "digits", per_class=2)
    (root / "0" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # hidden: skipped
    (root / "README.txt").write_text("files beside the class folders are ignored")
    assert len(load(root).train) + len(load(root).test) == 6
    notes = root / "2" / "notes.txt"
    notes.write_text("not a digit")
    with pytest.raises(DataError, match="not an image file") as error:
        load(root)
    assert str(notes) in str(error.value)


def test_empty_class_and_single_class_are_refused(tmp_path):
    root = make_folder(tmp_path / "digits", per_class=2)
    (root / "7").mkdir()
    with pytest.raises(DataError, match="holds no images") as error:
        load(root)
    assert str(root / "7") in str(error.value)
    single = make_folder(tmp_path / "single", classes=("3",), per_class=2)
    with pytest.raises(DataError, match="at least two"):
        load(single)
    with pytest.raises(DataError, match="no such folder"):
        load(tmp_path / "missing")


def test_a_class_of_one_image_cannot_be_held_out(tmp_path):
    root = make_folder(tmp_path / "digits", per_class=3)
    for extra in ("1.png", "2.png"):
        (root / "2" / extra).unlink()
    with pytest.raises(DataError, match="class '2' has only one image"):
        load(root)


def test_config_checks():
    with pytest.raises(ConfigError, match="data.dir must be set"):
        DataConfig(name="folder")
    with pytest.raises(ConfigError, match="data.test_dir must be empty"):
        DataConfig(name="mnist", test_dir="elsewhere")
    for fraction in (0.0, 1.0, -0.5):
        with pytest.raises(ConfigError, match="data.test_fraction"):
            DataConfig(name="folder", dir="x", test_fraction=fraction)


def test_second_load_reads_the_cache_and_a_changed_file_is_decoded_again(tmp_path,
                                                                         monkeypatch,
                                                                         fresh_cache):
    root = make_folder(tmp_path / "digits", per_class=2)
    calls = []
    real = pre.preprocess

    def counting(path):
        calls.append(Path(path))
        return real(path)

    monkeypatch.setattr(pre, "preprocess", counting)
    first = load(root)
    assert len(calls) == 6
    assert list((fresh_cache / "tensors").glob("folder-*.safetensors"))
    assert not any(p.suffix == ".safetensors" for p in root.rglob("*"))  # user folder untouched
    calls.clear()
    second = load(root)
    assert calls == []
    assert torch.equal(first.train.images, second.train.images)
    changed = root / "0" / "1.png"
    draw_digit(changed, 3, 0)
    os.utime(changed, ns=(1, 10**18))  # a new mtime even on a coarse file system clock
    load(root)
    assert len(calls) == 6  # a new key: the whole folder again, nothing stale


def test_train_on_a_folder_end_to_end(tmp_path, capsys, no_analysis):
    root = make_folder(tmp_path / "digits", per_class=3)
    run = tmp_path / "run"
    code, out = cli(capsys, "train", "--dataset", "folder", "--data-dir", str(root),
                    "--epochs", "1", "--out", str(run), *TINY)
    assert code == 0, out
    assert "6 train / 3 test" in out
    assert f'dir = "{root}"' in (run / "config.toml").read_text()
    code, out = cli(capsys, "predict", str(run), str(root / "1" / "0.png"))
    assert code == 0, out
    assert np.isfinite(float(out.split("\t")[2]))
