"""The per-step overhead of digitlab's training loop: the seed recipe (MLP 784-128-64-10, batch
64, Adam 1e-3, 938 steps an epoch) trained one epoch by `train()` and by the smallest loop that
computes the same steps (the same device-resident standardized tensors, seeded order, fused Adam;
nothing else), alternating in one process.

    python benchmarks/step_overhead.py --data-dir DIR [--rounds 5] [--device cpu]

Prints the median time per step of each, and their difference: what digitlab's loop adds to every
step (metrics on the device, the NaN guard, the progress bar, the step log). `train()` runs with
a terminal console writing to memory, so the progress bar is drawn as in a terminal.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console

from digitlab.config import Config
from digitlab.config.loading import apply_overrides
from digitlab.data import load_dataset
from digitlab.data.loader import normalize
from digitlab.models.seed_mlp import SeedMLP
from digitlab.training import train
from digitlab.training.heap import tune_heap


def plain_epoch(cfg: Config, images: torch.Tensor, labels: torch.Tensor,
                device: torch.device) -> tuple[float, int]:
    torch.manual_seed(cfg.train.seed)
    model = SeedMLP(10).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr, fused=True)
    loss_fn = torch.nn.CrossEntropyLoss()
    batch = cfg.data.batch_size
    steps = -(-len(labels) // batch)
    started = time.perf_counter()
    order = torch.randperm(len(labels), device=device)
    for i in range(steps):
        index = order[i * batch:(i + 1) * batch]
        loss = loss_fn(model(images[index]), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started, steps


def digitlab_epoch(cfg: Config) -> tuple[float, int]:
    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    with tempfile.TemporaryDirectory() as out:
        summary = train(apply_overrides(cfg, {"train.out": str(Path(out) / "run")}),
                        console=console)
    return summary["train_seconds"], summary["batches"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="the folder with MNIST's .gz files")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    tune_heap()
    cfg = apply_overrides(Config(), {"train.epochs": 1, "data.dir": args.data_dir,
                                     "train.device": args.device})
    device = torch.device(args.device)
    dataset = load_dataset(cfg.data)
    images = normalize(dataset.train.images.to(device), cfg.data.mean, cfg.data.std)
    labels = dataset.train.labels.to(device)
    plain, ours = [], []
    for _ in range(args.rounds):
        seconds, steps = plain_epoch(cfg, images, labels, device)
        plain.append(1e6 * seconds / steps)
        seconds, steps = digitlab_epoch(cfg)
        ours.append(1e6 * seconds / steps)
    a, b = statistics.median(plain), statistics.median(ours)
    print(f"per step, median of {args.rounds} epochs: plain loop {a:.0f} us, digitlab {b:.0f} us "
          f"(overhead {b - a:+.0f} us, {100 * (b - a) / a:+.0f}%)")
    print("plain   ", " ".join(f"{x:.0f}" for x in plain))
    print("digitlab", " ".join(f"{x:.0f}" for x in ours))


if __name__ == "__main__":
    main()
