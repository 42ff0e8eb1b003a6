"""`digitlab bench --parts read`: its sets and scoring, on small data the test makes."""

from __future__ import annotations

import torch

from digitlab.cli import main
from digitlab.data.dataset import Split
from digitlab.inference import read_bench
from digitlab.inference.reader import Reader


def small_split() -> Split:
    frames, labels = read_bench.sklearn_frames()
    return Split(frames[:200], labels[:200])


def test_the_sets_are_reproducible_and_hold_3_to_8_digits():
    first = read_bench.build_sets(small_split(), 12)
    again = read_bench.build_sets(small_split(), 12)
    assert set(first) == {"mnist", "sklearn", "touching"}
    for name, lines in first.items():
        assert torch.equal(lines.images, again[name].images)
        assert all(3 <= len(t) <= 8 for t in lines.texts)


def test_lines_written_as_files_are_read_and_scored(digits_run, tmp_path):
    lines = read_bench.build_sets(small_split(), 6)["sklearn"]
    files = read_bench.write_lines(tmp_path, lines)
    assert len(files) == 6 and all(p.is_file() and len(t) >= 3 for p, t in files)
    score = read_bench.score(Reader.load(digits_run, "segment", "cpu"), files)
    assert 0 <= score["exact_match"] <= 1 and 0 <= score["cer"] and score["unreadable"] == 0


def test_runs_must_name_known_presets(capsys):
    assert main(["bench", "--parts", "read", "--runs", "fast=runs/x"]) == 2
    assert "unknown preset" in capsys.readouterr().err
    assert main(["bench", "--parts", "seed", "--runs", "read=runs/x"]) == 2
    assert "robustness or read" in capsys.readouterr().err


def test_photographed_numbers_are_cut_into_their_digits(mnist_dir, tmp_path):
    """Paper, light, shadow edges, ruled lines and JPEG rarely add a piece; the pieces that
    hold two touching digits are cut later, by the reader."""
    from digitlab.data.mnist import MNIST, load
    from digitlab.inference.preprocess import grey_levels, open_image
    from digitlab.inference.segment import find_line

    test = load(MNIST, mnist_dir, False).test
    lines = read_bench.build_sets(test, 20)["mnist"]
    files = read_bench.write_lines(tmp_path, lines, photos=True)
    assert all(p.suffix == ".jpg" for p, _text in files)
    found = []
    for path, text in files:
        _line, pieces = find_line(*grey_levels(open_image(path)), path.name)
        found.append(len(pieces) == len(text))
    assert sum(found) >= 14, found  # 15 of 20 when written; touching pairs are one piece
