"""The tutorial's MNIST pipeline against digitlab's, side by side in one process.

    python benchmarks/seed_vs_digitlab.py [--epochs 5] [--seed 42] [--data-dir DIR] [--json]

Same as `digitlab bench`; kept here so the benchmark is easy to find and run from a checkout.
"""

import sys

from digitlab.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["bench", *sys.argv[1:]]))
