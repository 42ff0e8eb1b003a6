"""Numbers in Bengali digits: a read run trained on CMATERdb lines (configs/read-bangla.toml,
made tiny here) answers in ০-৯ through `digitlab read`, the Reader and POST /read. The tiny
run is not asked to be right, only to speak in its own digits. Skipped without the shared
CMATERdb folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from helpers import cmaterdb_dir_or_skip

BENGALI = set("০১২৩৪৫৬৭৮৯")
CONFIG = Path(__file__).resolve().parents[2] / "configs" / "read-bangla.toml"


@pytest.fixture(scope="module")
def bengali_numbers(tmp_path_factory) -> tuple[Path, list[tuple[Path, str]]]:
    """(a tiny read-bangla run, three numbers of CMATERdb test digits written as PNG files
    with their digits in Bengali)."""
    from digitlab.cli import main
    from digitlab.data import cmaterdb
    from digitlab.data.lines import compose
    from digitlab.inference.read_bench import write_lines

    folder = str(cmaterdb_dir_or_skip().parent)
    root = tmp_path_factory.mktemp("read-bangla")
    run = root / "run"
    assert main(["train", "--config", str(CONFIG), "--data-dir", folder, "--device", "cpu",
                 "--epochs", "8", "--set", "model.channels=[8, 16]",
                 "--set", "model.hidden=[32]", "--set", "train.amp=off",
                 "--out", str(run)]) == 0
    dataset = cmaterdb.load(folder, allow_download=False)
    lines = compose(dataset.test.images, dataset.test.labels, 3,
                    torch.Generator().manual_seed(0), 3, 5)
    (root / "numbers").mkdir()
    files = [(path, "".join(dataset.classes[int(d)] for d in text))
             for path, text in write_lines(root / "numbers", lines)]
    return run, files


def test_a_bengali_read_run_answers_in_bengali_digits(bengali_numbers, capsys):
    from digitlab.cli import main

    run, files = bengali_numbers
    summary = json.loads((run / "summary.json").read_text())
    assert summary["task"] == "read" and summary["dataset"] == "cmaterdb"
    assert all(set(text) <= BENGALI for _path, text in files)
    assert main(["read", str(run), *(str(path) for path, _text in files), "--json"]) == 0
    answers = json.loads(capsys.readouterr().out)
    assert len(answers) == len(files)
    for answer in answers:
        assert answer["method"] == "ctc" and set(answer["text"]) <= BENGALI
        assert [d["label"] for d in answer["digits"]] == list(answer["text"])


def test_post_read_on_a_bengali_read_run_answers_in_bengali_digits(bengali_numbers):
    from fastapi.testclient import TestClient

    from digitlab.inference.predictor import Predictor
    from digitlab.serve.app import create_app

    run, files = bengali_numbers
    client = TestClient(create_app(Predictor.load(run, device="cpu")),
                        base_url="http://127.0.0.1:8000")
    path, _text = files[0]
    response = client.post("/read", files={"file": (path.name, path.read_bytes(), "image/png")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["method"] == "ctc" and set(body["text"]) <= BENGALI
