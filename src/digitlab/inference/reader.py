"""Read a handwritten number: a photo or scan of one line of digits -> its text.

Three methods. `segment` cuts the line into digits (inference.segment) and reads each with a
single-digit run, as `digitlab predict` would; `ctc` reads the whole line with a sequence model
trained with `digitlab train --task read`; `combined` (inference.combined) reads it with both,
a CTC run and a single-digit one beside it. `auto` takes the one the runs given are for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from digitlab.errors import UsageError
from digitlab.i18n import _
from digitlab.inference.cuts import WIDEST, line_parts
from digitlab.inference.predictor import Predictor, expand_inputs
from digitlab.inference.preprocess import ImageError, grey_levels, open_image
from digitlab.inference.run import Run, load_run
from digitlab.inference.segment import Line, Piece, find_line

METHODS = ("auto", "segment", "ctc", "combined")
SHORT = 0.6  # a part lower than this (in line heights) is unlikely to be a digit: each
SHORT_COST = 10.0  # ... line height lower costs this much log-probability, and a piece
WIDE_COST = 3.0  # ... read whole though wider than WIDEST this much for each line height more


@dataclass(frozen=True)
class ReadDigit:
    label: str  # the class name: "7", or "৭" for a Bengali run
    probability: float
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the input's pixels, exclusive at the end


@dataclass(frozen=True)
class Reading:
    text: str
    confidence: float  # the product of the digits' probabilities
    digits: tuple[ReadDigit, ...]
    method: str

    def as_json(self) -> dict:
        return {"text": self.text, "confidence": self.confidence, "method": self.method,
                "digits": [{"label": d.label, "probability": d.probability, "box": list(d.box)}
                           for d in self.digits]}


def is_read_run(run: Run) -> bool:
    return run.cfg.train.task == "read"


def resolve_method(run: Run, method: str, digits: Run | None = None) -> str:
    """The method `method` names for this run: auto is combined when a single-digit run
    `digits` is given beside a CTC run, else the one the run was trained for."""
    if method not in METHODS:
        raise UsageError(_("unknown method {method!r}; use one of: {choices}").format(
            method=method, choices=", ".join(METHODS)))
    ctc = is_read_run(run)
    if digits is not None:
        check_partner(run, digits, method)
        return "combined"
    if method == "combined":
        raise UsageError(_("--method combined needs a run trained with --task read and "
                           "--digits RUN_DIR, a single-digit run (such as configs/robust.toml's)"))
    if method == "auto":
        return "ctc" if ctc else "segment"
    if method == "ctc" and not ctc:
        raise UsageError(_("--method ctc needs a run trained with `digitlab train --task read`; "
                           "this one reads single digits: use --method segment"))
    if method == "segment" and ctc:
        raise UsageError(_("--method segment needs a single-digit run; this one was trained "
                           "with --task read: use --method ctc"))
    return method


def check_partner(run: Run, digits: Run, method: str) -> None:
    """--digits RUN_DIR: a single-digit run of the same digits, beside a CTC run, for the
    combined method."""
    if not is_read_run(run):
        raise UsageError(_("--digits goes with a run trained with --task read; this one reads "
                           "single digits: give it as the run instead"))
    if is_read_run(digits):
        raise UsageError(_("--digits needs a single-digit run (such as configs/robust.toml's); "
                           "that one was trained with --task read"))
    if method not in ("auto", "combined"):
        raise UsageError(_("--digits is for --method combined; leave it out to read with "
                           "--method {method}").format(method=method))
    if tuple(digits.classes) != tuple(run.classes):
        raise UsageError(_("--digits: that run reads {theirs}, this one {ours}; give a "
                           "single-digit run of the same digits").format(
            theirs=" ".join(digits.classes), ours=" ".join(run.classes)))


def reading(labels: list[str], probs: list[float], boxes: list[tuple], method: str) -> Reading:
    digits = tuple(ReadDigit(label, float(p), tuple(int(v) for v in box))
                   for label, p, box in zip(labels, probs, boxes, strict=True))
    return Reading("".join(labels), float(math.prod(probs)) if probs else 0.0, digits, method)


def part_cost(piece: Piece, line: Line) -> float:
    """What a part's shape costs it (in log-probability) as one digit: SHORT_COST for each
    line height it is lower than SHORT (a piece of a stroke, not a digit), and WIDE_COST for
    each line height it is wider than WIDEST (two digits or more)."""
    rows, cols = piece.mask.shape
    short = max(0.0, SHORT - rows / line.height)
    wide = max(0.0, cols / line.height - WIDEST)
    return SHORT_COST * short + WIDE_COST * wide


def part_score(probs: torch.Tensor, piece: Piece, line: Line) -> float:
    """How likely a part is one digit: the log-probability of its reading, less its
    part_cost."""
    return math.log(max(float(probs.max()), 1e-12)) - part_cost(piece, line)


def read_parts(run: Run, line: Line, pieces: list[Piece]
               ) -> tuple[list[tuple[int, int]], list[Piece], int, torch.Tensor]:
    """Every part the line may be read in (cuts.line_parts: ranges, parts, end) and the
    single-digit run's probabilities [P, C] for each, read as predict reads a digit."""
    ranges, parts, end = line_parts(pieces, line)
    if not parts:
        raise ImageError(_("no digits found (the image looks blank)"))
    probs = Predictor.from_run(run).probabilities(np.stack([line.frame(p) for p in parts]))
    return ranges, parts, end, probs


def best_path(ranges: list[tuple[int, int]], scores: list[float], end: int) -> list[int]:
    """Which of the ranges (i, j), from boundary i to boundary j, tile 0..end with the
    highest total score (the sum of the log-probabilities of their readings): a dynamic
    programme over the boundaries. Empty when they cannot tile it."""
    best = {0: (0.0, [])}
    for stop in sorted({b for a, b in ranges}):
        options = [(best[a][0] + scores[i], best[a][1] + [i])
                   for i, (a, b) in enumerate(ranges) if b == stop and a in best]
        if options:
            best[stop] = max(options, key=lambda option: option[0])
    return best[end][1] if end in best else []


@dataclass(frozen=True)
class Reader:
    """A run and the method it reads numbers with; `Reader.load` reads a run directory."""

    run: Run
    method: str  # "segment", "ctc" or "combined"
    beam: int = 0  # ctc: the beam search's width; 0 decodes greedily
    digits: Run | None = None  # combined: the single-digit run beside the CTC one

    @classmethod
    def load(cls, source: str | Path, method: str = "auto", device: str = "auto",
             beam: int = 0, digits: str | Path | None = None) -> Reader:
        partner = load_run(digits, device) if digits is not None else None
        return cls.of(load_run(source, device), method, beam, partner)

    @classmethod
    def of(cls, run: Run, method: str = "auto", beam: int = 0, digits: Run | None = None
           ) -> Reader:
        """The reader for runs already loaded: `method` resolved, the pair and beam checked."""
        method = resolve_method(run, method, digits)
        if isinstance(beam, bool) or not isinstance(beam, int) or beam < 0 or (
                beam and method != "ctc"):
            raise UsageError(_("--beam is a width of at least 1, for the ctc method only"))
        return cls(run, method, beam, digits)

    def read(self, source: str | Path | bytes) -> Reading:
        """The number in an image file (or its bytes); ImageError when there is none."""
        name = "<upload>" if isinstance(source, bytes) else str(source)
        return self.read_image(open_image(source), name)

    def read_image(self, image: Image.Image, name: str = "image") -> Reading:
        grey, dark_ink = grey_levels(image)
        line, pieces = find_line(grey, dark_ink, name)
        if self.method == "ctc":
            from digitlab.inference.ctc_read import read_line

            return read_line(self.run, line, pieces, name, self.beam)
        if self.method == "combined":
            from digitlab.inference.combined import read_combined

            return read_combined(self.run, self.digits, line, pieces, name)
        return self.segmented(line, pieces)

    def segmented(self, line: Line, pieces: list[Piece]) -> Reading:
        """The line read as the run of parts the model is surest of, over the whole line: each
        piece whole or cut (cuts.segments), and neighbouring pieces that share most of
        their columns (a 9's loop and its stem drawn apart) also read as one."""
        ranges, parts, end, probs = read_parts(self.run, line, pieces)
        scores = [part_score(row, p, line) for row, p in zip(probs, parts, strict=True)]
        chosen = best_path(ranges, scores, end)  # each piece whole is a part: a path
        classes = self.run.classes
        return reading([classes[int(probs[k].argmax())] for k in chosen],
                       [float(probs[k].max()) for k in chosen],
                       [parts[k].box for k in chosen], "segment")


def read_images(reader: Reader, images) -> list[dict]:
    """What `digitlab read --json` prints for each image: image files and folders (each dict
    with its "file"), or one image given as a PIL Image or a uint8 array [H, W]."""
    if isinstance(images, (np.ndarray, torch.Tensor)):
        array = np.asarray(images.cpu() if isinstance(images, torch.Tensor) else images)
        if array.ndim != 2 or array.dtype != np.uint8:
            raise UsageError(_("read takes image files, a PIL image or a uint8 array [H, W]; "
                               "got an array of shape {shape} and type {dtype}").format(
                shape=list(array.shape), dtype=array.dtype))
        images = Image.fromarray(array)
    if isinstance(images, Image.Image):
        return [reader.read_image(images).as_json()]
    paths = [images] if isinstance(images, (str, Path)) else list(images)
    return [{"file": str(path), **reader.read(path).as_json()}
            for path in expand_inputs([str(p) for p in paths])]


def show(image: Image.Image, result: Reading, path: Path) -> Path:
    """Save the input with each digit's box and label drawn on it, titled with the reading."""
    from matplotlib.patches import Rectangle

    from digitlab.viz.fonts import tight_layout
    from digitlab.viz.plots import pyplot, save_figure

    plt = pyplot()
    width = min(12.0, max(4.0, 3.0 * image.width / max(image.height, 1)))
    fig, ax = plt.subplots(figsize=(width, 3.2))
    ax.imshow(image.convert("RGB"))
    for digit in result.digits:
        x0, y0, x1, y1 = digit.box
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False,
                               edgecolor="tab:red", linewidth=1.5))
        ax.text(x0, y0, f"{digit.label} {100 * digit.probability:.0f}%", color="tab:red",
                fontsize=9, va="bottom")
    ax.set_title(f"{result.text}  ({100 * result.confidence:.1f}%, {result.method})")
    ax.axis("off")
    tight_layout(fig)  # in a Bengali font when the text is Bengali
    save_figure(fig, path)
    return path
