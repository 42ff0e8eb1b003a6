"""`predict --min-confidence P` and `serve --min-confidence P`: answers below P are marked
not sure (text: "(not sure)" after the label; JSON: "sure": false); P outside (0, 1] is a
usage error, exit 2; the Kaggle submission (a label for every row) refuses the option."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

from digitlab.cli import main
from digitlab.errors import UsageError
from digitlab.inference.predictor import check_min_confidence, prediction

CLASSES = tuple("0123456789")


@pytest.fixture(scope="module")
def scribble(tmp_path_factory) -> Path:
    """A crossed-out box: no digit, so the model is unsure of it."""
    path = tmp_path_factory.mktemp("scribble") / "scribble.png"
    picture = Image.new("L", (120, 120), 255)
    ImageDraw.Draw(picture).line([(20, 20), (100, 100), (20, 100), (100, 20), (60, 60)],
                                 fill=0, width=9)
    picture.save(path)
    return path


def predict_json(run: Path, image: Path, capsys, *options: str) -> dict:
    assert main(["predict", str(run), str(image), "--json", *options]) == 0
    return json.loads(capsys.readouterr().out)[0]


@pytest.mark.parametrize("value", [1e-9, 0.5, 0.6, 1.0, None])
def test_valid_thresholds(value):
    check_min_confidence(value)


@pytest.mark.parametrize("value", [0.0, -0.2, 1.0001, 2.0, math.nan, math.inf, -math.inf])
def test_thresholds_outside_0_1_are_usage_errors(value):
    with pytest.raises(UsageError, match=r"--min-confidence must be a probability in \(0, 1\]"):
        check_min_confidence(value)


def test_prediction_marks_sure_at_or_above_the_threshold():
    probs = torch.tensor([0.1, 0.7, 0.2] + [0.0] * 7)
    assert "sure" not in prediction(probs, CLASSES)  # no threshold: the output is as before
    confidence = prediction(probs, CLASSES)["confidence"]
    assert prediction(probs, CLASSES, min_confidence=confidence)["sure"] is True  # >=
    assert prediction(probs, CLASSES, min_confidence=0.71)["sure"] is False
    broken = prediction(torch.full((10,), math.nan), CLASSES, min_confidence=0.5)
    assert broken["status"] == "not-finite" and broken["sure"] is None


def test_predict_cli_marks_an_unsure_answer(digits_run, scribble, capsys):
    confidence = predict_json(digits_run, scribble, capsys)["confidence"]
    assert confidence < 1.0, "the scribble should not be read with full confidence"
    above = (confidence + 1) / 2  # a threshold the answer misses

    unsure = predict_json(digits_run, scribble, capsys, "--min-confidence", str(above))
    assert unsure["sure"] is False and unsure["confidence"] == confidence
    sure = predict_json(digits_run, scribble, capsys, "--min-confidence", str(confidence))
    assert sure["sure"] is True

    assert main(["predict", str(digits_run), str(scribble), "--min-confidence", str(above)]) == 0
    line = capsys.readouterr().out.strip()
    path, label, shown = line.split("\t")
    assert path == str(scribble)
    assert label == f"{unsure['label']} (not sure)" and float(shown) == pytest.approx(confidence,
                                                                                     abs=1e-4)
    assert main(["predict", str(digits_run), str(scribble), "--min-confidence", "1e-6"]) == 0
    assert "not sure" not in capsys.readouterr().out


@pytest.mark.parametrize("value", ["0", "1.5", "-0.3", "nan"])
def test_predict_cli_refuses_a_bad_threshold(digits_run, scribble, value, capsys):
    assert main(["predict", str(digits_run), str(scribble), "--min-confidence", value]) == 2
    err = capsys.readouterr().err
    assert "--min-confidence must be a probability in (0, 1]" in err
    assert "Traceback" not in err


def test_predict_cli_refuses_a_threshold_that_is_not_a_number(digits_run, scribble, capsys):
    with pytest.raises(SystemExit) as exit_info:  # argparse's own usage error
        main(["predict", str(digits_run), str(scribble), "--min-confidence", "sure"])
    assert exit_info.value.code == 2
    assert "--min-confidence" in capsys.readouterr().err


def test_kaggle_submission_refuses_the_threshold(digits_run, tmp_path, capsys):
    csv = tmp_path / "test.csv"
    csv.write_text("pixel0\n0\n")
    assert main(["predict", str(digits_run), "--kaggle-csv", str(csv), "--out",
                 str(tmp_path / "out.csv"), "--min-confidence", "0.5"]) == 2
    assert "--min-confidence" in capsys.readouterr().err
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("value", ["0", "1.2"])
def test_serve_refuses_a_bad_threshold_before_loading(tmp_path, value, capsys):
    # the run does not exist: the threshold is checked first, so the answer is about it
    assert main(["serve", str(tmp_path / "no-run"), "--min-confidence", value]) == 2
    assert "--min-confidence must be a probability" in capsys.readouterr().err
