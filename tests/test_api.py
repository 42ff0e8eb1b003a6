"""The Python API (digitlab.api): dl.train, dl.load_run and Run, as a notebook uses them."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import digitlab as dl
from digitlab.errors import CheckpointError, ConfigError, UsageError

EPOCHS = 2
SMALL = {"data.name": "digits", "model.name": "cnn", "model.channels": [4, 8],
         "train.device": "cpu"}


@pytest.fixture(scope="module")
def run(tmp_path_factory, session_cache) -> dl.Run:
    """A small cnn trained on the bundled digits through dl.train, once for this module."""
    out = tmp_path_factory.mktemp("api") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DIGITLAB_CACHE", str(session_cache))
        mp.delenv("DIGITLAB_DATA", raising=False)
        return dl.train(dl.Config(), set={**SMALL, "train.epochs": EPOCHS, "train.out": str(out)})


@pytest.fixture(scope="module")
def test_images(run) -> tuple[torch.Tensor, torch.Tensor]:
    from digitlab.data import load_dataset

    test = load_dataset(run.config.data).test
    return test.images[:64], test.labels[:64]


def test_import_is_light():
    code = "import sys, digitlab as dl; print('torch' in sys.modules, sorted(dl.__all__))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.startswith("False ")  # torch loads on first use of dl.train, dl.Config ...
    assert "'load_run'" in out and "'train'" in out and "'Config'" in out


def test_train_returns_a_complete_run(run):
    assert isinstance(run, dl.Run)
    assert isinstance(run.config, dl.Config)
    assert run.config.model.name == "cnn" and run.config.model.channels == (4, 8)
    on_disk = json.loads((run.run_dir / "summary.json").read_text(encoding="utf-8"))
    assert run.summary["test_accuracy"] == on_disk["test_accuracy"]
    assert 0.5 < run.summary["test_accuracy"] <= 1  # 2 epochs of a tiny cnn on digits
    assert len(run.metrics) == EPOCHS
    assert [m["epoch"] for m in run.metrics] == list(range(1, EPOCHS + 1))
    assert all(isinstance(m["train_loss"], float) for m in run.metrics)
    for name in ("evaluation.json", "plots/curves.png", "plots/confusion.png", "report.html"):
        assert (run.run_dir / name).is_file(), name  # the evaluation `digitlab train` runs


def test_model_is_the_trained_one_in_eval_mode(run, test_images):
    from digitlab.data.loader import normalize

    images, labels = test_images
    assert isinstance(run.model, torch.nn.Module) and not run.model.training
    with torch.no_grad():
        logits = run.model(normalize(images, run.predictor.mean, run.predictor.std))
    predicted, probabilities = run.predict(images)
    assert predicted == logits.argmax(dim=1).tolist()
    assert torch.allclose(probabilities, (logits / run.predictor.temperature).softmax(dim=1),
                          atol=1e-6)
    assert probabilities.shape == (len(images), 10)
    accuracy = float((torch.tensor(predicted) == labels).float().mean())
    assert accuracy > 0.5
    # numpy in, the same answers out
    assert run.predict(images.numpy())[0] == predicted


def test_predict_files_like_digitlab_predict(run, test_images, tmp_path):
    from PIL import Image

    images, _labels = test_images
    paths = []
    for i in range(4):  # black ink on white paper, 4x bigger: a scan, not an MNIST array
        path = tmp_path / f"digit{i}.png"
        big = np.kron(255 - images[i].numpy(), np.ones((4, 4), dtype=np.uint8))
        Image.fromarray(big, "L").save(path)
        paths.append(path)
    labels, probabilities = run.predict(paths)
    assert len(labels) == 4 and probabilities.shape == (4, 10)
    for path, label, probs in zip(paths, labels, probabilities, strict=True):
        _seen, expected = run.predictor.predict_file(path)  # what `digitlab predict` does
        assert label == int(expected.argmax())
        assert torch.allclose(probs, expected, atol=1e-6)
    assert run.predict(tmp_path)[0] == labels  # a folder: its image files, sorted
    assert run.predict(str(paths[0]))[0] == labels[:1]


@pytest.mark.parametrize("name", ["curves", "confusion"])
def test_plot_returns_a_figure(run, name):
    from matplotlib.figure import Figure

    fig = run.plot(name)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == (3 if name == "curves" else 2)
    assert fig._repr_png_().startswith(b"\x89PNG")  # what Jupyter shows inline


def test_load_run_round_trip(run):
    again = dl.load_run(run.run_dir)
    assert again == run
    assert (again.config, again.summary, again.metrics) == (run.config, run.summary, run.metrics)
    assert again.predict(np.zeros((1, 28, 28), np.uint8))[0] == \
        run.predict(np.zeros((1, 28, 28), np.uint8))[0]


def test_config_from_toml_and_set(tmp_path, session_cache):
    toml = tmp_path / "small.toml"
    toml.write_text('[data]\nname = "digits"\n[model]\nname = "cnn"\nchannels = [4]\n'
                    '[train]\nepochs = 3\ndevice = "cpu"\n', encoding="utf-8")
    cfg = dl.load_config(toml)
    assert (cfg.data.name, cfg.model.channels, cfg.train.epochs) == ("digits", (4,), 3)
    run = dl.train(toml, set={"train.epochs": 1, "train.out": str(tmp_path / "run")})
    assert run.config.model.channels == (4,) and len(run.metrics) == 1  # set wins over the file


def test_unknown_key_is_a_one_line_config_error(tmp_path):
    out = tmp_path / "never"
    with pytest.raises(ConfigError) as error:
        dl.train(set={"train.epoch": 1, "train.out": str(out)})
    message = str(error.value)
    assert "\n" not in message and "train.epoch" in message and "epochs" in message
    assert not out.exists()  # nothing written


@pytest.mark.parametrize("images, expected", [
    (np.zeros((28, 28), np.uint8), "images[None]"),
    (np.zeros((2, 28, 28), np.float32), "uint8"),
    ([1, 2], "image paths"),
    ([], "no image files"),
])
def test_bad_images_say_what_to_change(run, images, expected):
    with pytest.raises(UsageError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        run.predict(images)


def test_unknown_plot_names_the_choices(run):
    with pytest.raises(UsageError, match="did you mean 'curves'"):
        run.plot("curve")


def test_load_run_on_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(CheckpointError, match="not a finished run directory"):
        dl.load_run(tmp_path)
    with pytest.raises(CheckpointError, match="no such run directory"):
        dl.load_run(tmp_path / "missing")


def test_config_from_toml_reads_a_preset_as_the_cli_does():
    from digitlab.config import build_config

    preset = Path(__file__).parents[1] / "configs" / "robust.toml"
    cfg = dl.Config.from_toml(preset)
    assert cfg == dl.load_config(preset) == build_config(str(preset), [], {})[0]
    assert cfg.train.preset == "robust" and tuple(cfg.model.channels) == (48, 96)


def test_config_from_toml_names_a_bad_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[optim]\nlearning_rate = 0.1\n")
    with pytest.raises(ConfigError, match="optim.learning_rate"):
        dl.Config.from_toml(bad)


def test_predict_takes_a_read_only_array_without_a_warning(run, test_images):
    images = test_images[0].numpy().copy()
    images.flags.writeable = False  # as np.frombuffer and memory-mapped files give them
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        labels, _probs = run.predict(images)
    assert list(labels) == list(run.predict(test_images[0].numpy())[0])
