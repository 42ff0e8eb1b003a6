"""Write docs/en/cli.md and docs/bn/cli.md from the real `digitlab` parser.

    python tools/gen_cli_reference.py          # rewrite both
    python tools/gen_cli_reference.py --check  # exit 1 if either is out of date (tests run this)

Each language's page is made from the parser built in that language, so the Bengali
reference shows exactly what `digitlab --lang bn ... --help` prints.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from digitlab.cli import build_parser  # noqa: E402
from digitlab.i18n import set_language  # noqa: E402

OUT = {"en": REPO / "docs" / "en" / "cli.md", "bn": REPO / "docs" / "bn" / "cli.md"}
WIDTH = "100"  # argparse wraps usage lines at $COLUMNS

WORDS = {
    "en": {
        "switch": "[বাংলা](../bn/cli.md) · English",
        "title": "Command-line reference",
        "intro": "Every `digitlab` command and option, generated from the parser itself by "
                 "`tools/gen_cli_reference.py` (a test fails when this page is out of date). "
                 "Config keys for `--set` are listed in [knobs.md](../knobs.md).",
        "contents": "Commands",
        "option": "option", "default": "default", "meaning": "what it does",
        "positional": "argument", "choices": "one of",
    },
    "bn": {
        "switch": "বাংলা · [English](../en/cli.md)",
        "title": "কমান্ড-লাইন রেফারেন্স",
        "intro": "`digitlab`-এর প্রতিটি কমান্ড আর অপশন, আসল parser থেকেই "
                 "`tools/gen_cli_reference.py` দিয়ে তৈরি (পাতাটি পুরোনো হয়ে গেলে একটি test "
                 "fail করে)। `--set`-এর config key-গুলোর তালিকা আছে [knobs.md](../knobs.md)-এ।",
        "contents": "কমান্ডসমূহ",
        "option": "অপশন", "default": "default", "meaning": "কাজ",
        "positional": "আর্গুমেন্ট", "choices": "যেকোনো একটি",
    },
}


def subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    """(name, parser) for every subcommand, depth first: train, plot, plot activations, ..."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out.append((name, sub))
                out += [(f"{name} {child}", p) for child, p in subcommands(sub)]
    return out


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def option_rows(parser: argparse.ArgumentParser, words: dict) -> list[str]:
    rows = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        if action.option_strings:
            name = ", ".join(f"`{o}`" for o in action.option_strings)
            if action.nargs != 0:
                name += f" `{action.metavar or action.dest.upper()}`"
        else:
            name = f"`{action.metavar or action.dest}`"
        default = action.default
        shown = "" if default in (None, argparse.SUPPRESS, False, []) or action.nargs == 0 \
            else f"`{default}`"
        meaning = action.help or ""
        if action.choices and not isinstance(action.choices, dict):
            meaning += f" ({words['choices']}: {', '.join(map(str, action.choices))})"
        rows.append(f"| {name} | {shown} | {cell(meaning.strip())} |")
    return rows


def render(lang: str) -> str:
    os.environ["COLUMNS"] = WIDTH
    set_language(lang)
    try:
        parser = build_parser()
        words = WORDS[lang]
        commands = [("", parser)] + subcommands(parser)
        lines = [words["switch"], "", f"# {words['title']}", "", words["intro"], "",
                 f"## {words['contents']}", ""]
        for name, _ in commands:
            title = f"digitlab {name}".strip()
            anchor = title.replace(" ", "-")
            lines.append(f"- [`{title}`](#{anchor})")
        for name, sub in commands:
            title = f"digitlab {name}".strip()
            lines += ["", f"## {title}", ""]
            if sub.description:
                lines += [sub.description, ""]
            lines += ["```text", sub.format_usage().strip(), "```", "",
                      f"| {words['option']} | {words['default']} | {words['meaning']} |",
                      "|---|---|---|", *option_rows(sub, words)]
        return "\n".join(lines) + "\n"
    finally:
        set_language("en")


def main(argv: list[str]) -> int:
    check = argv == ["--check"]
    if argv and not check:
        print(__doc__, file=sys.stderr)
        return 2
    stale = []
    for lang, path in OUT.items():
        text = render(lang)
        if check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".md.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        print(f"wrote {path.relative_to(REPO)}")
    for path in stale:
        print(f"{path.relative_to(REPO)} is out of date: run python tools/gen_cli_reference.py",
              file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
