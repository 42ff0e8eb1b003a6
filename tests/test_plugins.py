"""Plugins: a model registered in the user's own module works in train, predict, evaluate,
export and serve. --import MODULE brings it in, the run records it as train.imports and every
later command imports it again from that record; the digitlab.plugins entry points load at
CLI start; a module that cannot be imported is one line and exit 2."""

from __future__ import annotations

import json
import sys
import warnings
from importlib import metadata
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from digitlab.models import MODELS
from helpers import cli, free_port

PLUGIN = '''
"""A plugin: registers "tiny-net" when imported."""
from torch import nn

from digitlab.models import MODELS


@MODELS.register("tiny-net", help="a tiny conv net from a plugin module")
def tiny_net(cfg, num_classes):
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4),
                         nn.Flatten(), nn.Linear(4 * 7 * 7, num_classes))
'''


def forget_plugin() -> None:
    """The state of a fresh process: no "tiny-net" registered, no plugin module imported."""
    MODELS._builders.pop("tiny-net", None)
    MODELS._help.pop("tiny-net", None)
    for name in ("myplug", "otherplug", "brokenplug"):
        sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("plugin")
    (folder / "myplug.py").write_text(PLUGIN, encoding="utf-8")
    (folder / "otherplug.py").write_text('"""Registers nothing."""\n', encoding="utf-8")
    (folder / "brokenplug.py").write_text("raise RuntimeError('boom')\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def plugin_run(plugin_dir, session_cache) -> Path:
    """tiny-net trained 1 epoch on the bundled digits with --import myplug."""
    from digitlab.cli import main

    run = plugin_dir.parent / "plugin-run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DIGITLAB_CACHE", str(session_cache))
        mp.delenv("DIGITLAB_DATA", raising=False)
        mp.chdir(plugin_dir)
        mp.setattr(sys, "path", list(sys.path))
        try:
            code = main(["train", "--import", "myplug", "--model", "tiny-net", "--dataset",
                         "digits", "--epochs", "1", "--device", "cpu", "--out", str(run)])
        finally:
            forget_plugin()
    assert code == 0, "training with --import myplug failed"
    return run


@pytest.fixture
def fresh(monkeypatch, plugin_dir):
    """Inside the plugin's folder, with nothing of it imported or registered."""
    forget_plugin()
    monkeypatch.chdir(plugin_dir)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield plugin_dir
    forget_plugin()


def one_error_line(out: str) -> str:
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    assert lines[0].startswith("digitlab: error: "), out
    return lines[0]


def test_the_run_records_its_imports(plugin_run):
    config = (plugin_run / "config.toml").read_text(encoding="utf-8")
    assert 'name = "tiny-net"' in config
    assert 'imports = ["myplug"]' in config
    assert "tiny-net" not in MODELS and "myplug" not in sys.modules  # the fixture forgot it


def test_predict_imports_the_recorded_plugin(plugin_run, fresh, capsys):
    image = Image.new("L", (28, 28), 0)
    ImageDraw.Draw(image).line([(14, 4), (14, 24)], fill=255, width=3)
    png = fresh.parent / "one.png"
    image.save(png)
    code, out = cli(capsys, "predict", str(plugin_run), str(png), "--json", "--device", "cpu")
    assert code == 0, out
    result = json.loads(out)
    assert len(result) == 1 and result[0]["label"] in range(10)
    assert "tiny-net" in MODELS and "myplug" in sys.modules


def test_a_checkpoint_file_imports_the_recorded_plugin(plugin_run, fresh, capsys):
    from digitlab.training.checkpoint import load_model

    model, cfg, _meta, _path = load_model(plugin_run / "checkpoints" / "last.safetensors")
    assert cfg.model.name == "tiny-net" and cfg.train.imports == ("myplug",)
    assert type(model).__name__ == "Sequential"


def test_evaluate_imports_the_recorded_plugin(plugin_run, fresh, capsys):
    code, out = cli(capsys, "evaluate", str(plugin_run), "--device", "cpu")
    assert code == 0, out
    assert "test accuracy" in out
    report = json.loads((plugin_run / "evaluation.json").read_text(encoding="utf-8"))
    assert 0.0 <= report["test_accuracy"] <= 1.0


@pytest.mark.parametrize("fmt, suffix", [("onnx", ".onnx"), ("torchscript", ".pt")])
def test_export_imports_the_recorded_plugin(plugin_run, fresh, capsys, fmt, suffix):
    if fmt == "onnx":
        pytest.importorskip("onnx", reason="ONNX export needs the export extra: "
                                           "pip install 'digitlab[export]'")
    out_file = fresh.parent / f"tiny{suffix}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        code, out = cli(capsys, "export", str(plugin_run), "--format", fmt, "--out",
                        str(out_file), "--force")
    assert code == 0, out
    assert out_file.is_file() and out_file.stat().st_size > 1000


def test_serve_imports_the_recorded_plugin(plugin_run, fresh, capsys, monkeypatch):
    with warnings.catch_warnings():  # starlette's note that it prefers httpx2 to httpx
        warnings.filterwarnings("ignore", message=".*httpx2")
        from fastapi.testclient import TestClient
    from digitlab.serve import app as app_module

    apps = []
    monkeypatch.setattr(app_module, "run", lambda app, sock: apps.append(app))
    code, out = cli(capsys, "serve", str(plugin_run), "--port", str(free_port()),
                    "--device", "cpu")
    assert code == 0, out
    assert "tiny-net" in out
    with TestClient(apps[0], base_url="http://127.0.0.1:8000") as client:
        pixels = [[255 if 12 <= x <= 15 and 4 <= y <= 23 else 0 for x in range(28)]
                  for y in range(28)]  # a "1"
        response = client.post("/predict", json={"pixels": pixels})
    assert response.status_code == 200, response.text
    assert response.json()["label"] in range(10)


def test_a_missing_plugin_is_one_line(plugin_run, fresh, capsys, monkeypatch):
    monkeypatch.chdir(fresh.parent)  # not the folder that holds myplug.py
    code, out = cli(capsys, "evaluate", str(plugin_run), "--device", "cpu")
    assert code == 2
    line = one_error_line(out)
    assert "train.imports myplug failed: ModuleNotFoundError: No module named 'myplug'" in line
    assert "pip install" in line and "myplug.py" in line and str(plugin_run) in line
    checkpoint = plugin_run / "checkpoints" / "last.safetensors"
    code, out = cli(capsys, "export", str(checkpoint), "--out", str(fresh.parent / "x.pt"),
                    "--format", "torchscript")
    assert code == 2
    assert "No module named 'myplug'" in one_error_line(out) and str(checkpoint) in out


@pytest.mark.parametrize("argv, expected", [
    (["--import", "no_such_module_xyz", "list"],
     "digitlab: error: --import no_such_module_xyz failed: ModuleNotFoundError: No module "
     "named 'no_such_module_xyz'; pip install"),
    (["list", "--import", "brokenplug"],
     "digitlab: error: --import brokenplug failed: RuntimeError: boom; the module itself "
     "fails: fix it"),
    (["list", "--import", "my-plug.py"], "is not a module name"),
    (["train", "--set", 'train.imports=["not a name"]', "--print-config"],
     "is not a module name"),
])
def test_a_bad_import_is_one_line(fresh, capsys, argv, expected):
    code, out = cli(capsys, *argv)
    assert code == 2
    assert expected in one_error_line(out)


def test_import_before_and_after_the_command_are_both_recorded(fresh, capsys):
    code, out = cli(capsys, "--import", "myplug", "train", "--import", "otherplug",
                    "--model", "tiny-net", "--print-config")
    assert code == 0, out
    assert 'imports = ["myplug", "otherplug"]' in out
    assert 'name = "tiny-net"' in out


def test_set_train_imports_imports_before_the_model_is_checked(fresh, capsys):
    code, out = cli(capsys, "train", "--set", 'train.imports=["myplug"]', "--model", "tiny-net",
                    "--print-config")
    assert code == 0, out
    assert 'imports = ["myplug"]' in out and "myplug" in sys.modules


def test_without_an_import_the_model_is_unknown(fresh, capsys):
    code, out = cli(capsys, "train", "--model", "tiny-net", "--print-config")
    assert code == 2
    assert "unknown model 'tiny-net'" in one_error_line(out)
    assert "myplug" not in sys.modules  # nothing is imported unless asked for


def entry_points_with(*entries):
    def entry_points(group=None):
        return [e for e in entries if e.group == group]

    return entry_points


def test_entry_points_load_at_cli_start(fresh, capsys, monkeypatch):
    entry = metadata.EntryPoint(name="tiny", value="myplug", group="digitlab.plugins")
    monkeypatch.setattr(metadata, "entry_points", entry_points_with(entry))
    monkeypatch.chdir(fresh.parent)
    sys.path.insert(0, str(fresh))  # as if installed; `fresh` restores sys.path
    code, out = cli(capsys, "list", "--json")
    assert code == 0, out
    assert "tiny-net" in json.loads(out)["models"]


def test_a_broken_entry_point_is_one_line(fresh, capsys, monkeypatch):
    entry = metadata.EntryPoint(name="broken", value="brokenplug", group="digitlab.plugins")
    monkeypatch.setattr(metadata, "entry_points", entry_points_with(entry))
    sys.path.insert(0, str(fresh))
    code, out = cli(capsys, "list")
    assert code == 2
    line = one_error_line(out)
    assert "plugin broken = brokenplug" in line and "RuntimeError: boom" in line
