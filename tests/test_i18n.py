"""English and Bengali: the catalogs are complete and compiled, and the CLI really speaks both."""

from __future__ import annotations

import argparse
import gettext
import importlib.util
import inspect
import os
import re
import string
import subprocess
import sys

import pytest

from digitlab import i18n
from digitlab.cli import main
from helpers import BENGALI, REPO, TINY, bengali_share, cli


@pytest.fixture(scope="module")
def tool():
    """tools/i18n.py, the script that extracts, checks and compiles the catalogs."""
    pytest.importorskip("babel", reason="Babel (dev extras) reads the .po catalogs")
    path = REPO / "tools" / "i18n.py"
    spec = importlib.util.spec_from_file_location("i18n_tool_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def template(tool):
    return tool.extract()


# -- the catalogs --------------------------------------------------------------------------

def test_every_message_has_a_bengali_translation(tool, template):
    paths = tool.po_files()
    assert [p.parts[-3] for p in paths] == ["bn"]
    problems = tool.problems(template, tool.read(paths[0]))
    assert not problems, "\n".join(problems[:40]) + (
        "\nadd the translations to src/digitlab/locale/bn/LC_MESSAGES/digitlab.po "
        "(python tools/i18n.py extract adds new messages to it)")


def test_extraction_finds_the_cli_messages(template):
    ids = {m.id for m in template if m.id}
    assert len(ids) > 250
    # help texts, progress lines, errors, argparse's own words and registry descriptions
    for message in ("show full tracebacks on errors", "Test Accuracy: {accuracy:.2f}%",
                    "{key} must be {allowed}, got {value!r}", "usage: ",
                    "max(0, x); the tutorial's choice"):
        assert message in ids


def test_check_notices_a_missing_translation(tool, template):
    catalog = tool.read(tool.po_files()[0])
    message = catalog.get("show full tracebacks on errors")
    message.string = ""
    assert any("show full tracebacks" in p for p in tool.problems(template, catalog))


def test_check_notices_a_broken_field(tool, template):
    catalog = tool.read(tool.po_files()[0])
    catalog.get("wrote {path}").string = "লেখা হয়েছে {পথ}"
    assert any("fields differ" in p for p in tool.problems(template, catalog))


def test_check_script_passes():
    pytest.importorskip("babel")
    result = subprocess.run([sys.executable, str(REPO / "tools" / "i18n.py"), "check"],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "messages translated" in result.stdout


def test_compiled_catalog_matches_its_source(tool):
    """The .mo the install compiled says what the .po in git says (else: recompile)."""
    po = tool.read(tool.po_files()[0])
    path = i18n.catalog_path("bn")
    assert path.is_file(), "run `python tools/i18n.py compile` (or reinstall the package)"
    with path.open("rb") as f:
        mo = gettext.GNUTranslations(f)
    stale = [m.id for m in po if m.id and isinstance(m.id, str) and not m.fuzzy
             and mo.gettext(m.id) != m.string]
    assert not stale, f"{len(stale)} stale messages, e.g. {stale[:3]}; run " \
                      "`python tools/i18n.py compile`"


def test_argparse_messages_are_argparse_own():
    """The argparse messages we translate must be spelled exactly as this Python's argparse."""
    source = inspect.getsource(argparse)
    missing = [m for m in i18n.ARGPARSE_MESSAGES if repr(m)[1:-1] not in source
               and m not in source]
    assert not missing


def test_translations_keep_every_field():
    """Formatting each Bengali template with the English one's fields must not fail."""
    i18n.set_language("bn")
    checked = 0
    for message in i18n._translation._catalog:
        if not isinstance(message, str) or not message or "%" in message:
            continue
        translated = i18n._(message)
        names = {f for _, f, _, _ in string.Formatter().parse(message) if f}
        values = {n.split("!")[0].split("[")[0]: 1 for n in names}
        assert message.format(**values) and translated.format(**values)
        checked += 1
    assert checked > 100


# -- choosing the language -----------------------------------------------------------------

@pytest.mark.parametrize(("argv", "env", "expected"), [
    ([], {}, "en"),
    (["train"], {"DIGITLAB_LANG": "bn"}, "bn"),
    (["--lang", "bn", "list"], {}, "bn"),
    (["list", "--lang=en"], {"DIGITLAB_LANG": "bn"}, "en"),
    (["predict", "run", "--", "--lang"], {}, "en"),
])
def test_requested_language(argv, env, expected):
    assert i18n.requested_language(argv, env) == expected


@pytest.mark.parametrize(("given", "code"), [("bn", "bn"), ("bn_BD.UTF-8", "bn"), ("EN", "en"),
                                             ("en-US", "en")])
def test_normalize(given, code):
    assert i18n.normalize(given) == code


def test_set_language_switches_and_restores_argparse():
    english = argparse._
    i18n.set_language("bn")
    assert i18n.language() == "bn"
    assert argparse._("usage: ") != "usage: "
    assert BENGALI.search(i18n._("wrote {path}"))
    i18n.set_language("en")
    assert argparse._ is english
    assert i18n._("wrote {path}") == "wrote {path}"


def test_unknown_language_is_a_usage_error(capsys):
    code, out = cli(capsys, "--lang", "fr", "list")
    assert code == 2
    assert "unknown language 'fr'" in out and "en, bn" in out


def test_unknown_language_from_the_environment(capsys, monkeypatch):
    monkeypatch.setenv("DIGITLAB_LANG", "xx")
    code, out = cli(capsys, "list")
    assert code == 2 and "DIGITLAB_LANG" in out


# -- the CLI in Bengali --------------------------------------------------------------------

def help_text(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(list(argv))
    assert exit_.value.code == 0
    return capsys.readouterr().out


def test_train_help_in_bengali(capsys):
    english = help_text(capsys, "train", "--help")
    bengali = help_text(capsys, "--lang", "bn", "train", "--help")
    assert bengali_share(english) == 0
    assert bengali_share(bengali) > 0.7, bengali
    assert bengali.startswith(i18n._("usage: ").strip())
    # the same options, in the same order
    assert re.findall(r"--[\w-]+", bengali) == re.findall(r"--[\w-]+", english)


@pytest.mark.parametrize("command", ["train", "evaluate", "plot", "sweep", "bench", "predict",
                                     "serve", "export", "list", "read"])
def test_every_command_help_in_bengali(capsys, command):
    assert bengali_share(help_text(capsys, "--lang", "bn", command, "--help")) > 0.6


def test_top_level_help_in_bengali(capsys):
    assert bengali_share(help_text(capsys, "--lang", "bn", "--help")) > 0.6


def test_help_in_bengali_from_the_environment():
    env = {**os.environ, "DIGITLAB_LANG": "bn", "COLUMNS": "100"}
    result = subprocess.run([sys.executable, "-m", "digitlab", "train", "--help"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert bengali_share(result.stdout) > 0.5
    assert "--set" in result.stdout and "--resume" in result.stdout


def test_list_in_bengali(capsys):
    code, out = cli(capsys, "--lang", "bn", "list")
    assert code == 0
    assert "relu" in out and "adam" in out and "mnist" in out
    assert bengali_share(out.replace("relu", "")) > 0.3


def test_config_error_in_bengali(capsys, tmp_path):
    code, out = cli(capsys, "--lang", "bn", "train", "--set", "optim.lr=-1",
                    "--out", str(tmp_path / "run"))
    assert code == 2
    assert "optim.lr" in out and "-1" in out
    assert bengali_share(out) > 0.5, out
    assert not (tmp_path / "run").exists()


def test_argparse_error_in_bengali(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--lang", "bn", "train", "--epochs", "many"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # after the usage synopsis: the error itself
    assert "'many'" in last and bengali_share(last) > 0.5, err


def test_english_stays_english_after_bengali(capsys):
    cli(capsys, "--lang", "bn", "list")
    code, out = cli(capsys, "list")
    assert code == 0 and bengali_share(out) == 0


def test_training_progress_in_bengali(capsys, tmp_path):
    run = tmp_path / "run"
    code, out = cli(capsys, "--lang", "bn", "train", "--dataset", "synthetic", "--epochs", "1",
                    "--out", str(run), *TINY)
    assert code == 0, out
    lines = [line for line in out.splitlines() if line.strip()]
    # the header, the per-epoch line and the two summary lines are all Bengali
    assert all(bengali_share(line) > 0.2 for line in lines), out
    assert str(run) in out
    # what a program reads stays as it was: metrics and summaries are keyed in English
    assert (run / "summary.json").read_text().count('"status": "completed"') == 1


def test_no_function_hides_the_translator():
    """`x, _ = f()` inside a function makes every `_()` in it call a tuple item instead."""
    import ast

    bad = []
    for path in sorted((REPO / "src" / "digitlab").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            names = list(ast.walk(node))
            binds = any(isinstance(n, ast.Name) and n.id == "_" and isinstance(n.ctx, ast.Store)
                        for n in names)
            calls = any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                        and n.func.id == "_" for n in names)
            if binds and calls:
                bad.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not bad
