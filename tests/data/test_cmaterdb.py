"""The CMATERdb source (Bengali digits) and the bilingual set: finding and verifying the files,
converting them as predict does, the cache, broken files, offline use and downloads."""

from __future__ import annotations

import hashlib
import io
import shutil
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from digitlab.cli import main
from digitlab.config.data import DataConfig
from digitlab.data import cmaterdb
from digitlab.data.sources import load_dataset
from digitlab.errors import DataError, DataNotFound
from helpers import shared_mnist_dir

BENGALI = tuple("০১২৩৪৫৬৭৮৯")


def listing(folder: Path) -> dict[str, tuple[int, float]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime) for p in folder.iterdir()}


def test_classes_are_the_bengali_digits_in_value_order():
    assert cmaterdb.CLASSES == BENGALI
    assert [int(c) for c in cmaterdb.CLASSES] == list(range(10))  # Python reads them as digits


def test_shared_files_load_converted_like_predict_and_are_not_written(cmater_dir, session_cache):
    before = listing(cmater_dir)
    data = load_dataset(DataConfig(name="cmaterdb", dir=str(cmater_dir)))
    assert (data.name, data.classes) == ("cmaterdb", BENGALI)
    assert (len(data.train), len(data.test)) == (5000, 1000)
    assert data.train.images.dtype == torch.uint8 and data.train.images.shape[1:] == (28, 28)
    assert torch.equal(data.test.labels.bincount(), torch.full((10,), 100))
    images = data.train.images.float()
    # white ink on black, the digit inside MNIST's 20x20 box, centred by mass
    assert images[:, 0].max() == 0 and images[:, :, 0].max() == 0
    assert 0.08 < images.mean() / 255 < 0.3
    ys = torch.arange(28.0)
    mass = images.sum((1, 2))
    cy = (images.sum(2) * ys).sum(1) / mass
    assert (cy - 13.5).abs().median() < 1.0
    # the very function predict uses, on the first test image
    from PIL import Image

    from digitlab.inference.preprocess import to_mnist

    grey, _ = cmaterdb.read_npz(cmater_dir / "testing-images.npz")
    assert np.array_equal(to_mnist(Image.fromarray(grey[0])), data.test.images[0].numpy())
    assert listing(cmater_dir) == before  # nothing written beside the user's files
    assert any(session_cache.glob("tensors/cmaterdb-*/train.safetensors"))


def test_converted_splits_come_from_the_cache_when_the_files_are_gone(cmater_dir, tmp_path,
                                                                       offline):
    copy = tmp_path / "copy"
    shutil.copytree(cmater_dir, copy)
    first = load_dataset(DataConfig(name="cmaterdb", dir=str(copy)))
    shutil.rmtree(copy)
    again = load_dataset(DataConfig(name="cmaterdb", dir=str(copy), download=False))
    assert torch.equal(first.test.images, again.test.images)
    assert "tensors" in again.origin


@pytest.mark.parametrize("damage", ["flipped", "truncated"])
def test_a_damaged_file_is_named_with_the_remedy(cmater_dir, tmp_path, damage):
    copy = tmp_path / "copy"
    shutil.copytree(cmater_dir, copy)
    path = copy / "testing-images.npz"
    data = bytearray(path.read_bytes())
    if damage == "flipped":
        data[len(data) // 2] ^= 0xFF
    else:
        del data[len(data) // 2:]
    path.write_bytes(bytes(data))
    with pytest.raises(DataError) as info:
        load_dataset(DataConfig(name="cmaterdb", dir=str(copy)))
    message = str(info.value)
    assert str(path) in message and "sha256" in message and "Replace it" in message
    assert ("truncated" in message) == (damage == "truncated")
    assert "\n" not in message


def test_the_cli_reports_a_damaged_file_in_one_line_with_exit_2(cmater_dir, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(cmater_dir, copy)
    (copy / "training-images.npz").write_bytes(b"PK\x03\x04 not really")
    code = main(["train", "--dataset", "cmaterdb", "--data-dir", str(copy), "--epochs", "1",
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "training-images.npz" in err and "Traceback" not in err


def test_offline_without_the_files_says_where_it_looked_and_what_to_do(tmp_path, fresh_cache,
                                                                       offline):
    with pytest.raises(DataNotFound) as info:
        load_dataset(DataConfig(name="cmaterdb", dir=str(tmp_path)))
    message = str(info.value)
    assert "CMATERdb was not found" in message and "download failed" in message
    assert str(tmp_path) in message and "DIGITLAB_DATA" in message
    assert "training-images.npz" in message


def test_download_off_says_so(tmp_path, fresh_cache):
    with pytest.raises(DataNotFound, match="data.download is off"):
        load_dataset(DataConfig(name="cmaterdb", dir=str(tmp_path), download=False))


class FakeResponse(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_download_checks_sha256_prints_the_licence_and_keeps_the_files_in_the_cache(
        cmater_dir, tmp_path, fresh_cache, monkeypatch, capsys):
    urls = []

    def fake_urlopen(url, timeout):
        urls.append(url)
        return FakeResponse((cmater_dir / url.rsplit("/", 1)[1]).read_bytes())

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    data = load_dataset(DataConfig(name="cmaterdb", dir=str(tmp_path / "empty")))
    assert len(data.train) == 5000
    assert urls == [cmaterdb.MIRROR + name for name in cmaterdb.FILES.values()]
    assert "non-commercial" in capsys.readouterr().err
    kept = fresh_cache / "data" / "cmaterdb-bangla" / "testing-images.npz"
    assert hashlib.sha256(kept.read_bytes()).hexdigest() == cmaterdb.SHA256["test"]


def test_a_download_with_the_wrong_bytes_is_refused_and_not_kept(tmp_path, fresh_cache,
                                                                 monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda url, timeout: FakeResponse(b"<html>rate limited</html>"))
    with pytest.raises(DataNotFound, match="sha256"):
        load_dataset(DataConfig(name="cmaterdb", dir=str(tmp_path)))
    assert not (fresh_cache / "data" / "cmaterdb-bangla" / "training-images.npz").exists()


def test_read_npz_refuses_pickles_and_wrong_shapes(tmp_path):
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, images=np.array([object()], dtype=object), labels=np.zeros(1))
    with pytest.raises(DataError, match="not a readable CMATERdb archive"):
        cmaterdb.read_npz(pickled)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, images=np.zeros((3, 28, 28), np.uint8), labels=np.zeros(3, np.int64))
    with pytest.raises(DataError, match=r"not CMATERdb's \[N, 32, 32, 3\]"):
        cmaterdb.read_npz(wrong)


def test_convert_reads_made_up_digits_like_predict(tmp_path):
    grey = np.full((2, 32, 32), 255, np.uint8)
    grey[0, 6:26, 14:18] = 0  # a dark vertical bar on white
    grey[1, 8:24, 8:24] = 0
    grey[1, 12:20, 12:20] = 255  # a square ring
    out = cmaterdb.convert(grey, tmp_path / "made.npz")
    assert out.shape == (2, 28, 28) and out.dtype == torch.uint8
    assert out[0, 4:24].amax() == 255 and out[0, :, :4].amax() == 0  # 20 px tall, centred
    assert out[1, 14, 14] < 64 < out[1, 5, 14]  # the hole stays open


def test_bilingual_joins_both_scripts_as_twenty_classes(cmater_dir):
    root = cmater_dir.parent
    if shared_mnist_dir() is None or not (root / "mnist").is_dir():
        pytest.skip("the shared MNIST folder must sit beside cmaterdb-bangla")
    data = load_dataset(DataConfig(name="mnist+cmaterdb", dir=str(root)))
    assert data.classes == tuple("0123456789") + BENGALI
    counts = data.test.labels.bincount()
    assert len(counts) == 20 and counts[10:].tolist() == [100] * 10
    assert (len(data.train), len(data.test)) == (65_000, 11_000)
