"""`digitlab sweep`: the grid, failures recorded, outputs written, finished runs skipped."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from digitlab.cli import main
from digitlab.errors import ConfigError
from digitlab.training.sweep import parse_grid, split_values

REPO = Path(__file__).resolve().parents[2]


def read_rows(out: Path) -> list[dict]:
    with open(out / "sweep.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_split_values_keeps_lists_whole():
    assert split_values("relu,tanh") == ["relu", "tanh"]
    assert split_values("[128,64],[32]") == ["[128,64]", "[32]"]


def test_parse_grid_types_and_errors():
    grid = parse_grid(["optim.lr=1e-3,3e-3", "model.hidden=[64],[32,16]"])
    assert grid == {"optim.lr": [1e-3, 3e-3], "model.hidden": [[64], [32, 16]]}
    with pytest.raises(ConfigError, match="did you mean"):
        main_args = ["optim.lrr=1"]
        parse_grid(main_args)
    with pytest.raises(ConfigError):
        parse_grid(["optim.lr"])


def test_sweep_with_a_failing_combination(tmp_path, capsys):
    out = tmp_path / "sweep"
    args = ["sweep", "--grid", "optim.lr=0.01,1e6", "--grid", "sched.name=none,step",
            "--set", "optim.name=sgd", "--dataset", "digits", "--epochs", "1", "--out", str(out)]
    assert main(args) == 0
    rows = read_rows(out)
    assert len(rows) == 4
    assert {r["optim.lr"] for r in rows} == {"0.01", "1000000.0"}
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 2 and all(r["optim.lr"] == "1000000.0" for r in failed)
    assert all("nan" in r["error"] for r in failed)
    done = [r for r in rows if r["status"] == "completed"]
    assert all(0 <= float(r["test_accuracy"]) <= 1 for r in done)
    for name in ("sweep.png", "report.html"):
        assert (out / name).stat().st_size > 1000
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "failed" in html

    # Again: finished runs are skipped, failed ones are retried (and fail again)
    capsys.readouterr()
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert printed.count("skipped") == 2
    assert len(read_rows(out)) == 4


def test_sweep_seeds(tmp_path):
    out = tmp_path / "seeds"
    assert main(["sweep", "--grid", "model.activation=relu", "--seeds", "2", "--dataset",
                 "digits", "--epochs", "1", "--out", str(out)]) == 0
    rows = read_rows(out)
    assert [r["seed"] for r in rows] == ["42", "43"]
    for row in rows:
        summary = json.loads((out / row["run"] / "summary.json").read_text())
        assert summary["seed"] == int(row["seed"])
        # each run's own analysis, drawn by the command once the run has finished
        evaluation = json.loads((out / row["run"] / "evaluation.json").read_text())
        assert evaluation["test_accuracy"] == pytest.approx(summary["test_accuracy"], abs=1e-6)
        assert (out / row["run"] / "report.html").stat().st_size > 1000


def test_sweep_needs_a_grid(tmp_path, capsys):
    assert main(["sweep", "--dataset", "digits", "--out", str(tmp_path / "x")]) == 2
    assert "--grid" in capsys.readouterr().err


def test_shipped_sweep_configs_parse():
    from digitlab.config import Config, apply_overrides
    from digitlab.training.sweep import read_sweep_file

    files = sorted((REPO / "configs" / "sweeps").glob("*.toml"))
    assert len(files) >= 2
    for path in files:
        base, grid, seeds = read_sweep_file(path)
        cfg = apply_overrides(Config(), base)
        assert grid and seeds
        for key, values in grid.items():
            for value in values:
                apply_overrides(cfg, {key: value})


def test_sweep_into_an_unwritable_folder(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert main(["sweep", "--grid", "model.activation=relu", "--dataset", "digits",
                 "--epochs", "1", "--out", str(blocker / "sweep")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("digitlab: error: cannot write to ") and len(err.splitlines()) == 1
    assert blocker.read_text() == "x"
