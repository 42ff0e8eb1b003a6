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
from digitlab.errors import UsageError
from digitlab.i18n import _, ngettext
from digitlab.io import read_jsonl
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


CONFIGS = Path(__file__).resolve().parents[2] / "configs"  # the checkout's presets


def preset_runs(name: str, seeds: list[int], data_dir: str | None, target: float) -> dict:
    """Train a preset once per seed; accuracy, time, and time until `target` test accuracy."""
    from digitlab.training import train

    path = CONFIGS / f"{name}.toml"
    if not path.is_file():
        raise UsageError(_("preset {path} not found; run digitlab bench from a checkout").format(
            path=path))
    runs = []
    for seed in seeds:
        cfg, _sources = build_config(path, [], {"seed": seed, "data_dir": data_dir})
        with tempfile.TemporaryDirectory() as out:
            cfg = replace(cfg, train=replace(cfg.train, out=str(Path(out) / "run")))
            summary = train(cfg, console=Console(quiet=True))
            history = read_jsonl(Path(out) / "run" / "metrics.jsonl")
        elapsed, reached = 0.0, None
        for record in history:
            elapsed += record["epoch_seconds"]
            if reached is None and record["test_accuracy"] >= target:
                reached = elapsed
        runs.append({"seed": seed, "test_accuracy": summary["test_accuracy"],
                     "train_seconds": summary["train_seconds"], "seconds_to_target": reached})
    accs = [r["test_accuracy"] for r in runs]
    secs = [r["train_seconds"] for r in runs]
    return {"preset": name, "target": target, "runs": runs,
            "accuracy": {"mean": sum(accs) / len(accs), "min": min(accs), "max": max(accs)},
            "train_seconds": {"mean": sum(secs) / len(secs), "min": min(secs),
                              "max": max(secs)}}


def predict_throughput(images: torch.Tensor, single: int = 300) -> dict:
    """Images per second through Predictor.probabilities: one call per 1000, and one by one."""
    from digitlab.config import ModelConfig
    from digitlab.models import build_model
    from digitlab.serve.predict import Predictor

    model = build_model(ModelConfig(), 10).eval()
    predictor = Predictor(model, Config(), tuple("0123456789"), 0.1307, 0.3081,
                          torch.device("cpu"), {}, Path("-"))
    predictor.probabilities(images[:1000])  # warm-up
    started = time.perf_counter()
    for start in range(0, len(images), 1000):
        predictor.probabilities(images[start:start + 1000])
    batch = len(images) / (time.perf_counter() - started)
    started = time.perf_counter()
    for i in range(single):
        predictor.probabilities(images[i:i + 1])
    return {"batch_images_per_second": batch,
            "single_images_per_second": single / (time.perf_counter() - started)}


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


def run_bench(epochs: int = 5, seed: int = 42, dataset: str = "mnist",
              data_dir: str | None = None, as_json: bool = False,
              parts: tuple[str, ...] = ("seed",), seeds: int = 3) -> dict:
    shortcuts = {"epochs": epochs, "seed": seed, "dataset": dataset, "data_dir": data_dir}
    cfg, _sources = build_config(None, [], shortcuts)
    console = Console(highlight=False, soft_wrap=True, markup=False, quiet=as_json)
    data = SOURCES.get(cfg.data.name)(cfg.data)
    console.print(ngettext("bench: seed recipe, {dataset}, {epochs} epoch, seed {seed}",
                           "bench: seed recipe, {dataset}, {epochs} epochs, seed {seed}",
                           epochs).format(dataset=data.title, epochs=epochs, seed=seed) + "\n"
        + _("machine: {machine}").format(machine=machine()))
    result = {"dataset": data.name, "epochs": epochs, "seed": seed, "machine": machine()}
    if "seed" in parts:
        console.print(_("seed recipe: the tutorial's pipeline (torchvision Dataset + "
                        "DataLoader)..."))
        tutorial = run_tutorial(data, cfg)
        console.print(_("seed recipe: digitlab's pipeline (device-resident tensors) ..."))
        ours = run_digitlab(cfg)
        result.update(tutorial=tutorial, digitlab=ours,
                      speedup=tutorial["train_seconds"] / ours["train_seconds"])
    if "presets" in parts:
        result["presets"] = []
        for name, target in (("fast99", 0.99), ("best", 0.995)):
            console.print(_("preset {preset}: {seeds} seeds ...").format(preset=name,
                                                                          seeds=seeds))
            result["presets"].append(preset_runs(name, [seed + i for i in range(seeds)],
                                                 data_dir, target))
    if "predict" in parts:
        console.print(_("predict throughput (seed MLP, CPU) ..."))
        result["predict"] = predict_throughput(data.test.images)
    if "memory" in parts:
        console.print(_("peak memory of a default run (a child process) ..."))
        result["peak_rss_mb"] = default_run_peak_rss(data_dir)
    if as_json:
        print(json.dumps(result, indent=2))
        return result
    print_result(console, result, len(data.train))
    return result


def print_result(console: Console, result: dict, train_size: int) -> None:
    if "tutorial" in result:
        table = Table(title=_("seed recipe: training loop, same model and recipe"))
        table.add_column(_("pipeline"), justify="left")
        for column in (_("train loop (s)"), _("samples/s"), _("test accuracy")):
            table.add_column(column, justify="right")
        for name in ("tutorial", "digitlab"):
            row = result[name]
            rate = result["epochs"] * train_size / row["train_seconds"]
            table.add_row(name, f"{row['train_seconds']:.2f}", f"{rate:,.0f}",
                          f"{100 * row['test_accuracy']:.2f}%")
        console.print(table)
        # the 7x goal is for MNIST's 60,000 images; on small sets fixed costs dominate
        speedup = (_("speedup: {speedup:.1f}x (goal: 7x)") if result["dataset"] == "mnist"
                   else _("speedup: {speedup:.1f}x"))
        console.print(speedup.format(speedup=result["speedup"]))
    for preset in result.get("presets", []):
        acc, secs = preset["accuracy"], preset["train_seconds"]
        reached = [r["seconds_to_target"] for r in preset["runs"]]
        to_target = (_("not reached by every seed") if None in reached
                     else _("{seconds:.1f} s mean").format(seconds=sum(reached) / len(reached)))
        console.print(_("preset {preset}: test accuracy {mean_accuracy:.2f}% "
                        "(min {min_accuracy:.2f}, max {max_accuracy:.2f}) in "
                        "{mean_seconds:.1f} s (min {min_seconds:.1f}, max {max_seconds:.1f}); "
                        "time to {target:.1f}%: {time_to_target}").format(
            preset=preset["preset"], mean_accuracy=100 * acc["mean"],
            min_accuracy=100 * acc["min"], max_accuracy=100 * acc["max"],
            mean_seconds=secs["mean"], min_seconds=secs["min"], max_seconds=secs["max"],
            target=100 * preset["target"], time_to_target=to_target))
    if "predict" in result:
        p = result["predict"]
        console.print(_("predict: {batch_rate:,.0f} images/s in batches of 1000, "
                        "{single_rate:,.0f} images/s one at a time (goal: 20,000 in batches)")
                      .format(batch_rate=p["batch_images_per_second"],
                              single_rate=p["single_images_per_second"]))
    if "peak_rss_mb" in result:
        console.print(_("peak RSS of a default run: {megabytes:,.0f} MB (goal: 1,500 MB)")
                      .format(megabytes=result["peak_rss_mb"]))
