"""The bangla preset on the shared CMATERdb files: the accuracy gate, and Bengali digits shown
as Bengali digits by predict, the API and the report. Marked slow; skipped without the files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from digitlab.cli import main
from digitlab.data import cmaterdb
from helpers import shared_cmaterdb_dir

pytestmark = pytest.mark.slow

SEVEN = "৭"


def test_bangla_preset_reaches_98_5_percent(bangla_run):
    summary = json.loads((bangla_run / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "completed" and summary["dataset"] == "cmaterdb"
    assert summary["test_accuracy"] >= 0.985, summary["test_accuracy"]


def bengali_sevens(count: int) -> list[np.ndarray]:
    grey, labels = cmaterdb.read_npz(shared_cmaterdb_dir() / "testing-images.npz")
    return [grey[i] for i in np.flatnonzero(labels == 7)[:count]]


def test_predict_reads_scanned_sevens_and_prints_them_in_bengali(bangla_run, tmp_path, capsys):
    paths = []
    for i, image in enumerate(bengali_sevens(5)):
        big = Image.fromarray(image).resize((160, 160), Image.Resampling.BICUBIC)  # a scan
        paths.append(tmp_path / f"seven-{i}.png")
        big.save(paths[-1])
    assert main(["predict", str(bangla_run), *map(str, paths), "--json"]) == 0
    answers = json.loads(capsys.readouterr().out)
    assert sum(a["text"] == SEVEN and a["label"] == 7 for a in answers) >= 4, answers
    assert main(["predict", str(bangla_run), str(paths[0])]) == 0
    assert SEVEN in capsys.readouterr().out


def test_the_api_and_the_report_show_bengali_digits(bangla_run, tmp_path):
    import digitlab as dl

    run = dl.load_run(bangla_run)
    path = tmp_path / "seven.png"
    Image.fromarray(bengali_sevens(1)[0]).save(path)
    (answer,) = run.predictions([path])
    assert (answer["text"], answer["label"], answer["index"]) == (SEVEN, 7, 7)
    assert run.classes[7] == SEVEN
    report = (bangla_run / "report.html").read_text(encoding="utf-8")
    assert SEVEN in report and "CMATERdb" in report
