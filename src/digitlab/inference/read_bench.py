"""`digitlab bench --parts read`: the ways of reading a number, side by side.

- segment: configs/robust.toml's single-digit model, the line cut into digits (inference.segment);
- ctc: configs/read.toml's sequence model (`digitlab train --task read`);
- combined: the two runs together (inference.combined).
Each reads three sets of handwritten numbers of 3 to 8 digits, composed by data.lines.compose
with a fixed seed and written as PNG files (dark ink on white, at twice the composed size),
then read back exactly as `digitlab read` reads them:
- mnist: from the MNIST test digits, neighbours apart;
- sklearn: from scikit-learn's 1,797 digits by 43 writers (8x8 scans, upsampled): other writers;
- touching: from the MNIST test digits, every pair of neighbours touching;
- photos: the mnist numbers photographed by inference.render's phone-photo generator (paper,
  uneven light, shadow edges, dark corners, ruled or squared lines, noise, JPEG), seeded.
Runs are trained here (seed 0) unless --runs robust=DIR,read=DIR gives them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.table import Table

from digitlab.data.dataset import Split
from digitlab.data.lines import compose
from digitlab.i18n import N_, _
from digitlab.inference.preprocess import ImageError, open_image
from digitlab.inference.reader import Reader
from digitlab.training.sequence import edit_distance

PRESETS = {"segment": "robust", "ctc": "read"}  # method -> the preset trained for it
METHODS = (*PRESETS, "combined")  # combined: the read run, the robust run beside it
TRAIN_SEED = 0
LINES = 500  # numbers per set
DIGITS = (3, 8)  # digits per number
SEED = 2026  # the sets' seed
SETS = {"mnist": N_("MNIST test digits, apart"),
        "sklearn": N_("scikit-learn digits, 43 writers"),
        "touching": N_("MNIST test digits, touching"),
        "photos": N_("MNIST numbers as phone photos")}


def sklearn_frames() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 8x8 digits as 28x28 frames: upsampled (bicubic) to fill the 20x20 box,
    blocky and blurred as a small scan is."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    frames = np.zeros((len(bunch.target), 28, 28), dtype=np.uint8)
    for i, image in enumerate(bunch.images):
        small = Image.fromarray((image * 255 / 16).astype(np.float32), "F")
        big = np.asarray(small.resize((20, 20), Image.Resampling.BICUBIC))
        frames[i, 4:24, 4:24] = np.clip(big, 0, 255).astype(np.uint8)
    return torch.from_numpy(frames), torch.from_numpy(bunch.target.astype(np.int64))


def build_sets(test: Split, count: int) -> dict:
    gen = torch.Generator().manual_seed(SEED)
    sklearn = sklearn_frames()
    return {"mnist": compose(test.images, test.labels, count, gen, *DIGITS),
            "sklearn": compose(*sklearn, count, gen, *DIGITS),
            "touching": compose(test.images, test.labels, count, gen, *DIGITS, touching=1.0)}


def photo(ink: np.ndarray, seed: int) -> bytes:
    """JPEG bytes: a composed line (float [h, w], ink 1) written large on a random scene of
    inference.render (the number fills up to 85% of the width), tilted up to 3 degrees."""
    from dataclasses import replace

    from digitlab.inference.render import photograph, random_scene

    rng = np.random.default_rng(seed)
    scene = random_scene(rng)
    width, height = scene.size
    scale = min(0.85 * width / ink.shape[1], 0.5 * height / ink.shape[0])
    big = Image.fromarray(ink.astype(np.float32), "F").resize(
        (round(ink.shape[1] * scale), round(ink.shape[0] * scale)), Image.Resampling.BICUBIC)
    big = big.rotate(rng.uniform(-3, 3), Image.Resampling.BILINEAR, expand=True)
    edge = 0.1 * max(1.0, 4 / scale)  # about a pixel of anti-aliasing, as render's digits
    coverage = np.clip((np.asarray(big) - scene.stroke_level) / edge + 0.5, 0.0, 1.0)
    layer = np.zeros((height, width), dtype=np.float32)
    top, left = (height - big.height) // 2, (width - big.width) // 2
    layer[top:top + big.height, left:left + big.width] = coverage
    digit_height = 20 * scale  # the digits of a composed line are about 20 px tall
    scene = replace(scene, line_gap=int(digit_height * rng.uniform(0.9, 1.6)))
    return photograph(layer, scene, seed)


def write_lines(folder: Path, lines, photos: bool = False) -> list[tuple[Path, str]]:
    """Each line as a PNG, dark ink on white, twice the composed size, or as a phone photo
    (JPEG); (path, its digits)."""
    files = []
    for i in range(len(lines)):
        ink = lines.images[i, 0, :, :int(lines.widths[i])].cpu().numpy()
        if photos:
            path = folder / f"{i:05d}.jpg"
            path.write_bytes(photo(ink, SEED + i))
        else:
            image = Image.fromarray(np.round(255 * (1 - ink)).astype(np.uint8))
            image = image.resize((image.width * 2, image.height * 2), Image.Resampling.BICUBIC)
            path = folder / f"{i:05d}.png"
            image.save(path)
        files.append((path, "".join(str(d) for d in lines.texts[i])))
    return files


def score(reader: Reader, files: list[tuple[Path, str]]) -> dict:
    """Exact match and character error rate; an unreadable file is wrong in every digit."""
    exact = edits = failed = 0
    for path, truth in files:
        try:
            text = reader.read_image(open_image(path), str(path)).text
        except ImageError:
            failed += 1
            edits += len(truth)
            continue
        exact += text == truth
        edits += edit_distance(list(text), list(truth))
    return {"exact_match": exact / len(files), "cer": edits / sum(len(t) for _path, t in files),
            "unreadable": failed}


def run_read(test: Split, runs: dict[str, Path], data_dir: str | None, console,
             count: int = LINES) -> dict:
    """Every set read by both methods: a run from `runs` (by preset), else one trained here."""
    from digitlab.inference.robustness import recorded_seconds
    from digitlab.training.bench import preset_path, train_preset

    for preset in PRESETS.values():
        if preset not in runs:
            preset_path(preset)  # a missing preset stops before any work
    result: dict = {"train_seed": TRAIN_SEED, "count": count, "methods": {}, "sets": {}}
    with tempfile.TemporaryDirectory(prefix="digitlab-read-") as folder:
        console.print(_("read: composing the numbers and writing them as PNG files ..."))
        files = {}
        sets = build_sets(test, count)
        for name, lines in sets.items():
            (Path(folder) / name).mkdir()
            files[name] = write_lines(Path(folder) / name, lines)
        (Path(folder) / "photos").mkdir()
        files["photos"] = write_lines(Path(folder) / "photos", sets["mnist"], photos=True)
        readers = {}
        for method, preset in PRESETS.items():
            path, seconds = runs.get(preset), None
            if path is None:
                console.print(_("read: training preset {preset} (seed {seed}) ...").format(
                    preset=preset, seed=TRAIN_SEED))
                path = Path(folder) / f"run-{preset}"
                seconds = train_preset(preset, TRAIN_SEED, data_dir, path)["train_seconds"]
            else:
                seconds = recorded_seconds(path)
            readers[method] = Reader.load(path, method, device="cpu")
            result["methods"][method] = {"preset": preset, "train_seconds": seconds,
                                         "run": str(runs[preset]) if preset in runs else None}
        readers["combined"] = Reader(readers["ctc"].run, "combined",
                                     digits=readers["segment"].run)
        for method, reader in readers.items():
            for name, listed in files.items():
                result["sets"].setdefault(name, {})[method] = score(reader, listed)
    return result


def table(result: dict) -> Table:
    table = Table(title=_("read: whole numbers of {low}-{high} digits, through digitlab read")
                  .format(low=DIGITS[0], high=DIGITS[1]),
                  caption=_("exact: numbers read without a mistake; CER: character error rate "
                            "(edits / true digits); * a reused run: the time in its "
                            "summary.json"))
    table.add_column(_("set"), justify="left", no_wrap=True)
    for method in METHODS:
        table.add_column(_("{method} exact").format(method=method), justify="right")
        table.add_column(_("{method} CER").format(method=method), justify="right")
    for name, row in result["sets"].items():
        cells = []
        for method in METHODS:
            cells += [f"{100 * row[method]['exact_match']:.2f}%",
                      f"{100 * row[method]['cer']:.2f}%"]
        table.add_row(_(SETS[name]), *cells)
    times = []
    for method in PRESETS:
        info = result["methods"][method]
        seconds = info["train_seconds"]
        times += [("-" if seconds is None else f"{seconds:,.1f}") + ("*" if info["run"] else ""),
                  ""]
    table.add_row(_("training time (s)"), *times, _("both"), "")
    return table
