"""`digitlab export`: ONNX and TorchScript files that give the PyTorch model's logits on real
digits, normalization included, for any batch size."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from digitlab.cli import main
from digitlab.inference.export import exportable
from digitlab.models import MODELS

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def run_dir(digits_run) -> Path:
    return digits_run


@pytest.fixture(scope="module")
def digits_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """64 real images of the digits test split as float32 [64, 1, 28, 28] in [0, 1], and
    their labels."""
    from digitlab.config import Config, apply_overrides
    from digitlab.data import SOURCES

    cfg = apply_overrides(Config(), {"data.name": "digits"})
    test = SOURCES.get("digits")(cfg.data).test
    images, labels = test.images[:64], test.labels[:64]
    return (images.float() / 255.0).unsqueeze(1).contiguous(), labels


@pytest.fixture(scope="module")
def reference(run_dir):
    """The PyTorch model with its normalization: pixels in [0, 1] -> logits."""
    wrapped, predictor = exportable(run_dir)
    return wrapped, predictor


def quiet_main(argv: list[str]) -> int:
    with warnings.catch_warnings():  # torch's notes on its legacy exporters
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        return main(argv)


def export(run_dir: Path, fmt: str, out: Path, capsys, min_size: int = 10_000) -> Path:
    assert quiet_main(["export", str(run_dir), "--format", fmt, "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert out.is_file() and out.stat().st_size > min_size
    assert not list(out.parent.glob(f".{out.name}*")), "a temporary file was left behind"
    return out


def slices(batch: torch.Tensor):
    """The whole batch, then batches of 1 and 7: the batch dimension must be dynamic."""
    yield batch
    yield batch[:1]
    yield batch[3:10]


# ---------------------------------------------------------------- ONNX


@pytest.fixture(scope="module")
def onnx_file(run_dir, tmp_path_factory):
    pytest.importorskip("onnx", reason="ONNX export needs the export extra: "
                                       "pip install 'digitlab[export]'")
    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        assert main(["export", str(run_dir), "--format", "onnx", "--out", str(out)]) == 0
    return out


def test_onnx_is_valid_with_a_dynamic_batch(onnx_file):
    import onnx

    model = onnx.load(str(onnx_file))
    onnx.checker.check_model(model)
    (pixels,) = model.graph.input
    (logits,) = model.graph.output
    assert pixels.name == "pixels" and logits.name == "logits"
    dims = pixels.type.tensor_type.shape.dim
    assert dims[0].dim_param and not dims[0].dim_value, "the batch dimension should be symbolic"
    assert [d.dim_value for d in dims[1:]] == [1, 28, 28]


def test_onnxruntime_matches_pytorch(onnx_file, reference, digits_batch):
    ort = pytest.importorskip("onnxruntime", reason="parity needs onnxruntime: "
                                                    "pip install 'digitlab[export]'")
    wrapped, predictor = reference
    images, labels = digits_batch
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    for batch in slices(images):
        (got,) = session.run(["logits"], {"pixels": batch.numpy()})
        with torch.no_grad():
            want = wrapped(batch).numpy()
        assert got.shape == (len(batch), 10)
        assert np.abs(got - want).max() <= TOLERANCE
    # and it classifies the real digits like the model does (which is mostly right)
    (logits,) = session.run(["logits"], {"pixels": images.numpy()})
    uint8 = (images.squeeze(1) * 255).round().to(torch.uint8)
    assert (logits.argmax(1) == predictor.probabilities(uint8).argmax(1).numpy()).all()
    assert (logits.argmax(1) == labels.numpy()).mean() >= 0.85


def test_onnx_export_via_cli_reports_the_path(run_dir, tmp_path, capsys):
    pytest.importorskip("onnx", reason="ONNX export needs the export extra")
    export(run_dir, "onnx", tmp_path / "nested" / "dir" / "m.onnx", capsys)


def test_onnx_without_the_extra_is_a_usage_error(run_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx -> ImportError
    out = tmp_path / "m.onnx"
    assert main(["export", str(run_dir), "--format", "onnx", "--out", str(out)]) == 2
    assert "digitlab[export]" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.iterdir())


# ---------------------------------------------------------------- TorchScript


def test_torchscript_matches_pytorch(run_dir, reference, digits_batch, tmp_path, capsys):
    out = export(run_dir, "torchscript", tmp_path / "model.pt", capsys)
    wrapped, _ = reference
    images, _ = digits_batch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        loaded = torch.jit.load(str(out), map_location="cpu").eval()
    with torch.no_grad():
        for batch in slices(images):
            got, want = loaded(batch), wrapped(batch)
            assert got.shape == (len(batch), 10)
            assert (got - want).abs().max().item() <= TOLERANCE


def test_export_from_a_checkpoint_file(run_dir, reference, digits_batch, tmp_path, capsys):
    _, predictor = reference
    out = export(predictor.path, "torchscript", tmp_path / "from-checkpoint.pt", capsys)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        loaded = torch.jit.load(str(out), map_location="cpu").eval()
    images, _ = digits_batch
    with torch.no_grad():
        assert (loaded(images) - reference[0](images)).abs().max().item() <= TOLERANCE


def test_export_of_a_missing_run_exits_2(tmp_path, capsys):
    out = tmp_path / "m.pt"
    assert main(["export", str(tmp_path / "nope"), "--format", "torchscript",
                 "--out", str(out)]) == 2
    assert "nope" in capsys.readouterr().err and not out.exists()


# ---------------------------------------------------------------- where the file goes


def test_a_symlink_at_the_old_temporary_name_is_not_followed(run_dir, tmp_path, capsys):
    """Export used to write `.<name>.tmp` beside the target, following a link planted there."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "model.pt"
    (tmp_path / f".{out.name}.tmp").symlink_to(victim)
    assert quiet_main(["export", str(run_dir), "--format", "torchscript", "--out", str(out)]) == 0
    assert victim.read_text() == "precious"
    assert out.is_file() and not out.is_symlink()


def test_an_existing_file_is_refused_without_force(run_dir, tmp_path, capsys):
    out = tmp_path / "model.pt"
    out.write_text("an earlier export")
    assert quiet_main(["export", str(run_dir), "--format", "torchscript", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert f"{out} already exists; pass --force" in captured.err
    assert len(captured.err.strip().splitlines()) == 1 and "Traceback" not in captured.err
    assert out.read_text() == "an earlier export"
    assert quiet_main(["export", str(run_dir), "--format", "torchscript", "--out", str(out),
                 "--force"]) == 0
    assert out.stat().st_size > 10_000
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.load(str(out), map_location="cpu")  # a whole TorchScript file


def test_force_replaces_a_symlink_not_its_target(run_dir, tmp_path, capsys):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "model.pt"
    out.symlink_to(victim)
    assert quiet_main(["export", str(run_dir), "--format", "torchscript", "--out", str(out)]) == 2
    assert quiet_main(["export", str(run_dir), "--format", "torchscript", "--out", str(out),
                 "--force"]) == 0
    assert victim.read_text() == "precious" and out.is_file() and not out.is_symlink()


@pytest.mark.parametrize("where", ["under a file", "a folder", "a folder, forced"])
def test_an_unwritable_destination_is_one_line(where, run_dir, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("a regular file")
    out = {"under a file": blocker / "m.pt", "a folder": tmp_path,
           "a folder, forced": tmp_path}[where]
    argv = ["export", str(run_dir), "--format", "torchscript", "--out", str(out)]
    assert quiet_main(argv + (["--force"] if "forced" in where else [])) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("digitlab: error: ") and str(out) in lines[0]
    assert "Traceback" not in captured.err and captured.out == ""
    assert blocker.read_text() == "a regular file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # no temporary left


# ---------------------------------------------------------------- every registered model

SMALL = {"mlp": {"model.hidden": [16], "model.batchnorm": True},
         "cnn": {"model.channels": [4, 8], "model.batchnorm": True},
         "resnet": {"model.channels": [4, 8]}}


@pytest.fixture(scope="module", params=[n for n in MODELS.names() if n != "crnn"])  # see read/
def model_checkpoint(request, tmp_path_factory) -> Path:
    """An untrained checkpoint of each registered model (small widths where it has any),
    with batch-norm statistics that are not the identity, so eval mode matters."""
    from digitlab.config import Config, apply_overrides, to_dict
    from digitlab.models import build_model
    from digitlab.training.checkpoint import save_checkpoint

    name = request.param
    cfg = apply_overrides(Config(), {"model.name": name, **SMALL.get(name, {})})
    torch.manual_seed(0)
    model = build_model(cfg.model, 10)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    path = tmp_path_factory.mktemp(name) / f"{name}.safetensors"
    save_checkpoint(path, model, None, {"config": to_dict(cfg), "classes": list("0123456789"),
                                        "mean": 0.1307, "std": 0.3081})
    return path


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_every_model_exports_and_matches_pytorch(model_checkpoint, fmt, digits_batch, tmp_path,
                                                 capsys):
    if fmt == "onnx":
        pytest.importorskip("onnx", reason="ONNX export needs the export extra")
        ort = pytest.importorskip("onnxruntime", reason="parity needs onnxruntime")
    out = export(model_checkpoint, fmt, tmp_path / f"model.{fmt}", capsys, min_size=1_000)
    wrapped, _ = exportable(model_checkpoint)
    images, _ = digits_batch
    if fmt == "onnx":
        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        run = lambda batch: torch.from_numpy(session.run(["logits"],  # noqa: E731
                                                         {"pixels": batch.numpy()})[0])
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            run = torch.jit.load(str(out), map_location="cpu").eval()
    with torch.no_grad():
        for batch in slices(images):
            got, want = run(batch), wrapped(batch)
            assert got.shape == (len(batch), 10)
            assert (got - want).abs().max().item() <= TOLERANCE * max(1.0, want.abs().max())
