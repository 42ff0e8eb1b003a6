"""Temperature scaling and ECE: the pure functions on synthetic logits whose true temperature
is known, a real run with a validation split (T in both checkpoints, ECE on the test split
before and after), a run without one (T = 1, and why), and checkpoints written before
calibration existed or with a crafted temperature."""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from pathlib import Path

import pytest
import torch

from digitlab.cli import main
from digitlab.config import Config, apply_overrides, to_dict
from digitlab.errors import CheckpointError
from digitlab.inference.predictor import Predictor
from digitlab.models import build_model
from digitlab.training.calibration import (
    ECE_BINS,
    NO_VALIDATION,
    NOT_FINITE,
    T_RANGE,
    calibration_line,
    confidence_bins,
    expected_calibration_error,
    fit_temperature,
    nll,
    unfitted,
)
from digitlab.training.checkpoint import load_checkpoint, save_checkpoint, set_calibration
from helpers import TINY, cli


def calibrated_logits(n: int, num_classes: int = 10, seed: int = 0):
    """Logits z and labels drawn from softmax(z): calibrated at T = 1 by construction, so
    z * k is calibrated at T = k."""
    generator = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(n, num_classes, generator=generator)
    labels = torch.multinomial(logits.softmax(dim=1), 1, generator=generator).squeeze(1)
    return logits, labels


# ---------------------------------------------------------------- fit_temperature


@pytest.mark.parametrize("k", [0.4, 1.0, 2.5, 6.0])
def test_fit_temperature_recovers_a_known_temperature(k):
    logits, labels = calibrated_logits(20_000)
    assert fit_temperature(logits * k, labels) == pytest.approx(k, rel=0.05)


def test_the_fitted_temperature_minimises_the_nll():
    logits, labels = calibrated_logits(2_000, seed=1)
    logits = logits * 2
    t = fit_temperature(logits, labels)
    best = nll(logits, labels, t)
    for factor in (0.9, 0.99, 1.01, 1.1):
        assert nll(logits, labels, t * factor) >= best


def test_fit_temperature_is_deterministic_and_bounded(monkeypatch):
    """The work is a fixed number of passes over the logits (a bisection), whatever the
    machine: counted, not timed (a timed check failed on a busy CI machine)."""
    from digitlab.training.calibration import SEARCH_STEPS

    logits, labels = calibrated_logits(10_000, seed=2)
    passes = []
    real_softmax = torch.Tensor.softmax
    monkeypatch.setattr(torch.Tensor, "softmax",
                        lambda self, *a, **k: passes.append(1) or real_softmax(self, *a, **k))
    first = fit_temperature(logits * 3, labels)
    assert 0 < len(passes) <= SEARCH_STEPS + 2
    assert fit_temperature(logits * 3, labels) == first


def test_fit_temperature_edge_cases_stay_in_range():
    labels = torch.arange(10)
    separable = 100 * torch.eye(10)  # every answer right with a huge margin: T wants to be 0
    assert fit_temperature(separable, labels) == T_RANGE[0]
    constant = torch.zeros(10, 10)  # no signal at all: any T gives the same NLL
    assert T_RANGE[0] <= fit_temperature(constant, labels) <= T_RANGE[1]
    assert fit_temperature(torch.full((10, 10), float("nan")), labels) == 1.0
    assert fit_temperature(torch.zeros(0, 10), torch.zeros(0, dtype=torch.long)) == 1.0


# ---------------------------------------------------------------- ECE


def exactly_calibrated(levels=(0.55, 0.7, 0.9, 1.0), per_level: int = 100):
    """Two-class probabilities where, at every confidence p, exactly p of the answers (class
    0) are right."""
    probs, labels = [], []
    for p in levels:
        right = round(p * per_level)
        probs += [[p, 1 - p]] * per_level
        labels += [0] * right + [1] * (per_level - right)
    return torch.tensor(probs, dtype=torch.float64), torch.tensor(labels)


def test_ece_of_perfectly_calibrated_predictions_is_zero():
    probs, labels = exactly_calibrated()
    assert expected_calibration_error(probs, labels) == pytest.approx(0, abs=1e-9)


def test_ece_of_large_calibrated_samples_is_small():
    logits, labels = calibrated_logits(50_000, seed=3)
    assert expected_calibration_error(logits.softmax(dim=1), labels) < 0.01
    assert expected_calibration_error((logits * 2).softmax(dim=1), labels) > 0.05


def test_ece_measures_the_confidence_gap():
    probs = torch.tensor([[0.9, 0.1]] * 10)
    labels = torch.tensor([0] * 6 + [1] * 4)  # 90% confident, 60% right
    assert expected_calibration_error(probs, labels) == pytest.approx(0.3)


def test_confidence_bins_are_right_closed():
    probs = torch.tensor([[0.5, 0.5], [1.0, 0.0], [0.625, 0.375]])  # exact in binary
    count, confidence, accuracy = confidence_bins(probs, torch.tensor([0, 0, 1]), bins=4)
    assert count.tolist() == [0, 1, 1, 1]  # 0.5 in (0.25, 0.5]; 1.0 in the last bin
    assert confidence.tolist() == [0, 0.5, 0.625, 1.0] and accuracy.tolist() == [0, 1, 0, 1]


# ---------------------------------------------------------------- a real run


@pytest.fixture(scope="module")
def calibrated_run(tmp_path_factory, session_cache) -> Path:
    """seed-mlp, 3 epochs on the bundled digits with 20% held out for validation and early
    stopping on, so that best and last checkpoints both exist."""
    run = tmp_path_factory.mktemp("calibrated") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DIGITLAB_CACHE", str(session_cache))
        code = main(["train", "--dataset", "digits", "--epochs", "3", "--out", str(run),
                     "--set", "data.val_size=0.2", "--set", "train.early_stop_patience=5"])
    assert code == 0
    return run


def test_a_run_with_a_validation_split_fits_and_stores_its_temperature(calibrated_run):
    summary = json.loads((calibrated_run / "summary.json").read_text())
    recorded = summary["calibration"]
    assert recorded["fitted_on"] == "validation" and recorded["num_samples"] == 287
    assert recorded["nll_after"] <= recorded["nll_before"]
    t = recorded["temperature"]
    assert T_RANGE[0] < t < T_RANGE[1] and t != 1.0
    for name in ("last", "best"):  # both carry the temperature inference uses
        _tensors, meta = load_checkpoint(calibrated_run / "checkpoints" / f"{name}.safetensors")
        assert meta["calibration"] == recorded
    assert Predictor.load(calibrated_run, device="cpu").temperature == t


def test_scaling_does_not_worsen_the_test_ece(calibrated_run):
    report = json.loads((calibrated_run / "evaluation.json").read_text())["calibration"]
    assert report["fitted_on"] == "validation, 287 images" and report["reason"] is None
    assert report["bins"] == ECE_BINS
    assert 0 <= report["ece_after"] <= report["ece_before"]
    assert report["nll_after"] <= report["nll_before"]
    assert (calibrated_run / "plots" / "reliability.png").stat().st_size > 5_000
    html = (calibrated_run / "report.html").read_text()
    assert "Calibration (test split)" in html and "validation, 287 images" in html


def test_predictor_probabilities_use_the_temperature(calibrated_run):
    predictor = Predictor.load(calibrated_run, device="cpu")
    digits = torch.randint(0, 256, (4, 28, 28), dtype=torch.uint8)
    plain = dataclasses.replace(predictor, temperature=1.0).probabilities(digits)
    scaled = predictor.probabilities(digits)
    want = (plain.log() / predictor.temperature).softmax(dim=1)  # log-softmax shifts by a constant
    assert torch.allclose(scaled, want, atol=1e-5)
    assert torch.equal(scaled.argmax(dim=1), plain.argmax(dim=1))


def test_a_run_without_a_validation_split_keeps_t_1(digits_run):
    summary = json.loads((digits_run / "summary.json").read_text())
    assert summary["calibration"]["temperature"] == 1.0
    assert summary["calibration"]["fitted_on"] is None
    assert "data.val_size" in summary["calibration"]["reason"]
    report = json.loads((digits_run / "evaluation.json").read_text())["calibration"]
    assert report["fitted_on"] is None and "val_size" in report["reason"]
    assert report["ece_after"] == report["ece_before"]


def test_the_console_line_is_only_for_runs_that_asked_for_a_temperature():
    # the tutorial's recipe has no validation split: its output stays the tutorial's lines
    assert calibration_line(unfitted(NO_VALIDATION)) is None
    assert "not finite" in calibration_line(unfitted(NOT_FINITE))
    fitted = {"temperature": 0.5, "fitted_on": "validation", "num_samples": 2000,
              "reason": None, "nll_before": 0.2, "nll_after": 0.1}
    assert calibration_line(fitted) == ("Calibration: temperature 0.500 fitted on 2,000 "
                                        "validation images (NLL 0.2000 -> 0.1000)")


def test_a_run_without_a_validation_split_prints_no_calibration_line(tmp_path, capsys,
                                                                      session_cache,
                                                                      monkeypatch):
    monkeypatch.setenv("DIGITLAB_CACHE", str(session_cache))
    code, output = cli(capsys, "train", "--dataset", "digits", *TINY, "--epochs", "1",
                       "--out", str(tmp_path / "run"))
    assert code == 0 and "Test Accuracy" in output
    assert "Calibration" not in output


# ---------------------------------------------------------------- checkpoints

CFG = apply_overrides(Config(), {"model.name": "mlp", "model.hidden": [16], "data.name": "digits"})
META = {"config": to_dict(CFG), "classes": list("0123456789"), "mean": 0.1307, "std": 0.3081,
        "dataset": "digits", "epoch": 1}


def checkpoint(path: Path, meta: dict) -> Path:
    torch.manual_seed(0)
    save_checkpoint(path, build_model(CFG.model, 10), None, meta)
    return path


def test_a_checkpoint_without_calibration_loads_with_t_1(tmp_path):
    path = checkpoint(tmp_path / "old.safetensors", META)
    assert Predictor.load(path, device="cpu").temperature == 1.0


def test_set_calibration_keeps_tensors_and_a_valid_digest(tmp_path):
    path = checkpoint(tmp_path / "c.safetensors", META)
    before, _meta = load_checkpoint(path)
    set_calibration(path, {"temperature": 1.5, "fitted_on": "validation", "num_samples": 9})
    after, meta = load_checkpoint(path)  # the digest is checked here
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert meta["calibration"]["temperature"] == 1.5 and meta["epoch"] == 1
    assert Predictor.load(path, device="cpu").temperature == 1.5


@pytest.mark.parametrize("temperature", [0, -1.0, math.nan, math.inf, "2", True, None, [2.0]])
def test_a_crafted_temperature_is_a_checkpoint_error(tmp_path, temperature, capsys):
    path = checkpoint(tmp_path / "crafted.safetensors",
                      dict(META, calibration={"temperature": temperature}))
    with pytest.raises(CheckpointError, match="temperature must be a finite number > 0"):
        Predictor.load(path, device="cpu")
    with pytest.raises(CheckpointError, match="temperature must be a finite number > 0"):
        Predictor.load(checkpoint(tmp_path / "bare.safetensors", dict(META, calibration=2.0)))
    assert main(["export", str(path), "--format", "torchscript",
                 "--out", str(tmp_path / "m.pt")]) == 2
    assert "crafted.safetensors" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_exports_record_the_temperature(calibrated_run, tmp_path, fmt):
    """Exported graphs output logits; T travels beside them as "digitlab.temperature"."""
    if fmt == "onnx":
        onnx = pytest.importorskip("onnx", reason="ONNX export needs the export extra")
    out = tmp_path / f"model.{fmt}"
    with warnings.catch_warnings():  # torch's notes on its legacy exporters
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        assert main(["export", str(calibrated_run), "--format", fmt, "--out", str(out)]) == 0
        if fmt == "onnx":
            props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
            stored = props["digitlab.temperature"]
        else:
            extra = {"digitlab.temperature": ""}
            torch.jit.load(str(out), _extra_files=extra)
            stored = extra["digitlab.temperature"]
    assert float(stored) == Predictor.load(calibrated_run, device="cpu").temperature != 1.0
