"""Crafted or damaged checkpoints: predict (and so serve, export, the figures, which load the
same way) answer with one CheckpointError line that names the file, exit 2: never a
traceback, never an allocation the file does not justify, never NaN in JSON."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw
from safetensors.torch import save

from digitlab.cli import main
from digitlab.config import Config, apply_overrides, to_dict
from digitlab.errors import CheckpointError
from digitlab.inference.predictor import Predictor
from digitlab.models import build_model
from digitlab.training import checkpoint
from digitlab.training.checkpoint import FORMAT, save_checkpoint

CFG = apply_overrides(Config(), {"model.name": "mlp", "model.hidden": [16], "data.name": "digits"})
META = {"config": to_dict(CFG), "classes": list("0123456789"), "mean": 0.1307, "std": 0.3081,
        "dataset": "digits", "epoch": 1}


def write(path: Path, meta: dict, model: torch.nn.Module | None = None) -> Path:
    """A checkpoint with a valid digest and this metadata (for the seed of 16 units)."""
    torch.manual_seed(0)
    save_checkpoint(path, model or build_model(CFG.model, 10), None, meta)
    return path


def changed(edit) -> dict:
    meta = copy.deepcopy(META)
    edit(meta)
    return meta


def set_model(key: str, value):
    return lambda meta: meta["config"]["model"].__setitem__(key, value)


CRAFTED = {
    "no mean": changed(lambda m: m.pop("mean")),
    "string mean": changed(lambda m: m.__setitem__("mean", "0.1307")),
    "nan mean": changed(lambda m: m.__setitem__("mean", float("nan"))),
    "zero std": changed(lambda m: m.__setitem__("std", 0)),
    "boolean std": changed(lambda m: m.__setitem__("std", True)),
    "no classes": changed(lambda m: m.pop("classes")),
    "integer classes": changed(lambda m: m.__setitem__("classes", list(range(10)))),
    "classes as a string": changed(lambda m: m.__setitem__("classes", "0123456789")),
    "classes as a number": changed(lambda m: m.__setitem__("classes", 10)),
    "negative classes": changed(lambda m: m.__setitem__("classes", -3)),
    "zero classes": changed(lambda m: m.__setitem__("classes", [])),
    "three classes for ten outputs": changed(lambda m: m.__setitem__("classes", ["a", "b", "c"])),
    "huge hidden": changed(set_model("hidden", [10**12])),
    "hidden beyond int64": changed(set_model("hidden", [10**30])),
    "wider hidden than the tensors": changed(set_model("hidden", [4096])),
    "another architecture": changed(set_model("name", "cnn")),
    "an unknown model": changed(set_model("name", "transformer")),
    "unknown config key": changed(set_model("hiddne", [16])),
    "unknown config section": changed(lambda m: m["config"].__setitem__("extra", {"a": 1})),
    "config not a table": changed(lambda m: m.__setitem__("config", "mlp")),
    "section not a table": changed(lambda m: m["config"].__setitem__("model", [16])),
    "no config": changed(lambda m: m.pop("config")),
}


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("digit") / "seven.png"
    picture = Image.new("L", (120, 120), 235)
    ImageDraw.Draw(picture).line([(30, 25), (90, 25), (55, 100)], fill=20, width=9)
    picture.save(path)
    return path


def assert_one_line_error(capsys, path: Path, code: int, *needles: str) -> str:
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("digitlab: error: "), captured.err
    assert str(path) in lines[0] and "Traceback" not in captured.err
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_metadata_is_a_clear_error(case, tmp_path, image, capsys):
    path = write(tmp_path / "crafted.safetensors", CRAFTED[case])
    with pytest.raises(CheckpointError) as exc:
        Predictor.load(path, device="cpu")
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)
    assert len(str(exc.value)) < 600  # crafted values are shortened, never echoed whole
    assert_one_line_error(capsys, path, main(["predict", str(path), str(image)]))


@pytest.mark.parametrize("header", ["[1, 2]", "null", '"text"', "7", "{", "[" * 100_000],
                         ids=["list", "null", "string", "number", "broken", "deep nesting"])
def test_metadata_that_is_not_an_object(header, tmp_path, image, capsys):
    path = tmp_path / "not-an-object.safetensors"
    path.write_bytes(save({"model.w": torch.zeros(2)}, metadata={"digitlab": header}))
    with pytest.raises(CheckpointError):
        Predictor.load(path, device="cpu")
    assert_one_line_error(capsys, path, main(["predict", str(path), str(image)]))


def test_no_model_is_allocated_before_the_shapes_match(tmp_path, monkeypatch):
    """The config's model is built on the meta device and compared with the file's tensors;
    a real (allocating) build happens only once they match."""
    devices = []

    def spy(cfg, num_classes):
        devices.append(torch.empty(0).device.type)  # the default device of this build
        return build_model(cfg, num_classes)

    monkeypatch.setattr(checkpoint, "build_model", spy)
    path = write(tmp_path / "wide.safetensors", CRAFTED["wider hidden than the tensors"])
    with pytest.raises(CheckpointError, match="does not fit"):
        Predictor.load(path, device="cpu")
    assert devices == ["meta"]
    devices.clear()
    Predictor.load(write(tmp_path / "good.safetensors", META), device="cpu")
    assert devices == ["meta", "cpu"]


def test_a_valid_crafted_file_still_loads(tmp_path):
    predictor = Predictor.load(write(tmp_path / "good.safetensors", META), device="cpu")
    assert predictor.classes == tuple("0123456789") and predictor.cfg.model.hidden == (16,)
    assert predictor.probabilities(torch.zeros(2, 28, 28, dtype=torch.uint8)).shape == (2, 10)


def test_wrong_format_name(tmp_path, image, capsys):
    path = tmp_path / "future.safetensors"
    meta = dict(META, format="digitlab-checkpoint-99")
    path.write_bytes(save({"model.w": torch.zeros(2)}, metadata={"digitlab": json.dumps(meta)}))
    assert_one_line_error(capsys, path, main(["predict", str(path), str(image)]),
                          "unknown checkpoint format")
    assert FORMAT != meta["format"]


def test_a_flipped_bit_is_named_by_predict(tmp_path, image, capsys):
    path = write(tmp_path / "flipped.safetensors", META)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01
    path.write_bytes(bytes(data))
    assert_one_line_error(capsys, path, main(["predict", str(path), str(image)]),
                          "checksum mismatch")


# ---------------------------------------------------------------- weights that are not finite


def scaled_model(value: float) -> torch.nn.Module:
    model = build_model(CFG.model, 10)
    with torch.no_grad():
        for param in model.parameters():
            param.fill_(value)
    return model


def test_nan_weights_are_refused_at_load(tmp_path, image, capsys):
    path = write(tmp_path / "nan.safetensors", META, scaled_model(float("nan")))
    with pytest.raises(CheckpointError, match="not finite"):
        Predictor.load(path, device="cpu")
    assert_one_line_error(capsys, path, main(["predict", "--json", str(path), str(image)]),
                          "weights are not finite")


def strict_json(text: str):
    """json.loads that refuses NaN and Infinity, which are not JSON."""
    def refuse(name):
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


def test_output_that_overflows_is_null_with_a_status(tmp_path, image, capsys):
    """Finite weights of -1e30 overflow to inf in the forward pass, and softmax gives NaN:
    --json says so with nulls and a status instead of printing NaN."""
    path = write(tmp_path / "huge.safetensors", META, scaled_model(-1e30))
    assert main(["predict", "--json", "--top-k", "3", str(path), str(image)]) == 1
    captured = capsys.readouterr()
    (result,) = strict_json(captured.out)
    assert result == {"file": str(image), "status": "not-finite", "label": None,
                      "confidence": None, "probabilities": None, "top_k": None}
    assert "not finite" in captured.err and "Traceback" not in captured.err
    assert main(["predict", str(path), str(image)]) == 1  # text mode: nothing on stdout
    assert capsys.readouterr().out == ""


def test_good_output_has_status_ok(tmp_path, image, capsys):
    path = write(tmp_path / "good.safetensors", META)
    assert main(["predict", "--json", str(path), str(image)]) == 0
    (result,) = strict_json(capsys.readouterr().out)
    assert result["status"] == "ok" and len(result["probabilities"]) == 10
