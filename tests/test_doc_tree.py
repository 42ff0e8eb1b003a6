"""The English and Bengali doc trees: complete, mirrored, cross-linked, every link resolving,
and the CLI reference generated from the parser as it is today."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from helpers import REPO, bengali_share

EN, BN = REPO / "docs" / "en", REPO / "docs" / "bn"
GUIDE_EN, GUIDE_BN = "mnist_end_to_end_line_by_line.md", "mnist_end_to_end_line_by_line_bn.md"
REQUIRED = ["README.md", "getting-started.md", GUIDE_EN, "cheatsheet-losses.md",
            "cheatsheet-optimizers.md", "cheatsheet-schedulers.md", "cheatsheet-activations.md",
            "common-mistakes.md", "guide-imbalance.md", "guide-performance.md",
            "guide-torchrun.md", "guide-predict-serve.md", "guide-export.md", "guide-bangla.md",
            "cli.md"]
MARKDOWN = sorted([REPO / "README.md", REPO / "README.bn.md", *(REPO / "docs").rglob("*.md")])
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|<img[^>]+src=\"([^\"]+)\"")


def bn_name(en_name: str) -> str:
    return GUIDE_BN if en_name == GUIDE_EN else en_name


def prose(path) -> str:
    """The text outside code blocks and inline code."""
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return re.sub(r"`[^`]*`", "", text)




@pytest.mark.parametrize("name", REQUIRED)
def test_both_languages_have_it(name):
    assert (EN / name).is_file(), f"docs/en/{name} is missing"
    assert (BN / bn_name(name)).is_file(), f"docs/bn/{bn_name(name)} is missing"


def test_the_trees_mirror_each_other():
    en = {bn_name(p.name) for p in EN.glob("*.md")}
    bn = {p.name for p in BN.glob("*.md")} - {"glossary.md"}  # Bengali terms only: no twin
    assert en == bn, f"only in en: {sorted(en - bn)}; only in bn: {sorted(bn - en)}"


@pytest.mark.parametrize("name", [p.name for p in sorted(EN.glob("*.md"))])
def test_each_page_links_its_mirror(name):
    en, bn = EN / name, BN / bn_name(name)
    assert f"../bn/{bn.name}" in en.read_text(encoding="utf-8").splitlines()[0]
    assert f"../en/{name}" in bn.read_text(encoding="utf-8").splitlines()[0]


def test_the_readmes_link_each_other_and_the_docs():
    english = (REPO / "README.md").read_text(encoding="utf-8")
    bengali = (REPO / "README.bn.md").read_text(encoding="utf-8")
    assert "README.bn.md" in english and "docs/en/" in english
    assert "(README.md)" in bengali and "docs/bn/" in bengali


def test_the_quickstart_is_the_same_in_both_readmes():
    def commands(text):
        """The lines of the first code block after the Quickstart heading."""
        block = re.search(r"^## [^\n]*\n.*?```\w*\n(.*?)```", text, re.S | re.M)[1]
        return block.strip().splitlines()

    english = commands((REPO / "README.md").read_text(encoding="utf-8"))
    assert len(english) == 2
    assert commands((REPO / "README.bn.md").read_text(encoding="utf-8")) == english


@pytest.mark.parametrize("readme", ["README.md", "README.bn.md"])
def test_the_readme_tells_cpu_only_users_how_to_skip_cuda(readme):
    text = (REPO / readme).read_text(encoding="utf-8")
    quickstart = text.index("```bash")
    cpu = text.index("pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu")
    assert quickstart < cpu < text.index("## ", quickstart)  # right after the quickstart


@pytest.mark.parametrize("path", [p for p in BN.glob("*.md") if p.name != "cli.md"]
                         + [REPO / "README.bn.md"], ids=lambda p: p.name)
def test_bengali_pages_are_bengali(path):
    assert bengali_share(prose(path)) > 0.65, f"{path.name} reads mostly as English"


def test_bengali_docs_are_substantial():
    sizes = {p.name: len(prose(p)) for p in BN.glob("*.md")}
    assert sizes[GUIDE_BN] > 15_000, "the line-by-line guide is the flagship document"
    for name, size in sizes.items():
        assert size > 1_500, f"docs/bn/{name} is a stub ({size} characters of prose)"


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(path):
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    broken = []
    for match in LINK.finditer(text):
        target = (match.group(1) or match.group(2)).split("#")[0]
        if not target or re.match(r"[a-z]+:", target):
            continue  # an anchor on this page, or http(s)://, mailto:
        if not (path.parent / target).exists():
            broken.append(target)
    assert not broken, f"{path.relative_to(REPO)} links to missing files: {broken}"


def test_cli_reference_is_current():
    result = subprocess.run([sys.executable, str(REPO / "tools" / "gen_cli_reference.py"),
                             "--check"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def test_cli_reference_covers_every_command():
    from digitlab.cli import COMMANDS

    for page in (EN / "cli.md", BN / "cli.md"):
        text = page.read_text(encoding="utf-8")
        for command in COMMANDS:
            assert f"## digitlab {command}" in text, (page.name, command)
    assert bengali_share(prose(BN / "cli.md")) > 0.5
