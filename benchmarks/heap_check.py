"""What glibc's heap settings (src/digitlab/training/heap.py) change in training time: each
preset is trained once with glibc's default heap and once tuned, each in a fresh process (the
heap's state depends on what the process allocated before), alternating, seed as given.

    python benchmarks/heap_check.py [--presets seed,fast99,best] [--seed 42] [--epochs N]
                                    [--data-dir DIR]

Prints one row per preset: train_seconds both ways, their ratio, and both test accuracies,
which are the same: the settings change where memory comes from, not what is computed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

CHILD = """
import json, sys
from rich.console import Console
import digitlab.training.heap as heap
from digitlab.config import Config
from digitlab.config.loading import apply_overrides
from digitlab.training import train
tuned, preset, seed, epochs, data_dir, out = sys.argv[1:]
if tuned == "0":
    heap._tuned = False  # decided already: glibc's defaults stay
cfg = Config() if preset == "seed" else Config.from_toml(f"configs/{preset}.toml")
overrides = {"train.seed": int(seed), "train.out": out}
if int(epochs):
    overrides["train.epochs"] = int(epochs)
if data_dir:
    overrides["data.dir"] = data_dir
summary = train(apply_overrides(cfg, overrides), console=Console(quiet=True))
print("RESULT", json.dumps([summary["train_seconds"], summary["test_accuracy"]]))
"""


def run(tuned: bool, preset: str, args) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run([sys.executable, "-c", CHILD, "1" if tuned else "0", preset,
                               str(args.seed), str(args.epochs), args.data_dir or "",
                               f"{out}/run"], check=True, capture_output=True, text=True)
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT")][-1]
    return tuple(json.loads(line.split(" ", 1)[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="seed,fast99,best")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--epochs", type=int, default=0, help="0: the preset's own")
    parser.add_argument("--data-dir", default="")
    args = parser.parse_args()
    print(f"{'preset':<10} {'default heap':>13} {'tuned heap':>11} {'ratio':>6}  accuracy")
    for preset in args.presets.split(","):
        default_s, default_acc = run(False, preset, args)
        tuned_s, tuned_acc = run(True, preset, args)
        print(f"{preset:<10} {default_s:>11.2f} s {tuned_s:>9.2f} s {default_s / tuned_s:>5.2f}x"
              f"  {100 * default_acc:.2f}% / {100 * tuned_acc:.2f}%", flush=True)


if __name__ == "__main__":
    main()
