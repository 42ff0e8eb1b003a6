"""Whole numbers in Bengali digits, read three ways: `segment` with a `bangla` run (each digit
cut out and read by the single-digit model), `ctc` with a `read-bangla` run (the line read as a
whole), and `combined`, the two runs together (`digitlab read RUN --digits RUN`). The numbers
are composed from CMATERdb's test digits, as `digitlab bench --parts read` composes MNIST's
(3-8 digits, seed 2026), and written as PNG files, as phone photos, and with every pair of
neighbours touching.

    python benchmarks/read_bangla.py --data-dir DIR --bangla RUN --read RUN [--count 300]

DIR holds cmaterdb-bangla/ (CMATERdb 3.1.1: non-commercial research use; credit CMATER,
Jadavpur University). RUNs: `digitlab train --config configs/bangla.toml` and
`--config configs/read-bangla.toml`. Prints exact match and character error rate per set.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from digitlab.data import cmaterdb
from digitlab.data.lines import compose
from digitlab.inference.read_bench import DIGITS, SEED, score, write_lines
from digitlab.inference.reader import Reader
from digitlab.training.bench import machine

SETS = {"apart": ("numbers as PNG files", False, 0.0),
        "photos": ("the same numbers as phone photos", True, 0.0),
        "touching": ("every neighbour touching, PNG", False, 1.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, help="holds cmaterdb-bangla/")
    parser.add_argument("--bangla", required=True, help="a run of configs/bangla.toml")
    parser.add_argument("--read", required=True, help="a run of configs/read-bangla.toml")
    parser.add_argument("--count", type=int, default=300, help="numbers per set")
    args = parser.parse_args()

    dataset = cmaterdb.load(args.data_dir, allow_download=False)
    test, classes = dataset.test, dataset.classes
    readers = {"segment": Reader.load(args.bangla, "segment", device="cpu"),
               "ctc": Reader.load(args.read, "ctc", device="cpu")}
    readers["combined"] = Reader(readers["ctc"].run, "combined", digits=readers["segment"].run)
    gen = torch.Generator().manual_seed(SEED)
    numbers = compose(test.images, test.labels, args.count, gen, *DIGITS)
    touching = compose(test.images, test.labels, args.count, gen, *DIGITS, touching=1.0)
    table = Table(title=f"Bengali numbers of {DIGITS[0]}-{DIGITS[1]} CMATERdb test digits, "
                        f"{args.count} a set, through digitlab read")
    table.add_column("set", justify="left", no_wrap=True)
    for method in readers:
        table.add_column(f"{method} exact", justify="right")
        table.add_column(f"{method} CER", justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (title, photos, touch) in SETS.items():
            folder = Path(tmp) / name
            folder.mkdir()
            written = write_lines(folder, touching if touch else numbers, photos=photos)
            # the files' digits are class indices; the readers answer in the class names
            files = [(path, "".join(classes[int(d)] for d in text)) for path, text in written]
            cells = []
            for reader in readers.values():
                result = score(reader, files)
                cells += [f"{100 * result['exact_match']:.2f}%", f"{100 * result['cer']:.2f}%"]
            table.add_row(title, *cells)
    console = Console()
    console.print(f"machine: {machine()}")
    console.print(table)


if __name__ == "__main__":
    main()
