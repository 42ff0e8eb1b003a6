"""How much preprocessing changes what a trained model reads: the same run scores image files
through the old preprocessing (commit OLD's, or a file given with --old) and the current one.

    python benchmarks/preprocess_check.py --run RUN_DIR [--mnist-dir DIR] [--mnist 2000]
                                          [--photos 500] [--old FILE] [--timing-runs 50]

Sets, each written as files into a temporary folder and read back through `preprocess(path)`,
as `digitlab predict` does:
- sklearn: scikit-learn's 1,797 `load_digits()` (43 writers, 8x8, values 0..16) as 8x8 PNGs
  of dark ink on white (255 - v * 255 / 16); a test set only, never tuned on;
- mnist-png: the first --mnist MNIST test digits as 28x28 PNGs, as MNIST stores them;
- photos: the first --photos MNIST test digits rendered as phone photos by
  digitlab.inference.render (seed = the digit's index): paper texture, uneven light, shadow
  edges, dark corners, ruled and squared lines, rotation, JPEG; also split by feature.
The writers are digitlab.inference.robustness's, shared with `digitlab bench --parts
robustness`.
Then the time `preprocess` takes on a 1280x960 JPEG photo (time.perf_counter, median and
mean of --timing-runs calls after one warm-up), for the old and the new code.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from digitlab.data.idx import read_idx
from digitlab.inference import preprocess as current
from digitlab.inference.predictor import Predictor
from digitlab.inference.render import Scene, render
from digitlab.inference.robustness import write_photos, write_pngs, write_sklearn

ROOT = Path(__file__).resolve().parent.parent
OLD = "4394fbc"  # the last commit with the preprocessing that issue 12 replaced


def old_module(path: Path | None, folder: Path):
    """The old preprocessing, imported under another name."""
    if path is None:
        path = folder / "old_preprocess.py"
        source = subprocess.run(["git", "show", f"{OLD}:src/digitlab/inference/preprocess.py"],
                                cwd=ROOT, check=True, capture_output=True, text=True).stdout
        path.write_text(source)
    spec = importlib.util.spec_from_file_location("old_preprocess", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def accuracy(predictor: Predictor, files, preprocess) -> tuple[float, int, dict[str, tuple]]:
    """Accuracy over files (an unreadable file counts as wrong), the number of such
    failures, and (correct, total) per tag."""
    digits, failures, valid = [], 0, []
    for path, _, _ in files:
        try:
            digits.append(preprocess(path))
            valid.append(True)
        except ValueError:  # ImageError of either version
            failures += 1
            valid.append(False)
    guesses = iter(predictor.probabilities(np.stack(digits)).argmax(1).tolist() if digits
                   else [])
    tags: dict[str, list[int]] = {}
    for (_, label, tag), ok in zip(files, valid, strict=True):
        right = ok and next(guesses) == label
        for key in {"all", tag}:
            counts = tags.setdefault(key, [0, 0])
            counts[0] += int(right)
            counts[1] += 1
    return tags["all"][0] / len(files), failures, {k: tuple(v) for k, v in tags.items()}


def timing(preprocess, data: bytes, runs: int) -> tuple[float, float]:
    preprocess(data)
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        preprocess(data)
        seconds.append(time.perf_counter() - start)
    return 1000 * statistics.median(seconds), 1000 * statistics.fmean(seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="a trained run directory or checkpoint")
    parser.add_argument("--mnist-dir", default="/work/shared/data/mnist")
    parser.add_argument("--mnist", type=int, default=2000, help="MNIST test digits as PNGs")
    parser.add_argument("--photos", type=int, default=500, help="MNIST test digits as photos")
    parser.add_argument("--old", type=Path, help=f"the old preprocess.py (default: {OLD}'s)")
    parser.add_argument("--timing-runs", type=int, default=50)
    args = parser.parse_args(argv)
    predictor = Predictor.load(args.run, device="cpu")
    mnist = Path(args.mnist_dir)
    images = read_idx(mnist / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(mnist / "t10k-labels-idx1-ubyte.gz")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        old = old_module(args.old, folder)
        sets = {"sklearn": write_sklearn(folder / "sklearn"),
                "mnist-png": write_pngs(folder / "mnist", images, labels, args.mnist),
                "photos": write_photos(folder / "photos", images, labels, args.photos)}
        print(f"{'set':<26}{'n':>6}{'old':>9}{'new':>9}   (unreadable old/new)")
        for name, files in sets.items():
            old_acc, old_fail, old_tags = accuracy(predictor, files, old.preprocess)
            new_acc, new_fail, new_tags = accuracy(predictor, files, current.preprocess)
            print(f"{name:<26}{len(files):>6}{100 * old_acc:>8.1f}%{100 * new_acc:>8.1f}%"
                  f"   ({old_fail}/{new_fail})")
            for tag in sorted(t for t in new_tags if t != "all"):
                (o, n), (c, _) = old_tags.get(tag, (0, 1)), new_tags[tag]
                print(f"  {tag:<24}{n:>6}{100 * o / n:>8.1f}%{100 * c / n:>8.1f}%")
    photo = render(images[0], Scene(size=(1280, 960), digit_height=400, shadow=0.4,
                                    lines="ruled", line_gap=70), seed=0)
    for label, module in (("old", old), ("new", current)):
        median, mean = timing(module.preprocess, photo, args.timing_runs)
        print(f"1280x960 JPEG, {label} preprocess: median {median:.1f} ms, mean {mean:.1f} ms"
              f" over {args.timing_runs} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
