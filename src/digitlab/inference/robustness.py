"""`digitlab bench --parts robustness`: what trained models read through the whole image path.

Each set is written as image files into a temporary folder and read back with `preprocess`,
as `digitlab predict` reads them; each model then predicts the 28x28 digits that gave
(preprocessing does not depend on the model, so each file is read once for every model).
A file that cannot be read counts as a wrong answer. The sets:
- sklearn: scikit-learn's 1,797 `load_digits()` (8x8, values 0..16) as 8x8 PNGs of dark ink
  on white (255 - v * 255 / 16); never trained or tuned on;
- photos: test digits rendered as phone photos by `inference.render` (seed = the digit's
  index), JPEG;
- mouse: drawings as the `digitlab serve` page sends them (`inference.mousedraw`), PNG;
- scans8: test digits made into 8x8 scans as scikit-learn's digits were made (a 32x32
  bitmap of the digit, its ink counted in 4x4 blocks: 0..16), dark ink on white PNGs;
- scans16, grey16: test digits as 16x16 scans whose digit was stretched to fill the box (each
  side on its own, as size-normalized scan collections store them), binarized at half
  contrast or kept grey, dark ink on white PNGs;
- tensors: the test digits as tensors, no files: the reference;
- png: the same test digits as 28x28 PNGs; its gap to `tensors` is what the file path costs.
The writers are shared with benchmarks/preprocess_check.py.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.table import Table

from digitlab.data.dataset import Split
from digitlab.data.mnist import DIGITS
from digitlab.errors import UsageError
from digitlab.i18n import N_, _
from digitlab.inference.mousedraw import drawing
from digitlab.inference.predictor import Predictor
from digitlab.inference.preprocess import ImageError, preprocess
from digitlab.inference.render import Scene, random_scene, render

PRESETS = ("seed", "best", "robust")  # configs/NAME.toml, compared side by side
TRAIN_SEED = 0  # each preset is trained once, with this seed
SETS = {"sklearn": N_("scikit-learn digits, 8x8 PNG"),
        "photos": N_("{dataset} test, photos (JPEG)"),
        "mouse": N_("mouse drawings, 280x280 PNG"),
        "scans8": N_("{dataset} test, 8x8 scans made as scikit-learn's"),
        "scans16": N_("{dataset} test, 16x16 box-filled binary scans"),
        "grey16": N_("{dataset} test, 16x16 box-filled grey scans"),
        "tensors": N_("{dataset} test, tensors (reference)"),
        "png": N_("{dataset} test, 28x28 PNG")}
BATCH_SIZE = 1000  # digits per forward pass

LabelledFiles = list[tuple[Path, int, str]]  # (file, label, tag: "all" or a photo's features)


@dataclass(frozen=True)
class Sizes:
    mnist: int = 10_000  # test digits as tensors and as 28x28 PNGs (at most the test split)
    photos: int = 2000  # test digits as photos
    mouse: int = 1000  # mouse drawings
    scans: int = 2000  # test digits as 8x8 scans and 16x16 box-filled scans, binary and grey


# ---------------------------------------------------------------- writers


def write_sklearn(folder: Path) -> LabelledFiles:
    from sklearn.datasets import load_digits

    digits = load_digits()
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i, (image, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        path = folder / f"{i:04d}.png"
        Image.fromarray((255 - image * 255 / 16).round().astype(np.uint8), "L").save(path)
        files.append((path, int(label), "all"))
    return files


def feature(scene: Scene) -> str:
    parts = [scene.lines] if scene.lines != "none" else []
    parts += ["shadow"] if scene.shadow else []
    parts += ["dark-corner"] if scene.dark_corner else []
    return "+".join(parts) or "plain"


def write_photos(folder: Path, images, labels, count: int) -> LabelledFiles:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(min(count, len(images))):
        scene = random_scene(np.random.default_rng(i))
        path = folder / f"{i:05d}.jpg"
        path.write_bytes(render(np.asarray(images[i]), scene, seed=i))
        files.append((path, int(labels[i]), feature(scene)))
    return files


def ink_crop(image: np.ndarray) -> np.ndarray:
    """The image cut to the box of what counts as ink: over half the brightest pixel."""
    rows, cols = np.nonzero(image > 0.5 * image.max())
    return image[rows.min():rows.max() + 1, cols.min():cols.max() + 1]


def box_filled(image: np.ndarray, side: int = 16, binary: bool = True) -> np.ndarray:
    """A digit as a size-normalized scan: its ink box stretched to fill side x side (each side
    on its own), binarized at half its peak or kept grey; dark ink on white, uint8."""
    crop = ink_crop(image)
    small = np.asarray(Image.fromarray(crop).resize((side, side), Image.Resampling.BILINEAR),
                       dtype=np.float32)
    if binary:
        small = (small > 0.5 * small.max()) * 255.0
    return (255 - small).clip(0, 255).astype(np.uint8)


def eight_by_eight(image: np.ndarray) -> np.ndarray:
    """A digit as scikit-learn's 8x8 digits were made (UCI optdigits): binarized, scaled to
    fit a 32x32 bitmap (aspect kept, centred), its ink counted in 4x4 blocks (0..16); dark
    ink on white, uint8."""
    crop = ink_crop(image) > 0.5 * image.max()
    height, width = crop.shape
    scale = 32 / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    bitmap = np.asarray(Image.fromarray(crop.astype(np.uint8) * 255).resize(
        size, Image.Resampling.NEAREST)) > 127
    canvas = np.zeros((32, 32), dtype=np.float32)
    top, left = (32 - size[1]) // 2, (32 - size[0]) // 2
    canvas[top:top + size[1], left:left + size[0]] = bitmap
    counts = canvas.reshape(8, 4, 8, 4).sum(axis=(1, 3))  # 0..16
    return (255 - counts * 255 / 16).round().astype(np.uint8)


def write_pngs(folder: Path, images, labels, count: int, scan=np.asarray) -> LabelledFiles:
    """The first `count` test digits as PNGs, each made into a scan by `scan(image)` (by
    default written as stored: 28x28, white ink on black)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(min(count, len(images))):
        path = folder / f"{i:05d}.png"
        Image.fromarray(scan(np.asarray(images[i])), "L").save(path)
        files.append((path, int(labels[i]), "all"))
    return files


def write_mouse(folder: Path, count: int, seed: int = 0) -> LabelledFiles:
    """Mouse drawings as the page sends them: opaque RGBA PNGs, white strokes on black."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(count):
        image, label = drawing(i, seed)
        path = folder / f"{i:05d}.png"
        Image.fromarray(image, "L").convert("RGBA").save(path)
        files.append((path, label, "all"))
    return files


# ---------------------------------------------------------------- reading and scoring


@dataclass(frozen=True)
class Readings:
    """The 28x28 digits a set gave, and how many items it has (unreadable files included)."""

    digits: np.ndarray  # uint8 [N, 28, 28], white ink on black: what a model sees
    labels: np.ndarray  # int64 [N]
    total: int  # items in the set; total - N could not be read

    @property
    def unreadable(self) -> int:
        return self.total - len(self.labels)


def read_files(files: LabelledFiles) -> Readings:
    """Each file through `preprocess`, as `digitlab predict` reads it."""
    digits, labels = [], []
    for path, label, _tag in files:
        try:
            digits.append(preprocess(path))
        except ImageError:
            continue  # counted as wrong: total stays len(files)
        labels.append(label)
    stacked = np.stack(digits) if digits else np.zeros((0, 28, 28), np.uint8)
    return Readings(stacked, np.array(labels, dtype=np.int64), len(files))


def build_sets(test: Split, sizes: Sizes) -> dict[str, Readings]:
    """Every set, written to a temporary folder of its own and read back (then removed)."""
    count = min(sizes.mnist, len(test))
    images, labels = test.images.numpy(), test.labels.numpy()
    writers = {"sklearn": write_sklearn,
               "photos": lambda folder: write_photos(folder, images, labels, sizes.photos),
               "mouse": lambda folder: write_mouse(folder, sizes.mouse),
               "scans8": lambda folder: write_pngs(folder, images, labels, sizes.scans,
                                                    eight_by_eight),
               "scans16": lambda folder: write_pngs(folder, images, labels, sizes.scans,
                                                     box_filled),
               "grey16": lambda folder: write_pngs(
                   folder, images, labels, sizes.scans,
                   lambda image: box_filled(image, binary=False)),
               "png": lambda folder: write_pngs(folder, images, labels, count)}
    sets = {"tensors": Readings(images[:count], labels[:count].astype(np.int64), count)}
    for name, write in writers.items():
        with tempfile.TemporaryDirectory(prefix=f"digitlab-{name}-") as folder:
            sets[name] = read_files(write(Path(folder)))
    return {name: sets[name] for name in SETS}  # in the table's order


def accuracy(predictor: Predictor, readings: Readings) -> float:
    """Correct answers over all items; unreadable files and non-finite outputs are wrong."""
    correct = 0
    for start in range(0, len(readings.labels), BATCH_SIZE):
        probs = predictor.probabilities(readings.digits[start:start + BATCH_SIZE])
        labels = torch.from_numpy(readings.labels[start:start + BATCH_SIZE])
        right = (probs.argmax(dim=1) == labels) & torch.isfinite(probs).all(dim=1)
        correct += int(right.sum())
    return correct / readings.total if readings.total else 0.0


# ---------------------------------------------------------------- runs


def parse_runs(text: str, presets: tuple[str, ...] = PRESETS) -> dict[str, Path]:
    """--runs seed=DIR,best=DIR,robust=DIR (any of `presets`) -> {preset: path}; UsageError
    else."""
    runs: dict[str, Path] = {}
    for item in (part.strip() for part in text.split(",")):
        name, sep, path = (s.strip() for s in item.partition("="))
        if not sep or not name or not path:
            raise UsageError(_("--runs: expected PRESET=RUN_DIR, found {item!r}; e.g. --runs "
                               "best=runs/best,robust=runs/robust").format(item=item))
        if name not in presets:
            raise UsageError(_("--runs: unknown preset {name!r}; choose from {presets}").format(
                name=name, presets=", ".join(presets)))
        if name in runs:
            raise UsageError(_("--runs: {name} is given twice").format(name=name))
        if not Path(path).exists():
            raise UsageError(_("--runs {name}={path}: no such run directory or checkpoint; "
                               "train it first or leave it out to train the preset here")
                             .format(name=name, path=path))
        runs[name] = Path(path)
    return runs


def load_digit_run(name: str, path: Path) -> Predictor:
    predictor = Predictor.load(path)
    if tuple(predictor.classes) != DIGITS:
        raise UsageError(_("--runs {name}={path}: the model's classes are {classes}, not the "
                           "digits 0-9; give a run trained on digits").format(
            name=name, path=path, classes=", ".join(predictor.classes)))
    return predictor


def recorded_seconds(path: Path) -> float | None:
    """train_seconds from a reused run's summary.json, when it is there and a number."""
    import json

    folder = path if path.is_dir() else path.parent.parent  # RUN/checkpoints/FILE
    try:
        seconds = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        seconds = seconds.get("train_seconds") if isinstance(seconds, dict) else None
    except (OSError, ValueError):
        return None
    ok = isinstance(seconds, (int, float)) and not isinstance(seconds, bool)
    return float(seconds) if ok and np.isfinite(seconds) else None


def run_robustness(test: Split, runs: dict[str, Path], sizes: Sizes, data_dir: str | None,
                   console) -> dict:
    """Every set, scored by each preset's model: a run from `runs`, else one trained here."""
    from digitlab.training.bench import preset_path, train_preset

    for name in (p for p in PRESETS if p not in runs):  # a missing preset stops before any work
        try:
            preset_path(name)
        except UsageError as e:
            raise UsageError(_("{error}, or give --runs {name}=RUN_DIR").format(
                error=e, name=name)) from None
    loaded = {name: load_digit_run(name, path) for name, path in runs.items()}
    console.print(_("robustness: writing each set as files and reading them back ..."))
    sets = build_sets(test, sizes)
    presets, scores = {}, {}
    for name in PRESETS:
        if name in loaded:
            scores[name] = {s: accuracy(loaded[name], readings) for s, readings in sets.items()}
            presets[name] = {"run": str(runs[name]), "train_seconds": recorded_seconds(runs[name])}
            continue
        console.print(_("robustness: training preset {preset} (seed {seed}) ...").format(
            preset=name, seed=TRAIN_SEED))
        with tempfile.TemporaryDirectory(prefix=f"digitlab-{name}-") as out:
            summary = train_preset(name, TRAIN_SEED, data_dir, Path(out) / name)
            predictor = load_digit_run(name, Path(out) / name)
            scores[name] = {s: accuracy(predictor, readings) for s, readings in sets.items()}
        presets[name] = {"run": None, "train_seconds": summary["train_seconds"]}
    return {"presets": presets, "train_seed": TRAIN_SEED,
            "sets": {s: {"count": readings.total, "unreadable": readings.unreadable,
                         "accuracy": {p: scores[p][s] for p in PRESETS}}
                     for s, readings in sets.items()},
            "png_gap_pp": {p: 100 * (scores[p]["tensors"] - scores[p]["png"]) for p in PRESETS}}


def table(result: dict, dataset: str) -> Table:
    """Rows: the sets, the PNG gap and the training time; columns: the presets."""
    table = Table(title=_("robustness: accuracy through the image path"),
                  caption=_("files read as digitlab predict reads them; failed: files it "
                            "could not read, counted as wrong; * a reused run: the time in its "
                            "summary.json"))
    table.add_column(_("set"), justify="left", no_wrap=True)
    table.add_column(_("images"), justify="right")
    table.add_column(_("failed"), justify="right")
    for name in PRESETS:
        table.add_column(name, justify="right")
    for name, row in result["sets"].items():
        table.add_row(_(SETS[name]).format(dataset=dataset), f"{row['count']:,}",
                      f"{row['unreadable']:,}",
                      *(f"{100 * row['accuracy'][p]:.2f}%" for p in PRESETS))
    gap = result["png_gap_pp"]
    table.add_row(_("gap, tensors - PNG (pp)"), "", "", *(f"{gap[p]:+.2f}" for p in PRESETS))
    times = []
    for p in PRESETS:
        seconds, run = result["presets"][p]["train_seconds"], result["presets"][p]["run"]
        text = "-" if seconds is None else f"{seconds:,.1f}"
        times.append(text + ("*" if run else ""))
    table.add_row(_("training time (s)"), "", "", *times)
    return table
