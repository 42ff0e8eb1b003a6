"""Plain helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import dataclasses
import gzip
import os
import re
import socket
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

# Read at import, before any fixture removes it: DIGITLAB_DATA, when set, names the shared
# MNIST folder; else the folder beside this checkout.
_ENV_DATA = os.environ.get("DIGITLAB_DATA", "")
_DEFAULT_SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
MISSING_MNIST = "shared MNIST folder ../shared/data/mnist not found"


def holds_idx_gz(folder: Path) -> bool:
    return folder.is_dir() and all((folder / f"{base}.gz").is_file() for base in MNIST_FILES)


def shared_mnist_dir() -> Path | None:
    """$DIGITLAB_DATA when it is set, else ../shared/data/mnist; None without the 4 files."""
    folder = Path(_ENV_DATA).expanduser() if _ENV_DATA else _DEFAULT_SHARED
    return folder.resolve() if holds_idx_gz(folder) else None


MISSING_CMATERDB = "shared CMATERdb folder ../shared/data/cmaterdb-bangla not found"
CMATERDB_FILES = ("training-images.npz", "testing-images.npz")


def shared_cmaterdb_dir() -> Path | None:
    """cmaterdb-bangla/ beside the shared MNIST folder (or in ../shared/data); None without
    its two .npz files."""
    mnist = shared_mnist_dir()
    root = mnist.parent if mnist is not None else _DEFAULT_SHARED.parent
    folder = root / "cmaterdb-bangla"
    return folder.resolve() if all((folder / n).is_file() for n in CMATERDB_FILES) else None


def mnist_dir_or_skip() -> Path:
    """The shared MNIST folder, or skip the calling test (or fixture) with the reason."""
    folder = shared_mnist_dir()
    if folder is None:
        pytest.skip(MISSING_MNIST)
    return folder


def cmaterdb_dir_or_skip() -> Path:
    """The shared CMATERdb folder, or skip the calling test (or fixture) with the reason."""
    folder = shared_cmaterdb_dir()
    if folder is None:
        pytest.skip(MISSING_CMATERDB)
    return folder


class NetworkBlocked(OSError):
    pass


def _refuse(*args, **kwargs):
    raise NetworkBlocked("network access is disabled by the test suite")


def block_network(monkeypatch) -> None:
    """Make every outgoing connection and DNS lookup in this process fail at once."""
    monkeypatch.setattr(socket.socket, "connect", _refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", _refuse)
    monkeypatch.setattr(socket, "create_connection", _refuse)
    monkeypatch.setattr(socket, "getaddrinfo", _refuse)


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file's bytes: magic 2051 (3-d images) or 2049 (1-d labels), big-endian dims."""
    magic = {3: 2051, 1: 2049}[array.ndim]
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def tiny_arrays() -> dict[str, np.ndarray]:
    """Small MNIST-shaped splits: 12 train and 5 test images; pixel [0, 0] encodes the index."""
    rng = np.random.default_rng(7)

    def images(n: int, offset: int) -> np.ndarray:
        out = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        out[:, 0, 0] = np.arange(offset, offset + n)
        return out

    return {
        "train-images-idx3-ubyte": images(12, 0),
        "train-labels-idx1-ubyte": (np.arange(12) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": images(5, 100),
        "t10k-labels-idx1-ubyte": (np.arange(5) * 3 % 10).astype(np.uint8),
    }


def write_idx_folder(folder: Path, arrays: dict[str, np.ndarray], gz: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for base, array in arrays.items():
        data = idx_bytes(array)
        if gz:
            # mtime=0: the same arrays always give the same bytes, hence the same md5
            (folder / f"{base}.gz").write_bytes(gzip.compress(data, mtime=0))
        else:
            (folder / base).write_bytes(data)
    return folder


def link_folder(source: Path, target: Path, names=None) -> Path:
    """target/<name> -> source/<name> symlinks for the four .gz files (or `names`)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in names or [f"{base}.gz" for base in MNIST_FILES]:
        (target / name).symlink_to(source / name)
    return target


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under root (root included): type, size, mtime; symlink targets too."""
    entries = {}
    for path in [root, *sorted(root.rglob("*"))]:
        st = path.lstat()
        entry = (stat.S_IFMT(st.st_mode), st.st_size, st.st_mtime_ns)
        if path.is_symlink():
            target = path.stat()
            entry += (str(path.readlink()), target.st_size, target.st_mtime_ns)
        entries[str(path.relative_to(root))] = entry
    return entries


def flat(text: str) -> str:
    """Console text with rich's box characters removed and all whitespace collapsed,
    so that a message wrapped inside a panel can be searched as one line."""
    text = re.sub(r"[\u2500-\u257f]", " ", text)
    return " ".join(text.split())


# A one-hidden-layer MLP on the CPU: enough to exercise the training loop in well under a second.
TINY = ["--device", "cpu", "--set", "model.name=mlp", "--set", "model.hidden=[16]"]


def cli(capsys, *argv: str) -> tuple[int, str]:
    """Run `digitlab ARGV` in-process: (exit code, stdout + stderr)."""
    from digitlab.cli import main

    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc) -> None:
    """Terminate a subprocess, and kill it if it does not exit within 15 s."""
    import subprocess

    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=15)


BENGALI = re.compile(r"[\u0980-\u09FF]")  # the Bengali block, vowel signs included


def bengali_share(text: str) -> float:
    """Bengali characters (vowel signs included) against Latin letters, leaving out what is
    never translated: usage synopses, options, METAVARS, {fields}, config.keys, paths."""
    text = re.sub(r"^(usage|ব্যবহার):.*?(\n\n|\Z)", "", text, flags=re.S | re.M)
    text = re.sub(r"--?[\w-]+|\b[A-Z][A-Z_.|]+\b|\{[^}]*\}|\b\w+\.\w+\b|\S*/\S*", "", text)
    bengali = len(BENGALI.findall(text))
    latin = len(re.findall(r"[A-Za-z]", text))
    return bengali / max(bengali + latin, 1)


def sgd_on_one_parameter(lr: float = 0.1):
    """Plain SGD over one 3-element parameter: the smallest optimizer a schedule can drive."""
    import torch

    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(3))], lr=lr)


def run_schedule(schedule, optimizer, epochs: int = 3, batches: int = 5):
    """Drive a digitlab.training.optim.Schedule as the loop does, with a validation loss that
    never improves: (the lr in effect for every batch, the lr after every epoch)."""
    import torch

    used, after_epoch = [], []
    param = optimizer.param_groups[0]["params"][0]
    for _ in range(epochs):
        for _ in range(batches):
            used.append(optimizer.param_groups[0]["lr"])
            param.grad = torch.ones_like(param)
            optimizer.step()
            schedule.after_batch()
        schedule.after_epoch(val_loss=1.0)
        after_epoch.append(optimizer.param_groups[0]["lr"])
    return used, after_epoch


class Fixed(torch.nn.Module):
    """A model that answers class `top` of `n`, whatever it is shown."""

    def __init__(self, n: int, top: int):
        super().__init__()
        self.logits = torch.full((n,), -4.0)
        self.logits[top] = 4.0

    def forward(self, x):
        return self.logits.expand(x.shape[0], -1)


def with_classes(predictor, classes: tuple[str, ...], top: int):
    """The predictor with other class names and a model that always answers class `top`."""
    return dataclasses.replace(predictor, classes=classes, model=Fixed(len(classes), top))


def exported_probabilities(run: Path, fmt: str, digits: np.ndarray, folder: Path) -> torch.Tensor:
    """Export `run` as `fmt` ("onnx" or "torchscript") into `folder`, read uint8 [N, 28, 28]
    `digits` with the file alone, and return its probabilities at the run's temperature: what
    the Predictor's own probabilities must match. Skips when ONNX's extras are missing."""
    from digitlab.inference.export import export
    from digitlab.inference.predictor import Predictor

    if fmt == "onnx":
        pytest.importorskip("onnx", reason="ONNX export needs the export extra")
        ort = pytest.importorskip("onnxruntime", reason="parity needs onnxruntime")
    out = export(run, fmt, folder / f"model.{fmt}")
    pixels = digits.astype(np.float32)[:, None] / 255
    if fmt == "onnx":
        session = ort.InferenceSession(str(out))
        logits = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: pixels})[0])
    else:
        logits = torch.jit.load(str(out))(torch.from_numpy(pixels)).detach()
    return (logits / Predictor.load(run, device="cpu").temperature).softmax(1)


def digit_line(path, digits: list[int]) -> str:
    """A line of scikit-learn digits (the tiny run's own training set: it reads them),
    each upsampled to 48x48, dark on white, 16 pixels apart."""
    from PIL import Image
    from sklearn.datasets import load_digits

    bunch = load_digits()
    picked = [int(np.flatnonzero(bunch.target == d)[0]) for d in digits]
    line = Image.new("L", (16 + 64 * len(digits), 80), 255)
    for k, i in enumerate(picked):
        digit = Image.fromarray((255 - bunch.images[i] * 255 / 16).astype(np.uint8))
        line.paste(digit.resize((48, 48), Image.Resampling.BICUBIC), (16 + 64 * k, 16))
    line.save(path)
    return "".join(map(str, digits))
