"""docs/knobs.md is generated from the config dataclasses and must be up to date."""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys

import pytest

from digitlab import config
from digitlab.catalog import REGISTRIES
from helpers import REPO

KNOBS = REPO / "docs" / "knobs.md"
TOOL = REPO / "tools" / "gen_knobs.py"
KEYS = [f"{section}.{f.name}" for section, cls in config.SECTIONS.items()
        for f in dataclasses.fields(cls)]



@pytest.fixture(scope="module")
def gen_knobs():
    spec = importlib.util.spec_from_file_location("gen_knobs_under_test", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rows() -> dict[str, list[str]]:
    """key -> the cells of its table row in docs/knobs.md."""
    out = {}
    for line in KNOBS.read_text(encoding="utf-8").splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            out[cells[0].strip("`")] = cells
    return out


def test_check_passes(gen_knobs):
    assert gen_knobs.OUT == KNOBS
    assert gen_knobs.main(["--check"]) == 0
    assert KNOBS.read_text(encoding="utf-8") == gen_knobs.render()


def test_check_as_a_script():
    result = subprocess.run([sys.executable, str(TOOL), "--check"], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def test_check_notices_drift(gen_knobs, tmp_path, monkeypatch, capsys):
    stale = tmp_path / "knobs.md"
    stale.write_text(KNOBS.read_text(encoding="utf-8").replace("`data.batch_size` | `64`",
                                                               "`data.batch_size` | `32`"))
    monkeypatch.setattr(gen_knobs, "OUT", stale)
    assert gen_knobs.main(["--check"]) == 1
    assert "out of date" in capsys.readouterr().err
    assert gen_knobs.main([]) == 0  # regenerates it
    assert gen_knobs.main(["--check"]) == 0
    assert stale.read_text(encoding="utf-8") == KNOBS.read_text(encoding="utf-8")
    monkeypatch.setattr(gen_knobs, "OUT", tmp_path / "missing.md")
    assert gen_knobs.main(["--check"]) == 1


def test_every_key_is_documented(rows):
    text = KNOBS.read_text(encoding="utf-8")
    missing = [key for key in KEYS if f"`{key}`" not in text]
    assert not missing
    assert set(rows) == set(KEYS)  # and nothing else
    for section in config.SECTIONS:
        assert f"## [{section}]" in text


def test_defaults_match_the_config(rows):
    defaults = config.to_dict(config.Config())
    for key in KEYS:
        section, name = key.split(".")
        assert rows[key][1] == f"`{config.toml_value(defaults[section][name])}`", key


@pytest.mark.parametrize("key", KEYS)
def test_every_key_has_a_meaning(rows, key):
    assert len(rows[key]) == 3 and rows[key][2], f"{key} has no meaning in docs/knobs.md"


def test_choices_are_listed(rows):
    for registry, key in REGISTRIES.values():
        for name in registry.names():
            assert f"`{name}`" in rows[key][2], (key, name)
