"""data.test_shifts: a run reads each digit at five positions (as given and moved N pixels up,
down, left and right) and averages the logits, in the final test, calibration, the report,
predict, serve and export alike; training and checkpoints see the plain model."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from digitlab.config import Config, DataConfig
from digitlab.data import load_dataset
from digitlab.data.loader import normalize
from digitlab.errors import ConfigError
from digitlab.inference.predictor import Predictor
from digitlab.models.shifted import ShiftAveraged, with_test_shifts
from helpers import exported_probabilities


@pytest.fixture(scope="module")
def shifted_run(tmp_path_factory, session_cache) -> Path:
    from digitlab.cli import main

    run = tmp_path_factory.mktemp("shifts") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DIGITLAB_CACHE", str(session_cache))
        code = main(["train", "--dataset", "digits", "--epochs", "2", "--set", "data.test_shifts=1",
                     "--set", "data.val_size=200", "--set", "model.name=cnn",
                     "--set", "model.channels=[8,16]", "--out", str(run)])
    assert code == 0
    return run


@pytest.fixture(scope="module")
def raw_digits() -> np.ndarray:
    return load_dataset(DataConfig(name="digits")).test.images[:16].numpy()


def five_views(model, images: torch.Tensor, pixels: int) -> torch.Tensor:
    """The mean of the logits at the five positions, one view at a time."""
    views = [images] + [torch.roll(images, (dy, dx), dims=(2, 3))
                        for dy, dx in ((pixels, 0), (-pixels, 0), (0, pixels), (0, -pixels))]
    return torch.stack([model(v) for v in views]).mean(0)


@pytest.mark.parametrize("pixels", [1, 2])
def test_shift_averaged_is_the_mean_of_five_views(pixels):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.Flatten(),
                                torch.nn.LazyLinear(10))
    images = torch.rand(4, 1, 28, 28)
    model(images)  # materialize the lazy layer
    with torch.no_grad():
        got = ShiftAveraged(model, pixels)(images)
        assert torch.allclose(got, five_views(model, images, pixels), atol=1e-6)
        assert not torch.allclose(got, model(images), atol=1e-4)  # the shifts change the answer


def test_off_is_the_model_itself():
    model = torch.nn.Linear(2, 2)
    assert with_test_shifts(model, 0) is model


@pytest.mark.parametrize("value", [-1, 3])
def test_out_of_range_is_refused_with_the_range(value):
    with pytest.raises(ConfigError, match=r"data\.test_shifts.*0\.\.2"):
        DataConfig(test_shifts=value)


@pytest.mark.parametrize("value", [1.5, True, "1"])
def test_a_value_that_is_not_an_integer_is_refused(value):
    from digitlab.config.loading import apply_overrides

    with pytest.raises(ConfigError, match=r"data\.test_shifts"):
        apply_overrides(Config(), {"data.test_shifts": value})


def test_a_read_run_reads_each_line_at_three_heights():
    """A sequence model's steps are columns: it is moved up and down only, and the three
    readings' log-probabilities are averaged step by step (a read run refused the setting
    before)."""
    from digitlab.config.loading import apply_overrides
    from digitlab.models import build_model
    from digitlab.models.shifted import LineShiftAveraged, with_test_shifts

    cfg = apply_overrides(Config(), {"train.task": "read", "model.name": "crnn",
                                     "model.channels": [4, 8], "model.hidden": [16],
                                     "data.test_shifts": 1})
    torch.manual_seed(0)
    model = build_model(cfg.model, 10).eval()
    wrapped = with_test_shifts(model, cfg.data.test_shifts)
    assert isinstance(wrapped, LineShiftAveraged)
    assert wrapped.columns_per_step == model.columns_per_step
    lines = torch.rand(2, 1, 32, 40)
    with torch.no_grad():
        views = [model(v).log_softmax(-1)
                 for v in (lines, torch.roll(lines, 1, 2), torch.roll(lines, -1, 2))]
        torch.testing.assert_close(wrapped(lines), torch.stack(views).mean(0))


def test_predictor_reads_five_positions(shifted_run, raw_digits):
    predictor = Predictor.load(shifted_run, device="cpu")
    assert predictor.cfg.data.test_shifts == 1
    assert predictor.describe()["config"]["test_shifts"] == 1
    seen, probs = predictor.read(raw_digits)
    assert np.array_equal(seen, raw_digits)  # the input itself is not moved
    x = normalize(torch.from_numpy(seen), predictor.mean, predictor.std)
    with torch.no_grad():
        expected = (five_views(predictor.model, x, 1) / predictor.temperature).softmax(1)
        once = (predictor.model(x) / predictor.temperature).softmax(1)
    assert torch.allclose(probs, expected, atol=1e-5)
    assert not torch.allclose(probs, once, atol=1e-4)


def test_the_summary_reports_the_shifted_test_and_the_plain_one(shifted_run):
    """summary.json's test accuracy is what predict gives on the test split; the plain
    model's accuracy is kept beside it."""
    dataset = load_dataset(DataConfig(name="digits"))
    predictor = Predictor.load(shifted_run, device="cpu")
    probs = predictor.probabilities(dataset.test.images.numpy())
    accuracy = float((probs.argmax(1) == dataset.test.labels).float().mean())
    summary = json.loads((shifted_run / "summary.json").read_text())
    assert summary["test_shifts"] == 1
    assert accuracy == pytest.approx(summary["test_accuracy"], abs=1e-6)
    x = normalize(dataset.test.images, predictor.mean, predictor.std)
    with torch.no_grad():
        once = float((predictor.model(x).argmax(1) == dataset.test.labels).float().mean())
    assert once == pytest.approx(summary["test_accuracy_read_once"], abs=1e-6)
    evaluation = json.loads((shifted_run / "evaluation.json").read_text())
    assert evaluation["test_accuracy"] == pytest.approx(summary["test_accuracy"], abs=1e-6)


def test_the_temperature_was_fitted_on_the_shifted_logits(shifted_run):
    from digitlab.training.calibration import fit_temperature
    from digitlab.training.setup import training_splits

    cfg = Config.from_toml(shifted_run / "config.toml")
    predictor = Predictor.load(shifted_run, device="cpu")
    dataset = load_dataset(cfg.data)
    _train, val = training_splits(dataset, cfg)
    x = normalize(val.images, predictor.mean, predictor.std)
    with torch.no_grad():
        logits = five_views(predictor.model, x, 1)
    assert fit_temperature(logits, val.labels) == pytest.approx(predictor.temperature, rel=1e-4)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_reads_five_positions_inside_the_file(fmt, shifted_run, raw_digits, tmp_path):
    probs = exported_probabilities(shifted_run, fmt, raw_digits, tmp_path)
    expected = Predictor.load(shifted_run, device="cpu").probabilities(raw_digits)
    assert torch.allclose(probs, expected, atol=1e-5)
