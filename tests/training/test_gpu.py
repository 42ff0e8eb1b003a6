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
