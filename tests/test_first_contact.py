"""Rough edges a new user meets first: a bare `digitlab`, `serve` on a port that is taken, and
`train --resume` on a run that has nothing left to do."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest

from digitlab.cli import COMMANDS, main
from helpers import TINY, cli

# ---------------------------------------------------------------- a bare `digitlab`


@pytest.mark.parametrize("argv", [[], ["--debug"], ["--lang", "en"]],
                         ids=["bare", "debug", "lang"])
def test_no_command_prints_the_commands(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    assert out.startswith("usage: digitlab")
    for name in COMMANDS:  # each command on its own line, followed by its one-line description
        assert re.search(rf"^ +{name} +\w", out, re.M), name
    assert "train a model" in out and "error:" not in out


def test_an_unknown_command_is_still_a_usage_error(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["bogus"])
    out, err = capsys.readouterr()
    assert stopped.value.code == 2 and out == ""
    assert "invalid choice: 'bogus'" in err


# ---------------------------------------------------------------- serve on a taken port


@pytest.fixture
def busy_port():
    """A port on 127.0.0.1 that a real socket is listening on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def serve_error(capsys, run: Path, *options: str) -> str:
    """`digitlab serve RUN OPTIONS`, which must fail as a usage error in one line and print
    nothing on stdout (no "serving" line); that line."""
    code = main(["serve", str(run), "--device", "cpu", *options])
    out, err = capsys.readouterr()
    assert code == 2, err
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_serve_on_a_port_in_use_says_so_in_one_line(digits_run, busy_port, capsys):
    line = serve_error(capsys, digits_run, "--port", str(busy_port))
    assert line.startswith(f"digitlab: error: port {busy_port} on 127.0.0.1 is in use")
    assert line.endswith("; choose another with --port")


@pytest.mark.parametrize("options,expected", [
    (["--port", "70000"], "--port must be between 1 and 65535, not 70000"),
    (["--host", "203.0.113.7", "--port", "8123"], "cannot listen on 203.0.113.7 port 8123"),
], ids=["port-out-of-range", "host-not-this-machine"])
def test_serve_on_an_address_it_cannot_bind(digits_run, capsys, options, expected):
    line = serve_error(capsys, digits_run, *options)
    assert line.startswith("digitlab: error: " + expected)
    assert "--host" in line or "--port" in line


# ---------------------------------------------------------------- resume a finished run


@pytest.fixture
def quick(no_analysis, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)


def state_of(run: Path) -> dict[str, tuple]:
    """Every entry under run (run included): its inode and mtime, and a file's bytes. An atomic
    rewrite changes the inode even within one mtime tick."""
    entries = {}
    for path in [run, *sorted(run.rglob("*"))]:
        st = path.lstat()
        data = path.read_bytes() if path.is_file() else None
        entries[str(path.relative_to(run))] = (st.st_ino, st.st_mtime_ns, data)
    return entries


@pytest.mark.parametrize("sched,again,remedy", [
    ("none", [], "(to train further, resume it with --epochs above 2)"),
    ("none", ["--epochs", "2"], "(to train further, resume it with --epochs above 2)"),
    ("cosine", [], "(its cosine schedule is laid out for 2 epochs: to train longer, start a "
                   "new run with more --epochs)"),
], ids=["plain", "same-epochs", "fixed-length-schedule"])
def test_resume_a_complete_run_says_so_and_changes_nothing(quick, tmp_path, capsys, sched,
                                                           again, remedy):
    run = tmp_path / "run"
    code, output = cli(capsys, "train", "--dataset", "digits", *TINY, "--epochs", "2",
                       "--set", f"sched.name={sched}", "--out", str(run))
    assert code == 0, output
    before = state_of(run)
    assert "summary.json" in before and "checkpoints/last.safetensors" in before
    code, output = cli(capsys, "train", "--resume", str(run), *again)
    assert code == 0, output
    assert output.splitlines() == [f"{run} is already complete: 2 of 2 epochs; nothing to do "
                                   f"{remedy}"]
    assert state_of(run) == before


def test_resume_a_run_that_stopped_early_changes_nothing(quick, tmp_path, capsys):
    run = tmp_path / "run"  # min_delta 10: no epoch after the first counts as an improvement
    code, output = cli(capsys, "train", "--dataset", "digits", *TINY, "--epochs", "5",
                       "--set", "train.early_stop_patience=1", "--set", "train.min_delta=10",
                       "--set", "data.val_size=0.1", "--out", str(run))
    assert code == 0, output
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stopped_early"] and summary["epochs"] == 2
    before = state_of(run)
    code, output = cli(capsys, "train", "--resume", str(run))
    assert code == 0, output
    assert output.splitlines() == [f"{run} is already complete: early stopping ended it after "
                                   "2 of 5 epochs; nothing to do"]
    assert state_of(run) == before


def test_resume_finishes_a_run_killed_before_its_summary(quick, tmp_path, capsys):
    run = tmp_path / "run"
    code, output = cli(capsys, "train", "--dataset", "digits", *TINY, "--epochs", "1",
                       "--out", str(run))
    assert code == 0, output
    summary = json.loads((run / "summary.json").read_text())
    (run / "summary.json").unlink()  # as if killed after the last checkpoint
    code, output = cli(capsys, "train", "--resume", str(run))
    assert code == 0, output
    assert "already complete" not in output
    again = json.loads((run / "summary.json").read_text())
    assert again["status"] == "completed" and again["epochs"] == 1
    assert again["test_accuracy"] == summary["test_accuracy"]


@pytest.mark.parametrize("option", [["--seed", "0"], ["--lr", "0"], ["--batch-size", "0"]],
                         ids=["seed", "lr", "batch-size"])
def test_resume_refuses_a_falsy_shortcut_too(option, tmp_path, capsys):
    # --seed 0 was ignored (the check tested truthiness): the run went on with its own seed
    code, output = cli(capsys, "train", "--resume", str(tmp_path / "run"), *option)
    assert code == 2
    assert f"--resume continues a run with its own config; it takes only --epochs, not " \
           f"{option[0]}" in output
