"""Training benchmarks for `digitlab bench`: the tutorial's pipeline and digitlab's (same model
and recipe, one process), the presets over seeds, and the peak memory of a default run.

The tutorial side is the script as written: torchvision's MNIST Dataset (a PIL image and two
transforms per sample), DataLoader(batch_size=64, shuffle=True), `.item()` on every step.
Both sides time the training epochs only, and both then report test accuracy.
"""

from __future__ import annotations

import math
import os
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from rich.console import Console

from digitlab.config import Config, ModelConfig, build_config
from digitlab.data import Dataset, mnist
from digitlab.data.loader import ImageDataset, normalize
from digitlab.errors import UsageError
from digitlab.i18n import _
from digitlab.io import read_jsonl
from digitlab.models import build_model
from digitlab.models.seed_mlp import SeedMLP
from digitlab.training.distributed import resolve_device
from digitlab.training.heap import tune_heap


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads){gpu}, Python {platform.python_version()}")


def tutorial_datasets(dataset: Dataset, scratch: Path, mean: float, std: float):
    """torchvision's own MNIST class when the files are MNIST's, else the same per-sample path.

    torchvision unpacks into its root, so it gets a scratch root of links, never the user's."""
    if dataset.name == "mnist":
        from torchvision import datasets, transforms

        raw = scratch / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for base in mnist.FILES:
            source = Path(dataset.origin) / f"{base}.gz"
            if not source.is_file():
                break
            (raw / source.name).symlink_to(source.resolve())
        else:
            transform = transforms.Compose([transforms.ToTensor(),
                                            transforms.Normalize((mean,), (std,))])
            return (datasets.MNIST(str(scratch), train=True, download=True, transform=transform),
                    datasets.MNIST(str(scratch), train=False, download=True, transform=transform))
    return ImageDataset(dataset.train, mean, std), ImageDataset(dataset.test, mean, std)


def run_tutorial(dataset: Dataset, cfg: Config) -> dict:
    """The tutorial script's train() and test(), minus the prints."""
    from torch.utils.data import DataLoader

    torch.manual_seed(cfg.train.seed)
    with tempfile.TemporaryDirectory() as scratch:
        train_set, test_set = tutorial_datasets(dataset, Path(scratch), cfg.data.mean,
                                                cfg.data.std)
        train_loader = DataLoader(train_set, batch_size=cfg.data.batch_size, shuffle=True)
        test_loader = DataLoader(test_set, batch_size=cfg.data.test_batch_size, shuffle=False)
        device = resolve_device(cfg.train.device)
        model = SeedMLP(len(dataset.classes)).to(device)
        criterion = torch.nn.CrossEntropyLoss()
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr)

        started = time.perf_counter()
        model.train()
        for _ in range(cfg.train.epochs):
            running_loss = 0.0
            for data, targets in train_loader:
                data, targets = data.to(device), targets.to(device)
                optimizer.zero_grad()
                loss = criterion(model(data), targets)
                loss.backward()
                optimizer.step()
                running_loss += loss.item()
        if device.type == "cuda":
            torch.cuda.synchronize()  # the queued kernels belong to the training time
        seconds = time.perf_counter() - started

        model.eval()
        correct = total = 0
        with torch.no_grad():
            for data, targets in test_loader:
                data, targets = data.to(device), targets.to(device)
                correct += (model(data).argmax(1) == targets).sum().item()
                total += targets.size(0)
    return {"train_seconds": seconds, "test_accuracy": correct / total}


def run_digitlab(cfg: Config) -> dict:
    from digitlab.training import train

    with tempfile.TemporaryDirectory() as out:
        cfg = replace(cfg, train=replace(cfg.train, out=str(Path(out) / "run")))
        summary = train(cfg, console=Console(quiet=True))
    return {"train_seconds": summary["train_seconds"], "test_accuracy": summary["test_accuracy"],
            "cuda_graphs": summary["cuda_graphs"]}


# The public "99% in one epoch" small CNN: conv 1->24 (5x5), pool, relu, conv 24->32 (3x3), pool,
# relu, linear 800->256->10; batch 256, Adam lr 1e-2 betas (0.7, 0.9), one-cycle, one epoch.
SMALL_CNN = ModelConfig(name="smallcnn", channels=(24, 32), hidden=(256,))


def run_small_cnn(dataset: Dataset, seed: int, mean: float, std: float,
                  device: torch.device) -> dict:
    """That recipe in a plain eager loop (no digitlab machinery): the reference fast99 is timed
    against. The splits are standardized once, on the device, as digitlab's loader does."""
    import torch.nn.functional as F

    tune_heap()  # process-wide, as in every digitlab run of this process: the same conditions

    images, labels = normalize(dataset.train.images.to(device), mean, std), \
        dataset.train.labels.to(device)
    torch.manual_seed(seed)
    model = build_model(SMALL_CNN, len(dataset.classes)).to(device)
    batch = 256
    steps = -(-len(images) // batch)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.7, 0.9))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-2, total_steps=steps)
    started = time.perf_counter()
    order = torch.randperm(len(images), device=device)
    for i in range(steps):
        index = order[i * batch:(i + 1) * batch]
        loss = F.cross_entropy(model(images[index]), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    model.eval()
    test, correct = normalize(dataset.test.images.to(device), mean, std), 0
    with torch.no_grad():
        for start in range(0, len(test), 2000):
            predicted = model(test[start:start + 2000]).argmax(1).cpu()
            correct += (predicted == dataset.test.labels[start:start + 2000]).sum().item()
    return {"seed": seed, "train_seconds": seconds, "test_accuracy": correct / len(test)}


def small_cnn_runs(dataset: Dataset, seeds: list[int], mean: float, std: float,
                   device: torch.device) -> dict:
    runs = [run_small_cnn(dataset, seed, mean, std, device) for seed in seeds]
    return {"runs": runs, "accuracy": spread([r["test_accuracy"] for r in runs]),
            "train_seconds": spread([r["train_seconds"] for r in runs])}


def spread(values: list[float]) -> dict:
    """Mean, min, max and the sample standard deviation (0 for one value)."""
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1)
    return {"mean": mean, "min": min(values), "max": max(values), "std": math.sqrt(var)}


CONFIGS = Path(__file__).resolve().parents[3] / "configs"  # the checkout's presets


def preset_path(name: str) -> Path:
    """configs/NAME.toml of this checkout, or a one-line UsageError."""
    path = CONFIGS / f"{name}.toml"
    if not path.is_file():
        raise UsageError(_("preset {path} not found; run digitlab bench from a checkout").format(
            path=path))
    return path


def train_preset(name: str, seed: int, data_dir: str | None, out: Path,
                 device: str = "auto") -> dict:
    """Train preset NAME once into the run directory `out`, quietly; train()'s summary."""
    from digitlab.training import train

    cfg, _sources = build_config(preset_path(name), [], {"seed": seed, "data_dir": data_dir,
                                                          "device": device})
    cfg = replace(cfg, train=replace(cfg.train, out=str(out)))
    return train(cfg, console=Console(quiet=True))


def preset_runs(name: str, seeds: list[int], data_dir: str | None, target: float,
                device: str = "auto") -> dict:
    """Train a preset once per seed; accuracy, time, and time until `target` test accuracy."""
    preset_path(name)  # before any training
    runs = []
    for seed in seeds:
        with tempfile.TemporaryDirectory() as out:
            summary = train_preset(name, seed, data_dir, Path(out) / "run", device)
            history = read_jsonl(Path(out) / "run" / "metrics.jsonl")
        elapsed, reached = 0.0, None
        for record in history:
            elapsed += record["epoch_seconds"]
            if reached is None and record["test_accuracy"] >= target:
                reached = elapsed
        runs.append({"seed": seed, "test_accuracy": summary["test_accuracy"],
                     "train_seconds": summary["train_seconds"], "seconds_to_target": reached})
    return {"preset": name, "target": target, "runs": runs,
            "accuracy": spread([r["test_accuracy"] for r in runs]),
            "train_seconds": spread([r["train_seconds"] for r in runs])}


PEAK_RSS_CHILD = """
import resource, sys
from digitlab.cli import main
code = main(["train", *sys.argv[1:]])
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:  # VmHWM is this process's own high-water mark; ru_maxrss can include the parent's
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            peak_kib = int(line.split()[1])
except OSError:
    pass
print("PEAK_KIB", peak_kib)
sys.exit(code)
"""


def default_run_peak_rss(data_dir: str | None) -> float:
    """Peak resident memory (MB) of a whole default `digitlab train`, in a child process."""
    import subprocess
    import sys

    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-c", PEAK_RSS_CHILD, "--out", str(Path(out) / "run")]
        if data_dir:
            cmd += ["--data-dir", data_dir]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    peak = [line for line in done.stdout.splitlines() if line.startswith("PEAK_KIB")]
    return int(peak[-1].split()[1]) / 1024
