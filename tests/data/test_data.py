"""digitlab.data: IDX parsing, md5 checks, folder layouts and search order, the decoded-tensor
cache, read-only data folders, the offline fallback, and the bundled sources."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import digitlab.data.mnist as mnist
from digitlab.cli import main
from digitlab.config import DataConfig
from digitlab.data import SOURCES
from digitlab.data.idx import md5sum, parse_idx, read_bytes, read_idx
from digitlab.errors import DataError, DataNotFound
from helpers import (
    MNIST_FILES,
    flat,
    idx_bytes,
    link_folder,
    snapshot,
    tiny_arrays,
    write_idx_folder,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

GZ_NAMES = [f"{base}.gz" for base in MNIST_FILES]


def tiny_family(folder, name: str = "tiny") -> mnist.Family:
    """A Family whose official checksums are those of the files in `folder`, so the whole
    find -> verify -> decode -> cache path can run on tiny files."""
    gz = {b: md5sum(folder / f"{b}.gz") for b in MNIST_FILES if (folder / f"{b}.gz").is_file()}
    raw = {b: md5sum(folder / b) for b in MNIST_FILES if (folder / b).is_file()}
    return dataclasses.replace(mnist.MNIST, name=name, title=name.title(), folder=name.title(),
                               mirrors=(), gz_md5=gz, raw_md5=raw)


def assert_matches_arrays(ds, arrays) -> None:
    assert torch.equal(ds.train.images, torch.from_numpy(arrays["train-images-idx3-ubyte"]))
    assert torch.equal(ds.train.labels,
                       torch.from_numpy(arrays["train-labels-idx1-ubyte"].astype(np.int64)))
    assert torch.equal(ds.test.images, torch.from_numpy(arrays["t10k-images-idx3-ubyte"]))
    assert torch.equal(ds.test.labels,
                       torch.from_numpy(arrays["t10k-labels-idx1-ubyte"].astype(np.int64)))
    assert ds.train.labels.dtype == torch.int64 and ds.train.images.dtype == torch.uint8


# ---------------------------------------------------------------- IDX parsing


def test_read_idx_gz_and_raw(tmp_path):
    arrays = tiny_arrays()
    gz = write_idx_folder(tmp_path / "gz", arrays)
    raw = write_idx_folder(tmp_path / "raw", arrays, gz=False)
    for base, array in arrays.items():
        for path in (gz / f"{base}.gz", raw / base):
            parsed = read_idx(path)
            assert parsed.dtype == np.uint8
            assert parsed.shape == array.shape
            np.testing.assert_array_equal(parsed, array)


def test_parse_idx_shapes():
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(parse_idx(idx_bytes(images)), images)
    labels = np.array([1, 2, 3], dtype=np.uint8)
    np.testing.assert_array_equal(parse_idx(idx_bytes(labels)), labels)
    empty = np.zeros((0, 28, 28), dtype=np.uint8)
    assert parse_idx(idx_bytes(empty)).shape == (0, 28, 28)


def test_bad_magic():
    data = (1234).to_bytes(4, "big") + (3).to_bytes(4, "big") + b"abc"
    with pytest.raises(DataError, match=r"thing\.bin is not an IDX file \(magic number 1234"):
        parse_idx(data, "thing.bin")


def test_bad_magic_in_a_file_names_the_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(b"PK\x03\x04" + bytes(100))  # a zip file, not IDX
    with pytest.raises(DataError, match="train-images-idx3-ubyte is not an IDX file"):
        read_idx(path)


@pytest.mark.parametrize("cut", [1, 28 * 28, 28 * 28 * 12 - 1])
def test_truncated_images(cut):
    data = idx_bytes(tiny_arrays()["train-images-idx3-ubyte"])[:-cut]
    with pytest.raises(DataError, match=r"x\.idx holds .* bytes but its header \(12, 28, 28\) "
                                        r"needs .*truncated or corrupt"):
        parse_idx(data, "x.idx")


def test_trailing_bytes_are_rejected():
    data = idx_bytes(np.zeros(5, dtype=np.uint8)) + b"\x00"
    with pytest.raises(DataError, match="truncated or corrupt"):
        parse_idx(data)


def test_too_short_and_truncated_header():
    with pytest.raises(DataError, match="too short to be an IDX file"):
        parse_idx(b"\x00\x00\x08")
    header_only = (2051).to_bytes(4, "big") + (10).to_bytes(4, "big")  # rows, cols missing
    with pytest.raises(DataError, match="truncated IDX header"):
        parse_idx(header_only)


def test_corrupt_and_truncated_gzip(tmp_path):
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    bad.write_bytes(b"this is not gzip data")
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz cannot be read"):
        read_bytes(bad)
    cut = tmp_path / "t10k-images-idx3-ubyte.gz"
    cut.write_bytes(gzip.compress(idx_bytes(tiny_arrays()["t10k-images-idx3-ubyte"]))[:-30])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz cannot be read"):
        read_idx(cut)


def test_md5sum(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 3_000_000)
    assert md5sum(path) == hashlib.md5(b"x" * 3_000_000).hexdigest()
    assert md5sum(path, chunk=7) == md5sum(path)


# ---------------------------------------------------------------- md5 checks


def test_tiny_files_fail_the_official_md5(tiny_idx_dir, offline, fresh_cache):
    with pytest.raises(DataError) as exc:
        SOURCES.get("mnist")(DataConfig(dir=str(tiny_idx_dir)))
    assert not isinstance(exc.value, DataNotFound)
    message = str(exc.value)
    assert str(tiny_idx_dir / "train-images-idx3-ubyte.gz") in message
    assert "does not match the official MNIST file" in message
    assert mnist.MNIST.gz_md5["train-images-idx3-ubyte"] in message
    assert "corrupt or incomplete copy" in message
    assert not (fresh_cache / "tensors").exists()  # nothing decoded from a rejected file


def test_raw_tiny_files_fail_the_official_md5(tmp_path, offline):
    folder = write_idx_folder(tmp_path / "raw", tiny_arrays(), gz=False)
    with pytest.raises(DataError, match=r"raw/train-images-idx3-ubyte does not match the "
                                        r"official MNIST file"):
        SOURCES.get("mnist")(DataConfig(dir=str(folder)))


def test_md5_mismatch_via_cli(tiny_idx_dir, tmp_path, monkeypatch, capsys, offline):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    assert main(["train", "--dataset", "mnist", "--data-dir", str(tiny_idx_dir),
                 "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("digitlab: error: ")
    assert "train-images-idx3-ubyte.gz does not match the official MNIST file" in err
    assert not run.exists()


def test_fashion_files_where_mnist_is_expected(fashion_dir, tmp_path, offline):
    folder = link_folder(fashion_dir, tmp_path / "looks-like-mnist")
    with pytest.raises(DataError) as exc:
        SOURCES.get("mnist")(DataConfig(dir=str(folder), download=False))
    message = str(exc.value)
    assert str(folder / "train-images-idx3-ubyte.gz") in message
    assert "it is the Fashion-MNIST file train-images-idx3-ubyte.gz" in message


def test_one_fashion_file_among_mnist_files(mnist_dir, fashion_dir, tmp_path, offline):
    folder = link_folder(mnist_dir, tmp_path / "mixed", GZ_NAMES[:3])
    (folder / GZ_NAMES[3]).symlink_to(fashion_dir / GZ_NAMES[3])
    with pytest.raises(DataError) as exc:
        SOURCES.get("mnist")(DataConfig(dir=str(folder), download=False))
    message = str(exc.value)
    assert str(folder / "t10k-labels-idx1-ubyte.gz") in message
    assert "the Fashion-MNIST file t10k-labels-idx1-ubyte.gz" in message


def test_official_tables_match_torchvision():
    from torchvision import datasets

    for ours, theirs in ((mnist.MNIST, datasets.MNIST), (mnist.FASHION, datasets.FashionMNIST),
                         (mnist.KMNIST, datasets.KMNIST)):
        resources = [(f"{base}.gz", md5) for base, md5 in ours.gz_md5.items()]
        assert resources == [tuple(r) for r in theirs.resources], ours.name
        assert list(ours.mirrors) == list(theirs.mirrors), ours.name
        assert ours.folder == theirs.__name__
        assert list(ours.classes) == [c.split(" - ")[0]
                                      for c in theirs.classes]
    assert tuple(mnist.MNIST.gz_md5) == mnist.FILES


def test_known_md5s_name_the_file():
    md5 = mnist.FASHION.gz_md5["train-images-idx3-ubyte"]
    assert mnist.known_file(md5) == "the Fashion-MNIST file train-images-idx3-ubyte.gz"
    md5 = mnist.MNIST.raw_md5["t10k-labels-idx1-ubyte"]
    assert mnist.known_file(md5) == "the MNIST file t10k-labels-idx1-ubyte"
    assert mnist.known_file("0" * 32) is None


@pytest.mark.parametrize("family", [mnist.MNIST, mnist.FASHION], ids=lambda f: f.name)
def test_shared_files_match_the_official_md5s(family, mnist_dir):
    folder = mnist_dir if family is mnist.MNIST else mnist_dir.parent / "fashion-mnist"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    for base in mnist.FILES:
        assert md5sum(folder / f"{base}.gz") == family.gz_md5[base]
        raw = hashlib.md5(gzip.decompress((folder / f"{base}.gz").read_bytes())).hexdigest()
        assert raw == family.raw_md5[base]


# ---------------------------------------------------------------- layouts


@pytest.mark.parametrize("layout", ["{root}", "{root}/Tiny/raw", "{root}/tiny"])
@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_accepted_layouts_with_tiny_files(tmp_path, fresh_cache, layout, gz):
    root = tmp_path / "root"
    folder = write_idx_folder(tmp_path / layout.format(root="root"), tiny_arrays(), gz=gz)
    ds = mnist.load(tiny_family(folder), str(root), allow_download=False)
    assert ds.origin == str(folder)
    assert_matches_arrays(ds, tiny_arrays())


def test_dotted_idx_names_are_found(tmp_path, fresh_cache, monkeypatch):
    monkeypatch.setattr(mnist, "SPLIT_SIZES", {"train": 12, "test": 5})  # no md5: structure
    folder = write_idx_folder(tmp_path / "d", tiny_arrays(), gz=False)
    for base in MNIST_FILES:  # "train-images.idx3-ubyte", as some unpackers name them
        (folder / base).rename(folder / base.replace("-idx", ".idx"))
    family = dataclasses.replace(tiny_family(tmp_path), raw_md5={})
    assert_matches_arrays(mnist.load(family, str(folder), False), tiny_arrays())


def test_images_and_labels_that_do_not_form_a_split(tmp_path, fresh_cache):
    arrays = tiny_arrays()
    arrays["train-labels-idx1-ubyte"] = arrays["train-labels-idx1-ubyte"][:-1]
    folder = write_idx_folder(tmp_path / "bad", arrays)
    with pytest.raises(DataError, match="do not form a split"):
        mnist.load(tiny_family(folder), str(folder), False)


def test_labels_file_in_place_of_images(tmp_path, fresh_cache):
    arrays = tiny_arrays()
    arrays["t10k-images-idx3-ubyte"] = arrays["t10k-labels-idx1-ubyte"]
    folder = write_idx_folder(tmp_path / "swapped", arrays)
    with pytest.raises(DataError, match="do not form a split"):
        mnist.load(tiny_family(folder), str(folder), False)


def test_incomplete_folder_is_not_found(tmp_path, fresh_cache):
    folder = write_idx_folder(tmp_path / "three", tiny_arrays())
    (folder / GZ_NAMES[1]).unlink()
    with pytest.raises(DataNotFound) as exc:
        mnist.load(tiny_family(tmp_path / "three"), str(folder), allow_download=False)
    message = str(exc.value)
    assert "data.download is off" in message
    assert f"{folder} has only" in message and GZ_NAMES[0] in message
    assert exc.value.dataset == "tiny"


def test_torchvision_layout_with_the_real_files(mnist_dir, tmp_path, offline):
    raw = link_folder(mnist_dir, tmp_path / "root" / "MNIST" / "raw")
    ds = SOURCES.get("mnist")(DataConfig(dir=str(tmp_path / "root"), download=False))
    assert ds.origin == str(raw)
    assert (len(ds.train), len(ds.test)) == (60000, 10000)
    assert ds.train.images.shape == (60000, 28, 28) and ds.train.images.dtype == torch.uint8
    assert sorted(ds.test.labels.unique().tolist()) == list(range(10))
    assert ds.train.labels[:5].tolist() == [5, 0, 4, 1, 9]  # MNIST's well-known first labels


# ---------------------------------------------------------------- search order


def test_search_roots(monkeypatch, tmp_path, fresh_cache):
    roots = mnist.search_roots("")
    assert [r for r, _ in roots] == [None, None, fresh_cache / "data"]
    monkeypatch.setenv("DIGITLAB_DATA", str(tmp_path / "env"))
    roots = mnist.search_roots(str(tmp_path / "cli"))
    assert [r for r, _ in roots] == [tmp_path / "cli", tmp_path / "env", fresh_cache / "data"]
    assert [origin for _, origin in roots] == ["data.dir / --data-dir", "$DIGITLAB_DATA",
                                               "user cache"]


def test_search_order_dir_then_env_then_cache(monkeypatch, tmp_path, fresh_cache):
    arrays = tiny_arrays()
    given = write_idx_folder(tmp_path / "given", arrays)
    env = write_idx_folder(tmp_path / "env", arrays)
    cached = write_idx_folder(fresh_cache / "data" / "tiny", arrays)
    empty = tmp_path / "empty"
    empty.mkdir()
    family = tiny_family(given)
    monkeypatch.setenv("DIGITLAB_DATA", str(env))
    assert mnist.load(family, str(given), False).origin == str(given)
    assert mnist.load(family, "", False).origin == str(env)
    assert mnist.load(family, str(empty), False).origin == str(env)  # nothing there: go on
    monkeypatch.delenv("DIGITLAB_DATA")
    assert mnist.load(family, "", False).origin == str(cached)


def test_not_found_lists_every_place_looked(monkeypatch, tmp_path, fresh_cache):
    monkeypatch.setenv("DIGITLAB_DATA", str(tmp_path / "env-missing"))
    with pytest.raises(DataNotFound) as exc:
        mnist.load(mnist.MNIST, str(tmp_path / "given-missing"), allow_download=False)
    message = str(exc.value)
    assert "MNIST was not found" in message
    assert f"{tmp_path / 'given-missing'} (data.dir / --data-dir): does not exist" in message
    assert f"{tmp_path / 'env-missing'} ($DIGITLAB_DATA): does not exist" in message
    assert f"{fresh_cache / 'data'} (user cache)" in message
    for name in GZ_NAMES:
        assert name in message
    assert "DIGITLAB_DATA" in message


# ---------------------------------------------------------------- the decoded-tensor cache


def cache_entries(cache) -> list:
    return sorted(p.relative_to(cache).as_posix() for p in (cache / "tensors").rglob("*")
                  if p.is_file())


def test_cache_is_written_reused_and_repaired(tiny_idx_dir, fresh_cache, monkeypatch):
    family = tiny_family(tiny_idx_dir)
    before = snapshot(tiny_idx_dir)
    ds = mnist.load(family, str(tiny_idx_dir), False)
    assert_matches_arrays(ds, tiny_arrays())
    entries = cache_entries(fresh_cache)
    assert len(entries) == 2
    assert entries[0].startswith("tensors/tiny-") and entries[0].endswith("/test.safetensors")
    assert entries[1].endswith("/train.safetensors")
    assert snapshot(tiny_idx_dir) == before  # the data folder is only read

    def no_decoding(path):
        raise AssertionError(f"decoded {path} again although it is cached")

    # a second load comes from the cache: nothing is parsed
    with monkeypatch.context() as m:
        m.setattr(mnist, "read_idx", no_decoding)
        assert_matches_arrays(mnist.load(family, str(tiny_idx_dir), False), tiny_arrays())

    # a damaged entry is never trusted: decoded again and rewritten
    train_entry = fresh_cache / entries[1]
    train_entry.write_bytes(train_entry.read_bytes()[:50])
    assert_matches_arrays(mnist.load(family, str(tiny_idx_dir), False), tiny_arrays())
    assert torch.equal(load_file(train_entry)["images"],
                       torch.from_numpy(tiny_arrays()["train-images-idx3-ubyte"]))
    assert not list(fresh_cache.rglob("*.tmp"))


def test_cache_entry_of_garbage_is_redecoded(tiny_idx_dir, fresh_cache):
    family = tiny_family(tiny_idx_dir)
    mnist.load(family, str(tiny_idx_dir), False)
    for entry in (fresh_cache / "tensors").rglob("*.safetensors"):
        entry.write_bytes(b"\x00" * 16)
    assert_matches_arrays(mnist.load(family, str(tiny_idx_dir), False), tiny_arrays())


def test_cache_key_follows_file_content(tmp_path, fresh_cache):
    first = tiny_arrays()
    folder = write_idx_folder(tmp_path / "v1", first)
    mnist.load(tiny_family(folder), str(folder), False)
    second = {k: (255 - v if v.ndim == 3 else v) for k, v in first.items()}
    folder2 = write_idx_folder(tmp_path / "v2", second)
    assert_matches_arrays(mnist.load(tiny_family(folder2), str(folder2), False), second)
    assert len(list((fresh_cache / "tensors").iterdir())) == 2


def test_real_mnist_never_written_and_cached(mnist_dir, tmp_path, fresh_cache, monkeypatch,
                                             capsys, offline):
    """Load and train one epoch from a folder of links to the shared files: the folder (and
    the shared one) stay byte-for-byte and mtime-for-mtime unchanged; decoded tensors go to
    DIGITLAB_CACHE/tensors."""
    links = link_folder(mnist_dir, tmp_path / "user-data")
    before_links, before_shared = snapshot(links), snapshot(mnist_dir)
    monkeypatch.chdir(tmp_path)

    ds = SOURCES.get("mnist")(DataConfig(dir=str(links)))
    assert ds.origin == str(links)
    entries = cache_entries(fresh_cache)
    assert entries and all(e.startswith("tensors/mnist-") for e in entries)
    assert {e.rsplit("/", 1)[1] for e in entries} == {"train.safetensors", "test.safetensors"}

    run = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--data-dir", str(links), "--out", str(run)]) == 0
    capsys.readouterr()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["dataset"] == "mnist" and summary["dataset_origin"] == str(links)
    assert snapshot(links) == before_links
    assert snapshot(mnist_dir) == before_shared
    assert cache_entries(fresh_cache) == entries
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh-cache", "run", "user-data"]


# ---------------------------------------------------------------- offline behaviour


def offline_default_run(tmp_path, monkeypatch, capsys) -> tuple[str, object]:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    run = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--out", str(run)]) == 0
    captured = capsys.readouterr()
    assert list(cwd.iterdir()) == []
    return captured.out + captured.err, run


def test_offline_default_run_falls_back_to_digits(tmp_path, fresh_cache, monkeypatch, capsys,
                                                  offline):
    output, run = offline_default_run(tmp_path, monkeypatch, capsys)
    text = flat(output)
    assert "MNIST was not found" in text
    assert "DIGITLAB_DATA" in text
    assert "Falling back to the bundled 'digits' dataset" in text
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["dataset"] == "digits"
    notice = summary["dataset_notice"]
    assert "MNIST was not found" in notice and "DIGITLAB_DATA" in notice
    for name in GZ_NAMES:
        assert name in notice
    config = tomllib.loads((run / "config.toml").read_text())
    assert config["data"]["name"] == "digits"
    assert 'name = "digits"' in (run / "config.toml").read_text()


def test_offline_fallback_notice_is_shown_in_full(tmp_path, fresh_cache, monkeypatch, capsys,
                                                  offline):
    """Every word of the notice reaches the console (a rich Panel once cropped long lines)."""
    output, _ = offline_default_run(tmp_path, monkeypatch, capsys)
    text = flat(output)
    for name in GZ_NAMES:
        assert name in text
    assert "network access is disabled by the test suite" in text  # the download error


@pytest.mark.parametrize("how", ["--dataset", "--set", "--config"])
def test_offline_explicit_mnist_fails_with_exit_2(tmp_path, fresh_cache, monkeypatch, capsys,
                                                  offline, how):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    run = tmp_path / "run"
    choice = {"--dataset": ["--dataset", "mnist"],
              "--set": ["--set", "data.name=mnist"],
              "--config": ["--config", str(tmp_path / "mnist.toml")]}[how]
    (tmp_path / "mnist.toml").write_text('[data]\nname = "mnist"\n[train]\nepochs = 1\n')
    assert main(["train", *choice, "--epochs", "1", "--out", str(run)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("digitlab: error: ")
    text = flat(captured.err)
    assert "MNIST was not found" in text
    assert "download failed" in text
    for name in GZ_NAMES:
        assert name in text
    assert "DIGITLAB_DATA" in text
    assert "Falling back" not in captured.out + captured.err
    assert not run.exists()
    assert list(cwd.iterdir()) == []


# ---------------------------------------------------------------- bundled sources


def test_digits_source():
    first = SOURCES.get("digits")(DataConfig(name="digits"))
    second = SOURCES.get("digits")(DataConfig(name="digits"))
    assert len(first.train) + len(first.test) == 1797
    assert abs(len(first.test) - 0.2 * 1797) < 1  # an 80/20 split
    for split in (first.train, first.test):
        assert split.images.shape == (len(split), 28, 28)
        assert split.images.dtype == torch.uint8
        assert split.labels.dtype == torch.int64
        assert sorted(split.labels.unique().tolist()) == list(range(10))
        assert int(split.images.max()) == 255
        # MNIST framing: the digit sits in the middle 20x20, the 4-pixel border is empty
        assert not split.images[:, :4].any() and not split.images[:, -4:].any()
        assert not split.images[:, :, :4].any() and not split.images[:, :, -4:].any()
    for a, b in ((first.train, second.train), (first.test, second.test)):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert first.classes == tuple(str(i) for i in range(10))


def test_digits_split_sizes():
    """80/20 with the test share rounded up, as sklearn's train_test_split(test_size=0.2)."""
    ds = SOURCES.get("digits")(DataConfig(name="digits"))
    assert (len(ds.train), len(ds.test)) == (1437, 360)


def test_digits_split_does_not_depend_on_the_global_seed():
    torch.manual_seed(1)
    first = SOURCES.get("digits")(DataConfig(name="digits"))
    torch.manual_seed(2)
    second = SOURCES.get("digits")(DataConfig(name="digits"))
    assert torch.equal(first.test.labels, second.test.labels)
    assert torch.equal(first.test.images, second.test.images)


def test_synthetic_source_is_deterministic():
    torch.manual_seed(1)
    first = SOURCES.get("synthetic")(DataConfig(name="synthetic"))
    torch.manual_seed(2)
    second = SOURCES.get("synthetic")(DataConfig(name="synthetic"))
    assert (len(first.train), len(first.test)) == (2000, 500)
    assert len(first.classes) == 10
    for a, b in ((first.train, second.train), (first.test, second.test)):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
        assert a.images.dtype == torch.uint8 and a.images.shape[1:] == (28, 28)
        assert sorted(a.labels.unique().tolist()) == list(range(10))
