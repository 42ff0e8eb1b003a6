"""Bengali and bilingual class names in `digitlab predict`, the Kaggle writer, `evaluate
--images` and the Python API: `label` stays the digit value (7 for "7" and for "৭"), `text`
is the class name people read and `index` tells the two sevens of a bilingual model apart.

The checkpoints are crafted (no training): an mlp whose last layer answers one class whatever
the input, so each test knows the answer."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

from digitlab.cli import main
from digitlab.config import Config, apply_overrides, to_dict, to_toml
from digitlab.errors import UsageError
from digitlab.inference.kaggle import submission_text, write_submission
from digitlab.inference.labelled import check_labels, find_labelled, match_label
from digitlab.inference.predictor import Predictor, as_label, prediction
from digitlab.models import build_model
from digitlab.training.checkpoint import save_checkpoint
from digitlab.viz import fonts
from digitlab.viz.images import evaluate_images

LATIN = tuple("0123456789")
BENGALI = tuple("০১২৩৪৫৬৭৮৯")
BILINGUAL = LATIN + BENGALI
FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot")
CFG = apply_overrides(Config(), {"model.name": "mlp", "model.hidden": [16],
                                 "data.name": "digits", "train.device": "cpu"})


def answering(classes: tuple[str, ...], index: int) -> torch.nn.Module:
    """An mlp that gives class `index` about 99.9% for any input."""
    torch.manual_seed(0)
    model = build_model(CFG.model, len(classes))
    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
        last.bias[index] = 10.0
    return model


def crafted_run(folder: Path, classes: tuple[str, ...], index: int) -> Path:
    """A run directory (config.toml and checkpoints/last.safetensors) answering `index`."""
    meta = {"config": to_dict(CFG), "classes": list(classes), "mean": 0.1307, "std": 0.3081,
            "dataset": "digits", "epoch": 1}
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "config.toml").write_text(to_toml(CFG), encoding="utf-8")
    save_checkpoint(folder / "checkpoints" / "last.safetensors", answering(classes, index),
                    None, meta)
    return folder


def digit_image(path: Path) -> Path:
    """A dark stroke on light paper: any image will do, the model answers one class."""
    image = Image.new("L", (120, 120), 235)
    ImageDraw.Draw(image).line([(40, 20), (80, 20), (55, 100)], fill=20, width=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def one_hot(index: int, count: int) -> torch.Tensor:
    probs = torch.full((count,), 0.01 / (count - 1))
    probs[index] = 0.99
    return probs


# ---------------------------------------------------------------- prediction() and as_label


@pytest.mark.parametrize(("classes", "index", "label", "text"), [
    (LATIN, 7, 7, "7"),
    (BENGALI, 7, 7, "৭"),
    (BILINGUAL, 7, 7, "7"),
    (BILINGUAL, 17, 7, "৭"),
    (FASHION, 7, "Sneaker", "Sneaker"),
])
def test_prediction_keeps_the_value_as_label_and_adds_text_and_index(classes, index, label,
                                                                     text):
    result = prediction(one_hot(index, len(classes)), classes, top_k=3)
    assert (result["label"], result["text"], result["index"]) == (label, text, index)
    assert type(result["label"]) is type(label)  # an int for digits, not "7"
    first = result["top_k"][0]
    assert (first["label"], first["text"], first["index"]) == (label, text, index)
    assert all(entry["text"] == classes[entry["index"]] for entry in result["top_k"])


def test_as_label_reads_digits_of_any_script_and_nothing_else():
    assert [as_label(name) for name in ("7", "৭", "১২", "Sneaker", "²")] == \
        [7, 7, 12, "Sneaker", "²"]  # "²".isdigit() is True, but int("²") fails


# ---------------------------------------------------------------- digitlab predict


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    return digit_image(tmp_path_factory.mktemp("images") / "seven.png")


@pytest.mark.parametrize(("classes", "index", "text"), [
    (BENGALI, 7, "৭"), (BILINGUAL, 7, "7"), (BILINGUAL, 17, "৭")])
def test_predict_json_has_label_text_and_index(classes, index, text, tmp_path, image, capsys):
    run = crafted_run(tmp_path / "run", classes, index)
    assert main(["predict", "--json", "--top-k", "2", str(run), str(image)]) == 0
    out = capsys.readouterr().out
    (result,) = json.loads(out)
    assert (result["label"], result["text"], result["index"]) == (7, text, index)
    assert result["top_k"][0]["text"] == text
    assert f'"text": "{text}"' in out  # ৭ as itself, not as an escape "\u09ed"


@pytest.mark.parametrize("as_json", [False, True])
def test_a_console_that_cannot_show_bengali_gets_escapes_not_a_crash(as_json, tmp_path, image,
                                                                    monkeypatch):
    import io
    import sys

    run = crafted_run(tmp_path / "run", BENGALI, 7)
    raw = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(raw, encoding="ascii"))
    assert main(["predict", *(["--json"] if as_json else []), str(run), str(image)]) == 0
    sys.stdout.flush()
    out = raw.getvalue().decode("ascii")
    assert "\\u09ed" in out
    if as_json:
        assert json.loads(out)[0]["text"] == "৭"  # the escape is valid JSON


@pytest.mark.parametrize(("classes", "index", "text"), [
    (BENGALI, 7, "৭"), (BILINGUAL, 7, "7"), (BILINGUAL, 17, "৭"), (FASHION, 7, "Sneaker")])
def test_predict_prints_the_class_name(classes, index, text, tmp_path, image, capsys):
    run = crafted_run(tmp_path / "run", classes, index)
    assert main(["predict", "--top-k", "2", "--min-confidence", "0.5", str(run),
                 str(image)]) == 0
    file, label, confidence, top = capsys.readouterr().out.rstrip("\n").split("\t")
    assert (file, label) == (str(image), text)
    assert top.split(" ")[0].startswith(f"{text}:")


def test_predict_show_titles_the_class_name(tmp_path, image, capsys):
    run = crafted_run(tmp_path / "run", BENGALI, 7)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["predict", "--show", str(tmp_path / "shown"), str(run), str(image)]) == 0
    if fonts.bengali_font() is not None:  # else the figure shows a box, and says so once
        assert not [w for w in caught if "missing from font" in str(w.message)]
    assert capsys.readouterr().out.split("\t")[1] == "৭"
    (png,) = (tmp_path / "shown").iterdir()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- Kaggle and the Python API


@pytest.mark.parametrize(("classes", "index"), [(BENGALI, 7), (BILINGUAL, 17), (BILINGUAL, 7)])
def test_kaggle_submission_writes_the_digit_value(classes, index, tmp_path):
    run = crafted_run(tmp_path / "run", classes, index)
    test_csv = tmp_path / "test.csv"
    test_csv.write_text(",".join(f"pixel{i}" for i in range(784)) + "\n"
                        + ",".join(["0"] * 784) + "\n", encoding="utf-8")
    out = tmp_path / "submission.csv"
    assert write_submission(Predictor.load(run, device="cpu"), test_csv, out) == 1
    assert out.read_text(encoding="utf-8") == submission_text([7]) == "ImageId,Label\n1,7\n"


def test_api_predictions_carry_the_class_name(tmp_path, image):
    import digitlab as dl

    run_dir = crafted_run(tmp_path / "run", BILINGUAL, 17)
    (tmp_path / "run" / "summary.json").write_text("{}", encoding="utf-8")
    run = dl.load_run(run_dir, device="cpu")
    labels, probabilities = run.predict([image])
    assert labels == [7] and probabilities.shape == (1, 20)  # unchanged: the digit value
    (result,) = run.predictions(image, top_k=2)
    assert (result["label"], result["text"], result["index"]) == (7, "৭", 17)
    assert [entry["text"] for entry in result["top_k"]][0] == "৭"
    with pytest.raises(UsageError, match="top_k"):
        run.predictions(image, top_k=0)


# ---------------------------------------------------------------- evaluate --images


@pytest.mark.parametrize(("label", "classes", "expected"), [
    ("৭", BENGALI, "৭"), ("7", BENGALI, "৭"),  # the digit value, for Bengali-only classes
    ("7", BILINGUAL, "7"), ("৭", BILINGUAL, "৭"),  # exact names first
    ("৭", LATIN, "7"), ("07", LATIN, None), ("x", LATIN, None), ("Sneaker", FASHION, "Sneaker"),
])
def test_match_label(label, classes, expected):
    assert match_label(label, classes) == expected


def test_check_labels_maps_digit_values_and_names_unknown_labels(tmp_path):
    for label in ("7", "৩"):
        digit_image(tmp_path / "images" / label / "a.png")
    found = check_labels(find_labelled(tmp_path / "images"), BENGALI)
    assert sorted(f.label for f in found.files) == ["৩", "৭"]
    with pytest.raises(UsageError, match="'7'"):
        check_labels(find_labelled(tmp_path / "images"), FASHION)


def test_evaluate_images_with_bengali_folder_names(tmp_path):
    run = crafted_run(tmp_path / "run", BENGALI, 7)
    for label, count in (("৭", 3), ("৩", 2)):
        for k in range(count):
            digit_image(tmp_path / "images" / label / f"{k}.png")
    report = evaluate_images(run, tmp_path / "images", device="cpu")
    assert report["counts"]["correct"] == 3 and report["accuracy"] == pytest.approx(3 / 5)
    assert report["per_class"]["৭"]["correct"] == 3
    assert report["most_confused"] == [{"true": "৩", "predicted": "৭", "count": 2}]
    assert "scripts" not in report  # one script


def test_evaluate_images_reads_a_latin_digit_in_labels_csv_as_the_bengali_class(tmp_path):
    run = crafted_run(tmp_path / "run", BENGALI, 7)
    for k in range(2):
        digit_image(tmp_path / "csv" / f"{k}.png")
    (tmp_path / "csv" / "labels.csv").write_text(
        "file,label\n0.png,7\n1.png,৭\n", encoding="utf-8")
    report = evaluate_images(run, tmp_path / "csv", device="cpu")
    assert report["accuracy"] == 1.0 and report["per_class"]["৭"]["support"] == 2


def test_evaluate_images_on_a_bilingual_model_counts_the_scripts(tmp_path):
    run = crafted_run(tmp_path / "run", BILINGUAL, 17)  # always "৭"
    for label in ("7", "৭"):
        for k in range(2):
            digit_image(tmp_path / "images" / label / f"{k}.png")
    report = evaluate_images(run, tmp_path / "images", device="cpu")
    scripts = report["scripts"]
    assert scripts["per_script"]["latin"] == {"classes": 10, "images": 2, "accuracy": 0.0,
                                              "value_right_script_wrong": 1.0}
    assert scripts["per_script"]["bengali"]["accuracy"] == 1.0
    assert scripts["confusions"] == [{"true": "7", "predicted": "৭", "count": 2}]
    saved = json.loads(Path(report["json_path"]).read_text(encoding="utf-8"))
    assert saved["scripts"] == scripts
