"""Unpacked KMNIST files, whose md5s KMNIST does not publish, are checked by structure:
28x28 images, 60,000 / 10,000 items, labels 0..9 (and the IDX magic numbers). The error
names the file and says what was checked. (Files with an official md5 are checked by md5.)"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from digitlab.config import DataConfig
from digitlab.data import SOURCES, mnist
from digitlab.data.idx import md5sum
from digitlab.errors import DataError
from helpers import tiny_arrays, write_idx_folder


@pytest.fixture
def tiny_sizes(monkeypatch):
    """The official counts scaled down to the tiny arrays (12 train, 5 test)."""
    monkeypatch.setattr(mnist, "SPLIT_SIZES", {"train": 12, "test": 5})


def load_kmnist(root):
    return SOURCES.get("kmnist")(DataConfig(name="kmnist", dir=str(root), download=False))


def test_well_formed_raw_kmnist_files_load(tmp_path, fresh_cache, offline, tiny_sizes):
    write_idx_folder(tmp_path / "root" / "kmnist", tiny_arrays(), gz=False)
    ds = load_kmnist(tmp_path / "root")
    assert ds.classes == mnist.KMNIST.classes and (len(ds.train), len(ds.test)) == (12, 5)
    assert load_kmnist(tmp_path / "root").train.images.shape == (12, 28, 28)  # from the cache


def test_the_wrong_count_is_named(tmp_path, fresh_cache, offline):
    """Tiny files are well-formed IDX, but not 60,000 items: not the official KMNIST file."""
    folder = write_idx_folder(tmp_path / "root" / "kmnist", tiny_arrays(), gz=False)
    with pytest.raises(DataError) as exc:
        load_kmnist(tmp_path / "root")
    message = str(exc.value)
    assert f"{folder / 'train-images-idx3-ubyte'} is not the official KMNIST file" in message
    assert "it holds 12 images, not 60,000" in message
    for checked in ("IDX magic number", "28x28 images", "60,000 train and 10,000 test",
                    "labels 0..9", "train-images-idx3-ubyte.gz, which is checked by md5"):
        assert checked in message
    assert not (fresh_cache / "tensors").exists() or not any((fresh_cache / "tensors").iterdir())


@pytest.mark.parametrize("damage,problem", [
    ("labels", "its labels are not all in 0..9"),
    ("shape", "its images are [27, 29], not 28x28"),
])
def test_bad_labels_and_shapes_are_named(damage, problem, tmp_path, fresh_cache, offline,
                                         tiny_sizes):
    arrays = tiny_arrays()
    if damage == "labels":
        arrays["t10k-labels-idx1-ubyte"] = np.array([0, 1, 2, 3, 200], dtype=np.uint8)
    else:
        arrays["train-images-idx3-ubyte"] = np.zeros((12, 27, 29), dtype=np.uint8)
    write_idx_folder(tmp_path / "root" / "kmnist", arrays, gz=False)
    with pytest.raises(DataError) as exc:
        load_kmnist(tmp_path / "root")
    assert f"is not the official KMNIST file: {problem}." in str(exc.value)


def test_a_bad_magic_number_is_named(tmp_path, fresh_cache, offline, tiny_sizes):
    folder = write_idx_folder(tmp_path / "root" / "kmnist", tiny_arrays(), gz=False)
    data = bytearray((folder / "t10k-images-idx3-ubyte").read_bytes())
    data[3] = 0x99
    (folder / "t10k-images-idx3-ubyte").write_bytes(bytes(data))
    with pytest.raises(DataError, match="is not an IDX file"):
        load_kmnist(tmp_path / "root")


def test_md5_checked_files_are_not_held_to_the_official_counts(tmp_path, fresh_cache):
    """A family whose md5s vouch for tiny files (as the tests' tiny families do) loads them:
    the structure check is for files no md5 covers."""
    folder = write_idx_folder(tmp_path / "tiny", tiny_arrays(), gz=False)
    raw = {base: md5sum(folder / base) for base in mnist.FILES}
    family = dataclasses.replace(mnist.KMNIST, name="tiny", raw_md5=raw)
    assert len(mnist.load(family, str(folder), False).train) == 12
