"""`digitlab read` and `digitlab evaluate --lines` with a single-digit run (the segment method)."""

from __future__ import annotations

import json
import math

import pytest
from PIL import Image

from digitlab.cli import main
from digitlab.errors import UsageError
from digitlab.inference.reader import Reader, resolve_method
from helpers import digit_line


def test_read_prints_one_line_per_file_and_json_with_boxes(digits_run, tmp_path, capsys):
    first = digit_line(tmp_path / "a.png", [4, 7, 2])
    digit_line(tmp_path / "b.png", [0, 1, 5, 3])
    assert main(["read", str(digits_run), str(tmp_path / "a.png"), str(tmp_path / "b.png")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    name, text, confidence = out[0].split("\t")
    assert name.endswith("a.png") and len(text) == 3 and 0 <= float(confidence) <= 1
    assert main(["read", str(digits_run), str(tmp_path / "a.png"), "--json",
                 "--show", str(tmp_path / "show")]) == 0
    result = json.loads(capsys.readouterr().out)[0]
    assert result["method"] == "segment" and len(result["digits"]) == 3
    xs = [d["box"][0] for d in result["digits"]]
    assert xs == sorted(xs) and all(0 <= d["probability"] <= 1 for d in result["digits"])
    assert math.isclose(result["confidence"],
                        math.prod(d["probability"] for d in result["digits"]), rel_tol=1e-6)
    assert sum(a == b for a, b in zip(result["text"], first, strict=True)) >= 2
    assert (tmp_path / "show" / "0000-a.png").stat().st_size > 0


def test_bad_files_are_skipped_by_name_and_the_exit_is_nonzero(digits_run, tmp_path, capsys):
    digit_line(tmp_path / "good.png", [1, 2])
    (tmp_path / "broken.png").write_bytes(b"not an image")
    Image.new("L", (300, 60), 255).save(tmp_path / "blank.png")
    code = main(["read", str(digits_run), str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 1
    assert "good.png" in captured.out
    assert "broken.png" in captured.err and "blank.png: no digits found" in captured.err
    assert "2 of 3 files could not be read" in captured.err
    assert "Traceback" not in captured.err


def test_the_ctc_method_needs_a_read_run(digits_run, capsys):
    reader = Reader.load(digits_run, "auto", "cpu")
    assert reader.method == "segment"
    with pytest.raises(UsageError, match="--task read"):
        resolve_method(reader.run, "ctc")
    with pytest.raises(UsageError, match="unknown method"):
        resolve_method(reader.run, "guess")


def test_evaluate_lines_reports_exact_match_cer_and_unreadable_files(digits_run, tmp_path,
                                                                     capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    folder = tmp_path / "numbers"
    folder.mkdir()
    rows = ["file,text"]
    for k, digits in enumerate([[4, 7, 2], [0, 1, 5, 3], [6, 8]]):
        rows.append(f"n{k}.png,{digit_line(folder / f'n{k}.png', digits)}")
    (folder / "broken.png").write_bytes(b"\x89PNG broken")
    rows.append("broken.png,99")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    code = main(["evaluate", str(run), "--lines", str(folder)])
    captured = capsys.readouterr()
    assert code == 1 and "broken.png" in captured.err
    assert "4 numbers, 1 unreadable" in captured.out
    report = json.loads((run / "evaluation-lines-numbers.json").read_text())
    assert report["counts"] == {"files": 4, "correct": report["counts"]["correct"],
                                "unreadable": 1}
    assert 0 <= report["exact_match"] <= 0.75 and 2 / 11 <= report["cer"] <= 1
    assert set(report["by_length"]) == {"2", "3", "4"}
    assert any(m["file"] == "broken.png" and m["read"] is None for m in report["mistakes"])
    assert (run / "plots" / "mistakes-lines-numbers.png").stat().st_size > 0


def test_evaluate_lines_refuses_a_folder_without_labels_or_with_bad_ones(digits_run, tmp_path,
                                                                         capsys):
    folder = tmp_path / "numbers"
    folder.mkdir()
    assert main(["evaluate", str(digits_run), "--lines", str(folder)]) == 2
    assert "labels.csv" in capsys.readouterr().err
    (folder / "labels.csv").write_text("file,label\na.png,12\n")
    assert main(["evaluate", str(digits_run), "--lines", str(folder)]) == 2
    assert "file,text" in capsys.readouterr().err
    digit_line(folder / "a.png", [1, 2])
    (folder / "labels.csv").write_text("file,text\na.png,1x2\n")
    assert main(["evaluate", str(digits_run), "--lines", str(folder)]) == 2
    assert "digits only" in capsys.readouterr().err


def test_a_read_run_reads_with_ctc_and_boxes_inside_the_image(ctc_run, tmp_path, capsys):
    digit_line(tmp_path / "a.png", [3, 1, 4, 1, 5])
    reader = Reader.load(ctc_run, "auto", "cpu")
    assert reader.method == "ctc"
    with pytest.raises(UsageError, match="single-digit run"):
        resolve_method(reader.run, "segment")
    for beam in ("0", "4"):
        code = main(["read", ctc_run, str(tmp_path / "a.png"), "--json", "--beam", beam])
        out = capsys.readouterr().out
        if code == 1:  # an untrained model may read nothing: a clear skip, not a crash
            continue
        result = json.loads(out)[0]
        assert result["method"] == "ctc" and len(result["text"]) == len(result["digits"])
        for digit in result["digits"]:
            x0, y0, x1, y1 = digit["box"]
            assert 0 <= x0 <= x1 <= 16 + 64 * 5 and 0 <= y0 <= y1 <= 80


def test_beam_is_for_ctc_only(digits_run, capsys):
    with pytest.raises(UsageError, match="--beam"):
        Reader.load(digits_run, "segment", "cpu", beam=4)


def test_predict_refuses_a_number_reader_with_the_command_to_use(ctc_run, tmp_path, capsys):
    digit_line(tmp_path / "a.png", [3, 1])
    assert main(["predict", ctc_run, str(tmp_path / "a.png")]) == 2
    assert "digitlab read" in capsys.readouterr().err
