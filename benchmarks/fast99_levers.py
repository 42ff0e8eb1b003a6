"""The levers behind configs/fast99.toml, measured one at a time: the public small CNN's
one-epoch recipe (conv 1->24 5x5, pool, relu, conv 24->32 3x3, pool, relu, linear 800->256->10;
batch 256, Adam lr 1e-2 betas (0.7, 0.9), one-cycle) in a plain loop, with one change each.

    python benchmarks/fast99_levers.py --data-dir DIR [--seeds 0,1,2] [--variants base,cl,...]

Prints, per variant, the test accuracy read once and at five positions (as given and moved one
pixel up, down, left, right; logits summed, as data.test_shifts = 1 does), both as the mean over
the seeds, their minimum, and the mean training time. Run it on a quiet machine: the variants
are timed one after the other in this process.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from digitlab.config import ModelConfig
from digitlab.data.loader import normalize
from digitlab.data.mnist import MNIST, load
from digitlab.models import build_model
from digitlab.training.heap import tune_heap

# name: (first-layer filters, hidden width, batch, peak lr, channels-last, label smoothing,
#        EMA decay (0: none), share of the epoch trained)
VARIANTS = {
    "base": (24, 256, 256, 1e-2, False, 0.0, 0.0, 1.0),
    "cl": (24, 256, 256, 1e-2, True, 0.0, 0.0, 1.0),
    "cl+ls0.1": (24, 256, 256, 1e-2, True, 0.1, 0.0, 1.0),
    "cl+ls0.2": (24, 256, 256, 1e-2, True, 0.2, 0.0, 1.0),
    "cl+ema0.99": (24, 256, 256, 1e-2, True, 0.0, 0.99, 1.0),
    "cl+c16": (16, 256, 256, 1e-2, True, 0.0, 0.0, 1.0),
    "cl+h128": (24, 128, 256, 1e-2, True, 0.0, 0.0, 1.0),
    "cl+b384": (24, 256, 384, 1.5e-2, True, 0.0, 0.0, 1.0),
    "cl+c20+ls0.1": (20, 256, 256, 1e-2, True, 0.1, 0.0, 1.0),
    "cl+c16+ls0.1": (16, 256, 256, 1e-2, True, 0.1, 0.0, 1.0),
    "cl+c16+ls0.1+0.9ep": (16, 256, 256, 1e-2, True, 0.1, 0.0, 0.9),
}


def five_positions(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    logits = model(images)
    for shift in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        logits = logits + model(torch.roll(images, shift, (2, 3)))
    return logits


def accuracy(predict, images: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        correct = sum((predict(images[i:i + 2000]).argmax(1) == labels[i:i + 2000]).sum().item()
                      for i in range(0, len(images), 2000))
    return 100 * correct / len(images)


def train_once(variant: tuple, seed: int, train, test) -> tuple[float, float, float]:
    filters, hidden, batch, lr, channels_last, smoothing, ema, share = variant
    torch.manual_seed(seed)
    model = build_model(ModelConfig(name="smallcnn", channels=(filters, 32), hidden=(hidden,)),
                        10)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=layout)
    steps = int(share * -(-len(train[0]) // batch))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.7, 0.9))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    average = (torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(ema)) if ema else None)
    order = torch.randperm(len(train[0]), generator=torch.Generator().manual_seed(seed))
    started = time.perf_counter()
    for i in range(steps):
        index = order[i * batch:(i + 1) * batch]
        images = train[0][index].contiguous(memory_format=layout)
        loss = F.cross_entropy(model(images), train[1][index], label_smoothing=smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if average is not None:
            average.update_parameters(model)
    seconds = time.perf_counter() - started
    final = (average.module if average is not None else model).eval()
    return (accuracy(final, *test), accuracy(lambda x: five_positions(final, x), *test), seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="the folder with MNIST's .gz files")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    tune_heap()  # as every digitlab run does (training/heap.py)
    dataset = load(MNIST, args.data_dir, False)

    train, test = ((normalize(split.images, 0.1307, 0.3081), split.labels)
                   for split in (dataset.train, dataset.test))
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"{'variant':<20} {'read once':>10} {'5 positions':>12} {'min':>13} {'time':>7}")
    for name in args.variants.split(","):
        runs = [train_once(VARIANTS[name], seed, train, test) for seed in seeds]
        once, five, seconds = zip(*runs, strict=True)
        print(f"{name:<20} {statistics.mean(once):>9.2f}% {statistics.mean(five):>11.2f}% "
              f"{min(once):>6.2f}/{min(five):.2f} {statistics.mean(seconds):>6.2f}s", flush=True)


if __name__ == "__main__":
    main()
