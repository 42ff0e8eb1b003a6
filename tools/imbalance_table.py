"""The comparison table of docs/en|bn/guide-imbalance.md, section 5, from real runs.

    DIGITLAB_DATA=/path/to/mnist python tools/imbalance_table.py

Trains the guide's `none` baseline and its sweep (seed-mlp, ratio 100, 3 epochs, seed 42, CPU,
OMP_NUM_THREADS=1 as tools/doc_outputs.py pins it: the losses depend on the thread count) in a
temporary folder, about 25 s, and prints the table's rows and the test losses and step counts
the guide quotes. Paste the rows into both pages.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

COMMON = ["--set", "data.imbalance_ratio=100", "--epochs", "3", "--device", "cpu"]
MODES = [("weights", 0), ("weights", 1), ("sampler", 0), ("sampler", 1), ("lecun", 0),
         ("lecun", 1)]


def digitlab(*argv: str, cwd: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "digitlab", *argv], cwd=cwd, env=env, check=True,
                   capture_output=True)


def row(mode: str, finetune: int, run: Path) -> str:
    evaluation = json.loads((run / "evaluation.json").read_text(encoding="utf-8"))
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    recall = {label: values["recall"] for label, values in evaluation["per_class"].items()}
    return (f"| {mode} | {finetune} | {100 * evaluation['test_accuracy']:.2f}% | "
            f"{evaluation['macro_avg']['f1']:.3f} | {recall['8']:.3f} | {recall['9']:.3f} |"
            f"    test loss {evaluation['test_loss']:.2f}, {summary['batches']:,} steps")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="imbalance-") as tmp:
        digitlab("train", *COMMON, "--out", "none", cwd=tmp)
        digitlab("sweep", "--grid", "data.balance=weights,sampler,lecun",
                 "--grid", "data.balance_finetune_epochs=0,1", *COMMON, "--out", "sweep",
                 cwd=tmp)
        print(row("none", 0, Path(tmp) / "none"))
        for mode, finetune in MODES:
            name = f"data.balance={mode}_data.balance_finetune_epochs={finetune}_seed=42"
            print(row(mode, finetune, Path(tmp) / "sweep" / name))


if __name__ == "__main__":
    main()
