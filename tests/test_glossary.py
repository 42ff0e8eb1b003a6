"""One Bengali word per term: docs/bn/glossary.md lists them, and the Bengali docs and the
Bengali catalog use no other form of them (code spans, code blocks and message fields aside)."""

from __future__ import annotations

import re

import pytest
from babel.messages.pofile import read_po

from helpers import REPO

BN = REPO / "docs" / "bn"
GLOSSARY = BN / "glossary.md"
CATALOG = REPO / "src" / "digitlab" / "locale" / "bn" / "LC_MESSAGES" / "digitlab.po"
# English term -> the one Bengali form we use
TERMS = {
    "epoch": "ইপক", "batch": "ব্যাচ", "accuracy": "অ্যাকুরেসি", "loss": "লস",
    "learning rate": "লার্নিং রেট", "training": "ট্রেনিং", "test": "টেস্ট",
    "validation": "ভ্যালিডেশন", "model": "মডেল", "dataset": "ডেটাসেট", "run": "রান",
    "checkpoint": "চেকপয়েন্ট", "optimizer": "অপ্টিমাইজার", "scheduler": "শিডিউলার",
    "augmentation": "অগমেন্টেশন", "preset": "প্রিসেট", "calibration": "ক্যালিব্রেশন",
    "confidence": "কনফিডেন্স", "official": "অফিশিয়াল",
}
# Forms we replaced: the English word in Latin letters (as a word, not part of a name such as
# test.csv or --epochs) and the Bengali spellings we do not use.
LATIN = [term for term in TERMS if term != "official"]
FORBIDDEN = ["ট্রেন অ্যাকুরেসি", "ট্রেন লস", "ট্রেইন", "অফিসিয়াল", "ভ্যাল লস", "ভ্যাল অ্যাকুরেসি",
             "আস্থা"]
# Messages that name things literally (plot kinds, bench parts, torch classes): their Latin
# words are names.
NAMES = {'--parts: unknown {parts}; choose from seed, presets, predict, memory, robustness, '
         'bangla, read',
         'comma-separated: seed (tutorial vs digitlab), presets (fast99 and best over --seeds '
         'seeds), predict (throughput), memory (peak RSS), robustness (the seed, best and robust'
         ' presets on image files: scikit-learn digits, photos, mouse drawings, test PNGs), '
         'bangla (the bangla preset over 3 seeds, its photo path, and the bilingual preset per '
         'script; --data-dir: a folder holding mnist/ and cmaterdb-bangla/), read (whole '
         'numbers: the segment method with the robust preset beside the ctc method with the read'
         ' preset); default: seed,predict,memory',
         'draw figures: activations, losses, schedule, temperature, augment, filters, run',
         "seed recipe: the tutorial's pipeline (torchvision Dataset + DataLoader)..."}


def latin_pattern(term: str) -> re.Pattern:
    """The term in Latin letters as a word, plural too, but not inside a name (--epochs)."""
    word = term.replace(" ", "[ -]")
    return re.compile(rf"(?<![\w./=_@$-]){word}(?:e?s)?(?![\w./_=]|-[A-Za-z])", re.I)


def prose(text: str) -> str:
    """Text outside code blocks, inline code and link targets."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return re.sub(r"`[^`]*`|\]\([^)]*\)|</?[A-Za-z][^>\n]*>|https?://\S+", "", text)


def message_words(text: str) -> str:
    """A message without {fields}, --options, dotted keys and paths."""
    return re.sub(r"\{[^}]*\}|--?[\w-]+|\S*[./=]\S*|\b[A-Z][A-Z_]+\b", "", text)


def pages():
    return [p for p in sorted(BN.glob("*.md")) if p.name not in ("glossary.md", "cli.md")]


def msgstrs():
    with CATALOG.open("rb") as f:
        catalog = read_po(f, locale="bn")
    for message in catalog:
        ids = [message.id] if isinstance(message.id, str) else list(message.id)
        strings = [message.string] if isinstance(message.string, str) else list(message.string)
        if message.id and ids[0] not in NAMES:
            yield ids[0], " ".join(s for s in strings if s)


def test_the_glossary_lists_every_term_once():
    text = GLOSSARY.read_text(encoding="utf-8")
    for english, bengali in TERMS.items():
        assert re.search(rf"^\| `{english}` \| {bengali}[ |]", text, re.M), (english, bengali)
    assert "(glossary.md)" in (BN / "README.md").read_text(encoding="utf-8")
    assert "Bengali glossary" in (REPO / "docs" / "en" / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("path", [*pages(), REPO / "README.bn.md"], ids=lambda p: p.name)
def test_bengali_docs_use_the_glossary_forms(path):
    text = path.read_text(encoding="utf-8")
    words = prose(text)
    latin = [m[0] for term in LATIN for m in latin_pattern(term).finditer(words)]
    assert not latin, f"{path.name}: write these as in glossary.md: {sorted(set(latin))}"
    wrong = [form for form in FORBIDDEN if form in text]
    assert not wrong, f"{path.name}: non-glossary forms {wrong}"


def test_the_bengali_catalog_uses_the_glossary_forms():
    bad = []
    for msgid, msgstr in msgstrs():
        words = message_words(msgstr)
        bad += [(msgid, m[0]) for term in LATIN for m in latin_pattern(term).finditer(words)]
        bad += [(msgid, form) for form in FORBIDDEN if form in msgstr]
    assert not bad, f"non-glossary forms in the bn catalog: {bad[:10]}"


def test_the_check_catches_a_latin_term():
    assert latin_pattern("epoch").search(prose("প্রতি epochs-এ `--epochs` দিয়ে"))
    assert not latin_pattern("test").search(message_words("Kaggle-এর test.csv পড়ে --test"))
