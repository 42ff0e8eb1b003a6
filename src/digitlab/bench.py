"""`digitlab bench`: the tutorial's pipeline and digitlab's, same model and recipe, one process.

The tutorial side is the script as written: torchvision's MNIST Dataset (a PIL image and two
transforms per sample), DataLoader(batch_size=64, shuffle=True), `.item()` on every step.
Both sides time the training epochs only, and both then report test accuracy.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from digitlab.config import Config, build_config
from digitlab.data import SOURCES, Dataset, mnist
from digitlab.data.loader import ImageDataset
from digitlab.models.seed_mlp import SeedMLP


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
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
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
    return {"train_seconds": summary["train_seconds"], "test_accuracy": summary["test_accuracy"]}


def run_bench(epochs: int = 5, seed: int = 42, dataset: str = "mnist",
              data_dir: str | None = None, as_json: bool = False) -> dict:
    shortcuts = {"epochs": epochs, "seed": seed, "dataset": dataset, "data_dir": data_dir}
    cfg, _ = build_config(None, [], shortcuts)
    console = Console(highlight=False, soft_wrap=True, markup=False, quiet=as_json)
    data = SOURCES.get(cfg.data.name)(cfg.data)
    console.print(f"bench: seed recipe, {data.title}, {epochs} epochs, seed {seed}\n"
                  f"machine: {machine()}")
    console.print("running the tutorial's pipeline (torchvision Dataset + DataLoader) ...")
    tutorial = run_tutorial(data, cfg)
    console.print("running digitlab's pipeline (device-resident tensors) ...")
    ours = run_digitlab(cfg)
    result = {
        "dataset": data.name, "epochs": epochs, "seed": seed, "machine": machine(),
        "tutorial": tutorial, "digitlab": ours,
        "speedup": tutorial["train_seconds"] / ours["train_seconds"],
    }
    if as_json:
        print(json.dumps(result, indent=2))
        return result
    table = Table(title="training loop, same model and recipe")
    for column in ("pipeline", "train loop (s)", "samples/s", "test accuracy"):
        table.add_column(column, justify="right" if column != "pipeline" else "left")
    for name, row in (("tutorial script", tutorial), ("digitlab", ours)):
        rate = epochs * len(data.train) / row["train_seconds"]
        table.add_row(name, f"{row['train_seconds']:.2f}", f"{rate:,.0f}",
                      f"{100 * row['test_accuracy']:.2f}%")
    console.print(table)
    console.print(f"speedup: {result['speedup']:.1f}x")
    return result

