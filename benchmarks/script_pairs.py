"""How far apart are the digits that look alike across the scripts? For each pair (a Latin digit
and the Bengali digit most often taken for it), a two-class model learns only that pair, with
the bilingual preset's network, augmentation and learning rate, from batches half Latin and half
Bengali. Its decision threshold is then set so that it calls a given share of the pair's Bengali
test digits Bengali (99%, 98%, 95%, 90%), and each row says how many of the pair's Latin test
digits it then calls Latin.

A pair that a model trained for nothing else cannot part bounds what the 20-class bilingual
model can do with it.

    python benchmarks/script_pairs.py --data-dir DIR [--steps 2000] [--pairs 0:0,2:2,8:4,9:7]

DIR holds mnist/ and cmaterdb-bangla/ (CMATERdb 3.1.1: non-commercial research use; credit
CMATER, Jadavpur University).
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from digitlab.data import cmaterdb, mnist
from digitlab.data.augment import Augment
from digitlab.models import build_model
from digitlab.training.bench import build_config, machine, preset_path

BENGALI_RIGHT = (0.99, 0.98, 0.95, 0.90)  # shares of the Bengali test digits kept Bengali
HALF_BATCH = 64  # digits of each script per step


def pair_images(split, digit: int) -> torch.Tensor:
    """The split's images of one class, float in [0, 1], [N, 1, 28, 28]."""
    return (split.images[split.labels == digit].float() / 255)[:, None]


def train_pair(cfg, latin: torch.Tensor, bengali: torch.Tensor, steps: int,
               seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = build_model(cfg.model, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, cfg.optim.lr, total_steps=steps)
    augment = Augment.from_config(cfg.data)
    mean, std = cfg.data.mean, cfg.data.std
    model.train()
    for _step in range(steps):
        pick_l = torch.randint(0, len(latin), (HALF_BATCH,), generator=gen)
        pick_b = torch.randint(0, len(bengali), (HALF_BATCH,), generator=gen)
        x = augment(torch.cat([latin[pick_l], bengali[pick_b]]), gen, 0.0, 1.0).clamp(0, 1)
        y = torch.cat([torch.zeros(HALF_BATCH), torch.ones(HALF_BATCH)]).long()
        loss = F.cross_entropy(model((x - mean) / std), y,
                               label_smoothing=cfg.loss.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return model.eval()


@torch.no_grad()
def margins(model: torch.nn.Module, cfg, images: torch.Tensor) -> torch.Tensor:
    """Bengali logit minus Latin logit, per image."""
    logits = model((images - cfg.data.mean) / cfg.data.std)
    return logits[:, 1] - logits[:, 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, help="holds mnist/ and cmaterdb-bangla/")
    parser.add_argument("--steps", type=int, default=2000, help="training steps per pair")
    parser.add_argument("--pairs", default="0:0,2:2,8:4,9:7",
                        help="LATIN:BENGALI digit values, comma-separated")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.steps < 1:
        parser.error(f"--steps must be at least 1, not {args.steps}")
    if not re.fullmatch(r"[0-9]:[0-9](,[0-9]:[0-9])*", args.pairs):
        parser.error(f"--pairs takes LATIN:BENGALI digit values such as 0:0,2:2, "
                     f"not {args.pairs!r}")
    pairs = [tuple(int(v) for v in pair.split(":")) for pair in args.pairs.split(",")]

    cfg, _sources = build_config(preset_path("bilingual"), [], {"seed": args.seed})
    latin = mnist.load(mnist.MNIST, str(Path(args.data_dir) / "mnist"), False)
    bengali = cmaterdb.load(args.data_dir, allow_download=False)
    table = Table(title=f"Two-class models, one per pair ({args.steps} steps of "
                        f"{HALF_BATCH} + {HALF_BATCH} digits, the bilingual preset's recipe): "
                        "test digits called by their own script")
    for column in ("pair", "Bengali right", "Latin right"):
        table.add_column(column, justify="right")
    for a, b in pairs:
        start = time.perf_counter()
        model = train_pair(cfg, pair_images(latin.train, a), pair_images(bengali.train, b),
                           args.steps, args.seed)
        on_latin = margins(model, cfg, pair_images(latin.test, a))
        on_bengali = margins(model, cfg, pair_images(bengali.test, b)).sort().values
        name = f"{latin.classes[a]} / {bengali.classes[b]} ({time.perf_counter() - start:.0f} s)"
        for share in BENGALI_RIGHT:
            threshold = on_bengali[round((1 - share) * len(on_bengali))]  # Bengali: >= threshold
            right_b = int((on_bengali >= threshold).sum())
            right_l = int((on_latin < threshold).sum())
            table.add_row(name if share == BENGALI_RIGHT[0] else "",
                          f"{100 * right_b / len(on_bengali):.2f}% of {len(on_bengali)}",
                          f"{100 * right_l / len(on_latin):.2f}% of {len(on_latin)}")
        table.add_section()
    console = Console(width=120)
    console.print(f"machine: {machine()}")
    console.print(table)


if __name__ == "__main__":
    main()
