"""`digitlab bench`: every part side by side in one process, printed as one report.

The training parts live in `digitlab.training.bench`; inference adds predict throughput and
the robustness of the presets through the image path (`digitlab.inference.robustness`).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from digitlab.config import Config, build_config
from digitlab.data import load_dataset
from digitlab.data.mnist import DIGITS
from digitlab.i18n import _, ngettext
from digitlab.inference import bangla_bench, read_bench, robustness
from digitlab.inference.predictor import Predictor
from digitlab.io import dumps_json
from digitlab.models import build_model
from digitlab.training.bench import (
    default_run_peak_rss,
    machine,
    preset_runs,
    run_digitlab,
    run_tutorial,
    small_cnn_runs,
)
from digitlab.training.distributed import resolve_device


def predict_throughput(images: torch.Tensor, single: int = 300) -> dict:
    """Images per second through Predictor.probabilities: one call per 1000, and one by one."""
    cfg = Config()  # the seed recipe's model and normalization, untrained: speed only
    model = build_model(cfg.model, 10).eval()
    predictor = Predictor(model, cfg, DIGITS, cfg.data.mean, cfg.data.std, torch.device("cpu"))
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


def run_bench(epochs: int = 5, seed: int = 42, dataset: str = "mnist",
              data_dir: str | None = None, as_json: bool = False,
              parts: tuple[str, ...] = ("seed",), seeds: int = 3,
              runs: dict[str, Path] | None = None,
              sizes: robustness.Sizes | None = None, device: str = "auto") -> dict:
    """The parts asked for, printed as a report (or as JSON); the results as a dict.
    robustness and read: `runs` gives run directories to reuse by preset; `sizes` the
    robustness sets' sizes."""
    shortcuts = {"epochs": epochs, "seed": seed, "dataset": dataset, "data_dir": data_dir,
                 "device": device}
    cfg, _sources = build_config(None, [], shortcuts)
    on = resolve_device(device)  # a missing CUDA is refused here, before any work
    console = Console(highlight=False, soft_wrap=True, markup=False, quiet=as_json)
    data = load_dataset(cfg.data)
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
        if on.type == "cuda":  # the same loop without graphs, beside it
            console.print(_("seed recipe: digitlab's pipeline, eager (no CUDA graphs) ..."))
            result["digitlab_eager"] = run_digitlab(replace(cfg, train=replace(
                cfg.train, cuda_graphs=False)))
    if "presets" in parts:
        console.print(_("the public small CNN, plain loop, 1 epoch: {seeds} seeds ...").format(
            seeds=seeds))
        result["small_cnn"] = small_cnn_runs(data, [seed + i for i in range(seeds)],
                                             cfg.data.mean, cfg.data.std, on)
        result["presets"] = []
        for name, target in (("fast99", 0.99), ("best", 0.995)):
            console.print(_("preset {preset}: {seeds} seeds ...").format(preset=name,
                                                                          seeds=seeds))
            result["presets"].append(preset_runs(name, [seed + i for i in range(seeds)],
                                                 data_dir, target, device))
    if "predict" in parts:
        console.print(_("predict throughput (seed MLP, CPU) ..."))
        result["predict"] = predict_throughput(data.test.images)
    if "memory" in parts:
        console.print(_("peak memory of a default run (a child process) ..."))
        result["peak_rss_mb"] = default_run_peak_rss(data_dir)
    if "robustness" in parts:
        digit_runs = {k: v for k, v in (runs or {}).items() if k in robustness.PRESETS}
        result["robustness"] = robustness.run_robustness(data.test, digit_runs,
                                                         sizes or robustness.Sizes(), data_dir,
                                                         console)
    if "bangla" in parts:
        result["bangla"] = bangla_bench.run_bangla(data_dir, console)
    if "read" in parts:
        result["read"] = read_bench.run_read(data.test, runs or {}, data_dir, console)
    if as_json:
        print(dumps_json(result, indent=2))
        return result
    print_result(console, result, len(data.train), data.title)
    return result


def against_small_cnn(fast99: dict, small: dict) -> str:
    """fast99 beside the public small CNN's plain loop, timed in the same process."""
    ratio = fast99["train_seconds"]["mean"] / small["train_seconds"]["mean"]
    return _("fast99 against the public small CNN (plain loop, 1 epoch): {seconds:.2f} s vs "
             "{small_seconds:.2f} s of training, {ratio:.2f}x (goal: <= 0.85x); test accuracy "
             "{accuracy:.2f}% vs {small_accuracy:.2f}% (min {small_min:.2f}, max "
             "{small_max:.2f})").format(
        seconds=fast99["train_seconds"]["mean"], small_seconds=small["train_seconds"]["mean"],
        ratio=ratio, accuracy=100 * fast99["accuracy"]["mean"],
        small_accuracy=100 * small["accuracy"]["mean"], small_min=100 * small["accuracy"]["min"],
        small_max=100 * small["accuracy"]["max"])


def pipeline_name(name: str, row: dict) -> str:
    """A row of the seed table: on CUDA, digitlab's loop without and with graphs."""
    if name == "digitlab_eager":
        return _("digitlab, eager")
    if name == "digitlab" and row.get("cuda_graphs", {}).get("used"):
        return _("digitlab, CUDA graphs")
    return name


def print_result(console: Console, result: dict, train_size: int, dataset_title: str) -> None:
    if "tutorial" in result:
        table = Table(title=_("seed recipe: training loop, same model and recipe"))
        table.add_column(_("pipeline"), justify="left")
        for column in (_("train loop (s)"), _("samples/s"), _("test accuracy")):
            table.add_column(column, justify="right")
        for name in ("tutorial", "digitlab_eager", "digitlab"):
            if name not in result:
                continue
            row = result[name]
            rate = result["epochs"] * train_size / row["train_seconds"]
            table.add_row(pipeline_name(name, row), f"{row['train_seconds']:.2f}", f"{rate:,.0f}",
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
                        "(min {min_accuracy:.2f}, max {max_accuracy:.2f}, std "
                        "{std_accuracy:.2f}) in {mean_seconds:.2f} s (min {min_seconds:.2f}, "
                        "max {max_seconds:.2f}, std {std_seconds:.2f}); time to "
                        "{target:.1f}%: {time_to_target}").format(
            preset=preset["preset"], mean_accuracy=100 * acc["mean"],
            min_accuracy=100 * acc["min"], max_accuracy=100 * acc["max"],
            std_accuracy=100 * acc["std"], mean_seconds=secs["mean"], min_seconds=secs["min"],
            max_seconds=secs["max"], std_seconds=secs["std"], target=100 * preset["target"],
            time_to_target=to_target))
        if preset["preset"] == "fast99" and "small_cnn" in result:
            console.print(against_small_cnn(preset, result["small_cnn"]))
    if "predict" in result:
        p = result["predict"]
        console.print(_("predict: {batch_rate:,.0f} images/s in batches of 1000, "
                        "{single_rate:,.0f} images/s one at a time (goal: 20,000 in batches)")
                      .format(batch_rate=p["batch_images_per_second"],
                              single_rate=p["single_images_per_second"]))
    if "peak_rss_mb" in result:
        console.print(_("peak RSS of a default run: {megabytes:,.0f} MB (goal: 1,500 MB)")
                      .format(megabytes=result["peak_rss_mb"]))
    if "robustness" in result:
        console.print(robustness.table(result["robustness"], dataset_title))
    for table in bangla_bench.tables(result["bangla"]) if "bangla" in result else []:
        console.print(table)
    if "read" in result:
        console.print(read_bench.table(result["read"]))
