"""A run trained with data.deskew: predict, serve, evaluate --images and export apply exactly
the deskew its training images had."""

from pathlib import Path

import numpy as np
import pytest
import torch

from digitlab.config import DataConfig
from digitlab.data import load_dataset
from digitlab.data.deskew import deskew
from digitlab.data.loader import normalize
from digitlab.inference.predictor import Predictor
from helpers import exported_probabilities


@pytest.fixture(scope="module")
def deskew_run(tmp_path_factory, session_cache) -> Path:
    from digitlab.cli import main

    run = tmp_path_factory.mktemp("deskew") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DIGITLAB_CACHE", str(session_cache))
        code = main(["train", "--dataset", "digits", "--epochs", "2", "--set", "data.deskew=true",
                     "--set", "model.name=cnn", "--set", "model.channels=[8,16]",
                     "--out", str(run)])
    assert code == 0
    return run


@pytest.fixture(scope="module")
def raw_digits() -> np.ndarray:
    return load_dataset(DataConfig(name="digits")).test.images[:16].numpy()


def test_the_checkpoint_records_deskew(deskew_run):
    assert Predictor.load(deskew_run, device="cpu").cfg.data.deskew is True


def test_predictor_deskews_what_it_reads(deskew_run, raw_digits):
    predictor = Predictor.load(deskew_run, device="cpu")
    seen, probs = predictor.read(raw_digits)
    assert np.array_equal(seen, deskew(torch.from_numpy(raw_digits)).numpy())
    assert not np.array_equal(seen, raw_digits)
    with torch.no_grad():
        logits = predictor.model(normalize(torch.from_numpy(seen), predictor.mean, predictor.std))
    expected = (logits / predictor.temperature).softmax(1)
    assert torch.allclose(probs, expected, atol=1e-6)
    assert torch.equal(predictor.probabilities(raw_digits), probs)


def test_a_plain_run_sees_its_input_unchanged(digits_run, raw_digits):
    predictor = Predictor.load(digits_run, device="cpu")
    assert predictor.cfg.data.deskew is False
    assert np.array_equal(predictor.read(raw_digits)[0], raw_digits)


def test_the_test_split_is_evaluated_deskewed(deskew_run, raw_digits):
    """summary.json's test accuracy was measured on deskewed test images: scoring them again
    through the Predictor gives the same accuracy."""
    import json

    dataset = load_dataset(DataConfig(name="digits"))
    predictor = Predictor.load(deskew_run, device="cpu")
    probs = predictor.probabilities(dataset.test.images.numpy())
    accuracy = float((probs.argmax(1) == dataset.test.labels).float().mean())
    summary = json.loads((deskew_run / "summary.json").read_text())
    assert accuracy == pytest.approx(summary["test_accuracy"], abs=1e-6)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_deskews_inside_the_file(fmt, deskew_run, raw_digits, tmp_path):
    probs = exported_probabilities(deskew_run, fmt, raw_digits, tmp_path)
    expected = Predictor.load(deskew_run, device="cpu").probabilities(raw_digits)
    assert torch.allclose(probs, expected, atol=1e-5)
