"""CUDA-only checks; skipped on machines without a GPU (CI has none)."""

import json

import pytest
import torch

from digitlab.cli import main
from digitlab.config import DataConfig
from digitlab.data import SOURCES, DeviceLoader

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA; none on this machine"),
]


def test_device_loader_lives_on_the_gpu():
    dataset = SOURCES.get("synthetic")(DataConfig(name="synthetic"))
    loader = DeviceLoader(dataset.train, 64, torch.device("cuda"), 0.1307, 0.3081, True, 0)
    images, labels = next(iter(loader))
    assert images.is_cuda and labels.is_cuda and images.shape == (64, 1, 28, 28)


@pytest.mark.parametrize("amp", ["off", "bf16", "fp16"])
def test_train_on_cuda(tmp_path, amp):
    out = tmp_path / f"run-{amp}"
    code = main(["train", "--dataset", "synthetic", "--epochs", "2", "--device", "cuda",
                 "--model", "cnn", "--set", f"train.amp={amp}", "--out", str(out)])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["device"].startswith("cuda")
    assert summary["test_accuracy"] > 0.9


def test_cuda_resume_continues(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "synthetic", "--epochs", "1", "--device", "cuda",
                 "--out", str(out)]) == 0
    assert main(["train", "--resume", str(out), "--epochs", "2"]) == 0
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]


# ---- CUDA graphs (training/graphs.py) --------------------------------------------------------

RECIPES = {
    "seed-mlp": [],
    "cnn-onecycle-bf16": ["model.name=cnn", "model.batchnorm=true", "model.dropout=0.1",
                          "sched.name=onecycle", "optim.lr=0.003", "train.amp=bf16",
                          "train.channels_last=true", "train.clip_norm=1.0",
                          "data.augment_shift=2"],
}


def cuda_run(out, graphs, *sets, epochs=1):
    args = ["train", "--dataset", "synthetic", "--epochs", str(epochs), "--device", "cuda",
            "--out", str(out), "--set", f"train.cuda_graphs={graphs}"]
    for item in sets:
        args += ["--set", item]
    assert main(args) == 0
    from digitlab.training.checkpoint import load_checkpoint

    tensors, _meta = load_checkpoint(out / "checkpoints" / "last.safetensors")
    summary = json.loads((out / "summary.json").read_text())
    return summary, {k: v for k, v in tensors.items() if k.startswith("model.")}


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_replays_compute_what_the_same_step_computes_eagerly(tmp_path, monkeypatch, recipe):
    """The graph against the same code run step by step (WARMUP past the run's end: nothing
    is captured): bit-identical for the MLP, equal to rounding with dropout and bf16."""
    from digitlab.training import graphs

    graphed, weights = cuda_run(tmp_path / "graphed", "true", *RECIPES[recipe])
    info = graphed["cuda_graphs"]
    assert info["used"] and info["replayed_steps"] > 0 and info["capture_seconds"] > 0
    assert info["eager_steps"] >= graphs.WARMUP
    monkeypatch.setattr(graphs, "WARMUP", 10**9)
    eager, eager_weights = cuda_run(tmp_path / "eager", "true", *RECIPES[recipe])
    assert eager["cuda_graphs"]["replayed_steps"] == 0
    for key, value in weights.items():
        if recipe == "seed-mlp":
            assert torch.equal(value, eager_weights[key]), key
        else:
            torch.testing.assert_close(value, eager_weights[key], msg=key)
    assert graphed["test_accuracy"] == pytest.approx(eager["test_accuracy"], abs=0.002)


def test_graphed_run_is_within_rounding_of_the_eager_loop(tmp_path):
    """Against the plain eager loop, which runs Adam's fused kernel: after one epoch the
    weights differ by rounding only, and so does the accuracy."""
    graphed, weights = cuda_run(tmp_path / "graphed", "true")
    eager, eager_weights = cuda_run(tmp_path / "eager", "false")
    assert eager["cuda_graphs"] == {"used": False, "reason": "train.cuda_graphs = false"}
    for key, value in weights.items():
        assert (value - eager_weights[key]).abs().max() < 0.05, key
    assert abs(graphed["test_accuracy"] - eager["test_accuracy"]) < 0.01
    assert graphed["train_seconds"] > 0


def test_auto_falls_back_and_says_why(tmp_path, capsys):
    summary, _weights = cuda_run(tmp_path / "run", "auto", "optim.name=sgd")
    assert summary["cuda_graphs"]["used"] is False
    assert "CUDA graphs off, the eager loop instead: optim.name is not adam or adamw" in \
        capsys.readouterr().out


def test_graphed_run_resumes(tmp_path):
    out = tmp_path / "run"
    cuda_run(out, "auto")
    assert main(["train", "--resume", str(out), "--epochs", "2"]) == 0
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    assert json.loads((out / "summary.json").read_text())["cuda_graphs"]["used"]


def test_bench_on_cuda_times_eager_and_graphed(capsys):
    assert main(["bench", "--device", "cuda", "--dataset", "synthetic", "--epochs", "1",
                 "--parts", "seed"]) == 0
    out = capsys.readouterr().out
    assert "digitlab, eager" in out and "digitlab, CUDA graphs" in out
    assert "GPU" in out  # the machine line names it
