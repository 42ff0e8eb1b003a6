"""What `digitlab predict` is given to read and write: FIFOs, devices and sockets are refused
by name (never opened, so never a hang), folders are still searched, and a --show folder that
cannot be written is one line, not a traceback."""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from digitlab.cli import main
from digitlab.inference.preprocess import ImageError, open_image

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX file types")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """A checkpoint file of an untrained small MLP: what is read matters here, not accuracy."""
    from digitlab.config import Config, apply_overrides, to_dict
    from digitlab.models import build_model
    from digitlab.training.checkpoint import save_checkpoint

    cfg = apply_overrides(Config(), {"model.name": "mlp", "model.hidden": [16]})
    path = tmp_path_factory.mktemp("model") / "model.safetensors"
    save_checkpoint(path, build_model(cfg.model, 10), None,
                    {"config": to_dict(cfg), "classes": list("0123456789"), "mean": 0.1307,
                     "std": 0.3081})
    return path


@pytest.fixture
def image(tmp_path) -> Path:
    path = tmp_path / "seven.png"
    picture = Image.new("L", (120, 120), 235)
    ImageDraw.Draw(picture).line([(30, 25), (90, 25), (55, 100)], fill=20, width=9)
    picture.save(path)
    return path


class Unblocker:
    """Opens a FIFO's write end if a reader ever waits on it, so that a regression (opening
    the FIFO) fails the test within seconds instead of hanging it."""

    def __init__(self, fifo: Path, after: float = 3.0):
        self.fifo, self.after, self.stop = fifo, after, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        deadline = time.monotonic() + self.after
        while not self.stop.wait(0.05):
            if time.monotonic() < deadline:
                continue
            try:  # succeeds only while a reader has the FIFO open
                os.close(os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                continue

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=5)


def test_a_fifo_is_refused_by_name_without_opening_it(tmp_path, model_file, image, capsys):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    started = time.monotonic()
    with Unblocker(fifo):
        with pytest.raises(ImageError, match="a FIFO, not an image file"):
            open_image(fifo)
        code = main(["predict", str(model_file), str(fifo), str(image)])
    captured = capsys.readouterr()
    assert time.monotonic() - started < 3.0, "predict waited on the FIFO"
    assert code == 1  # the other file is still read
    assert f"{fifo}: a FIFO, not an image file" in captured.err
    assert [line.split("\t")[0] for line in captured.out.splitlines()] == [str(image)]


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null"])
def test_a_device_is_refused_by_name(device, model_file, capsys):
    if not os.path.exists(device):
        pytest.skip(f"no {device} here")
    assert main(["predict", str(model_file), device]) == 1
    assert f"{device}: a character device, not an image file" in capsys.readouterr().err


def test_a_socket_is_refused_by_name(model_file, capsys):
    folder = tempfile.mkdtemp(dir="/tmp")  # short: a socket path has a 108-byte limit
    path = os.path.join(folder, "s.png")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        assert main(["predict", str(model_file), path]) == 1
    os.unlink(path)
    os.rmdir(folder)
    assert f"{path}: a socket, not an image file" in capsys.readouterr().err


def test_folders_skip_special_files_and_are_still_searched(tmp_path, model_file, image, capsys):
    folder = tmp_path / "inputs"
    (folder / "sub").mkdir(parents=True)
    inside = folder / "sub" / "seven.png"
    inside.write_bytes(image.read_bytes())
    os.mkfifo(folder / "pipe.png")
    with Unblocker(folder / "pipe.png"):
        assert main(["predict", str(model_file), str(folder)]) == 0
    assert capsys.readouterr().out.split("\t")[0] == str(inside)


# ---------------------------------------------------------------- --show destinations


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_show_into_an_unwritable_place_is_one_line(where, tmp_path, model_file, image, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("a regular file where a folder is needed")
    show = blocker if where == "a file" else blocker / "shown"
    assert main(["predict", str(model_file), "--show", str(show), str(image)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("digitlab: error: --show ")
    assert str(show) in lines[0] and "Traceback" not in captured.err
    assert captured.out == "" and blocker.read_text().startswith("a regular file")
