"""digitlab.io: strict JSON (never NaN or Infinity), folder locks, orphan temps, writability,
and the CLI's last line of defence for an OSError nobody turned into a clear error."""

from __future__ import annotations

import json
import math

import pytest

from digitlab import cli
from digitlab.errors import UsageError
from digitlab.io import (
    FolderLock,
    append_jsonl,
    dumps_json,
    ensure_writable,
    finite_json,
    remove_orphan_temps,
    write_json,
)


def strict_loads(text: str):
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


BAD = {"loss": math.nan, "nested": [1.0, math.inf, {"x": -math.inf}], "ok": 0.5, "n": 3,
       "tuple": (math.nan, "a")}
CLEAN = {"loss": None, "nested": [1.0, None, {"x": None}], "ok": 0.5, "n": 3,
         "tuple": [None, "a"]}


def test_finite_json_turns_nan_and_infinity_into_null():
    assert finite_json(BAD) == CLEAN
    assert strict_loads(dumps_json(BAD)) == CLEAN


def test_write_json_and_append_jsonl_never_write_nan(tmp_path):
    write_json(tmp_path / "summary.json", BAD)
    assert strict_loads((tmp_path / "summary.json").read_text()) == CLEAN
    append_jsonl(tmp_path / "metrics.jsonl", BAD)
    append_jsonl(tmp_path / "metrics.jsonl", {"epoch": 2, "loss": 0.1})
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [strict_loads(line) for line in lines] == [CLEAN, {"epoch": 2, "loss": 0.1}]


def test_folder_lock_excludes_a_second_open_until_released(tmp_path):
    first = FolderLock(tmp_path)
    assert first.acquire() is True
    assert FolderLock(tmp_path).acquire() is False
    first.release()
    again = FolderLock(tmp_path)
    assert again.acquire() is True
    again.release()
    assert (tmp_path / ".lock").is_file()  # kept: deleting it would let two runs lock


def test_remove_orphan_temps_takes_only_atomic_write_temps(tmp_path):
    (tmp_path / "sub").mkdir()
    orphans = [tmp_path / ".summary.json.ab12cd.tmp", tmp_path / "sub" / ".x.png.zz.tmp"]
    kept = [tmp_path / "summary.json", tmp_path / "data.tmp", tmp_path / ".lock"]
    for path in orphans + kept:
        path.write_text("x")
    assert sorted(remove_orphan_temps(tmp_path)) == sorted(orphans)
    assert [p.exists() for p in orphans + kept] == [False] * 2 + [True] * 3


def test_ensure_writable_under_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="cannot write to .*file/out"):
        ensure_writable(tmp_path / "file" / "out")


def test_cli_turns_a_stray_oserror_into_one_line(monkeypatch, capsys):
    def fails(args):
        raise PermissionError(13, "Permission denied", "/somewhere/summary.json")

    monkeypatch.setitem(cli.COMMANDS, "list", fails)
    assert cli.main(["list"]) == 1
    captured = capsys.readouterr()
    assert captured.err == ("digitlab: error: cannot read or write /somewhere/summary.json: "
                            "Permission denied\n")
