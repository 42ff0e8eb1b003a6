"""train --print-config, config show RUN_DIR and compare RUN_DIR RUN_DIR ..."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from digitlab.config import build_config, load_run_config, read_toml, to_toml
from helpers import TINY, cli

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, session_cache) -> tuple[Path, Path]:
    """Two 2-epoch runs on the bundled digits that differ in optim.lr and model.hidden; the
    end-of-run analysis is skipped (compare reads only config, summary and metrics)."""
    from digitlab.cli import main

    base = tmp_path_factory.mktemp("compare")
    runs = (base / "run-a", base / "run-b")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DIGITLAB_CACHE", str(session_cache))
        mp.delenv("DIGITLAB_DATA", raising=False)
        mp.setattr("digitlab.viz.analysis.evaluate_run", lambda *args, **kwargs: {})
        for run, extra in zip(runs, (["--lr", "0.001"], ["--lr", "0.003", "--set",
                                                          "model.hidden=[32]"]), strict=True):
            code = main(["train", "--dataset", "digits", "--epochs", "2", "--out", str(run),
                         *TINY, *extra])
            assert code == 0
    return runs


def one_error_line(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("digitlab: error: "), output
    assert "Traceback" not in output
    return lines[0]


def test_print_config_is_the_resolved_config_and_trains_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.toml").write_text("[train]\nepochs = 9\n[optim]\nlr = 0.5\n")
    code, out = cli(capsys, "train", "--print-config", "--config", "base.toml", "--lr", "0.02",
                    "--set", "model.name=mlp", "--set", "model.hidden=[16, 8]")
    assert code == 0
    table = tomllib.loads(out)  # valid TOML, every section present
    assert table["train"]["epochs"] == 9 and table["optim"]["lr"] == 0.02
    assert table["model"]["name"] == "mlp" and table["model"]["hidden"] == [16, 8]
    expected, _explicit = build_config("base.toml", ["model.name=mlp", "model.hidden=[16, 8]"],
                                       {"lr": 0.02})
    assert out == to_toml(expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base.toml"]  # no run folder


def test_print_config_round_trips(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out = cli(capsys, "train", "--print-config", "--epochs", "3", "--seed", "7")
    assert code == 0
    (tmp_path / "printed.toml").write_text(out)
    code, again = cli(capsys, "train", "--print-config", "--config", "printed.toml")
    assert code == 0 and again == out


@pytest.mark.parametrize("argv", [["--set", "optim.lr=-1"], ["--set", "nope.key=1"],
                                  ["--epochs", "0"]])
def test_print_config_refuses_an_invalid_config(capsys, tmp_path, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    code, out = cli(capsys, "train", "--print-config", *argv)
    assert code == 2
    one_error_line(out)
    assert list(tmp_path.iterdir()) == []


def test_config_show_prints_the_recorded_config_resolved(capsys, two_runs):
    run = two_runs[1]
    code, out = cli(capsys, "config", "show", str(run))
    assert code == 0
    assert out == to_toml(load_run_config(run / "config.toml"))
    assert tomllib.loads(out)["optim"]["lr"] == 0.003


def test_config_show_fills_in_keys_an_older_run_lacks(capsys, tmp_path):
    (tmp_path / "config.toml").write_text('[model]\nname = "mlp"\n')
    code, out = cli(capsys, "config", "show", str(tmp_path))
    assert code == 0
    table = tomllib.loads(out)
    assert table["model"]["name"] == "mlp" and table["train"]["epochs"] == 5  # the default


@pytest.mark.parametrize("case", ["missing", "not-a-run", "bad-config"])
def test_config_show_refuses_a_folder_that_is_not_a_run(capsys, tmp_path, case):
    folder = tmp_path / "folder"
    if case != "missing":
        folder.mkdir()
    if case == "bad-config":
        (folder / "config.toml").write_text("[optim]\nlr = -3\n")
    code, out = cli(capsys, "config", "show", str(folder))
    assert code == 2
    assert str(folder) in one_error_line(out)


def test_compare_prints_the_differences_and_draws_the_curves(capsys, two_runs, tmp_path,
                                                             monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out = cli(capsys, "compare", *map(str, two_runs))
    assert code == 0
    assert "run-a" in out and "run-b" in out
    assert "optim.lr" in out and "model.hidden" in out and "[32]" in out
    for same in ("data.name", "train.epochs", "train.out"):  # equal (or the column) -> left out
        assert same not in out
    for metric in ("test accuracy", "test loss", "epochs", "train s"):
        assert metric in out
    assert "%" in out
    figure = tmp_path / "compare.png"
    assert figure.read_bytes().startswith(PNG)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["compare.png"]  # no temp files


def test_compare_writes_out_and_creates_its_folder(capsys, two_runs, tmp_path):
    out = tmp_path / "figs" / "c.png"
    code, text = cli(capsys, "compare", *map(str, two_runs), "--out", str(out))
    assert code == 0 and str(out) in text
    assert out.read_bytes().startswith(PNG)


def _bad_input(tmp_path: Path, runs: tuple[Path, Path], case: str) -> list[str]:
    a, b = map(str, runs)
    if case == "one run":
        return [a]
    if case == "missing folder":
        return [a, str(tmp_path / "nope")]
    if case == "the same run twice":
        return [a, a]
    if case == "out is a folder":
        return [a, b, "--out", str(tmp_path)]
    folder = tmp_path / "other"
    folder.mkdir()
    if case == "no metrics":  # a run killed before its first epoch
        (folder / "config.toml").write_text((runs[0] / "config.toml").read_text())
    return [a, str(folder)]


@pytest.mark.parametrize("case", ["one run", "missing folder", "not a run", "no metrics",
                                  "the same run twice", "out is a folder"])
def test_compare_refuses_bad_input_in_one_line(capsys, two_runs, tmp_path, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    code, out = cli(capsys, "compare", *_bad_input(tmp_path, two_runs, case))
    assert code == 2
    one_error_line(out)
    assert not (tmp_path / "compare.png").exists()


def test_compare_figure_draws_gaps_for_null_values(two_runs, tmp_path):
    from digitlab.viz.compare import compare_figure, load_run

    runs = [load_run(r) for r in two_runs]
    runs[0].history[0]["test_loss"] = None  # NaN becomes null in metrics.jsonl
    path = compare_figure(runs, tmp_path / "gaps.png")
    assert path.read_bytes().startswith(PNG)


def test_differing_keys_ignore_the_run_folder(two_runs):
    from digitlab.viz.compare import differing_keys, load_run

    runs = [load_run(r) for r in two_runs]
    assert differing_keys(runs) == ["model.hidden", "optim.lr"]
    assert read_toml(two_runs[0] / "config.toml")["train.out"] == str(two_runs[0])
