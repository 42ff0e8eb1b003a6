"""English or Bengali: every message the CLI shows goes through `_()`.

The translations live in gettext catalogs: `locale/<lang>/LC_MESSAGES/digitlab.po` is the
source kept in git, and the `.mo` next to it is compiled from it when the package is built or
installed (setup.py, with Babel). `tools/i18n.py` extracts new messages into the catalogs and
tests/test_i18n.py fails while any of them lacks a translation.

Messages are `str.format` templates with named fields, so a translation may reorder them:
    _("wrote {path}").format(path=path)
`N_()` marks a message that is translated later, where it is shown (argparse's own messages,
registry descriptions).
"""

from __future__ import annotations

import argparse
import gettext
import os
from collections.abc import Sequence
from pathlib import Path

DOMAIN = "digitlab"
LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = {"en": "English", "bn": "বাংলা (Bengali)"}
DEFAULT = "en"
ENV = "DIGITLAB_LANG"

_translation: gettext.NullTranslations = gettext.NullTranslations()
_language = DEFAULT
_ARGPARSE_GETTEXT = (argparse._, argparse.ngettext)


def _(message: str) -> str:
    return _translation.gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return _translation.ngettext(singular, plural, n)


def N_(message: str) -> str:
    return message


def language() -> str:
    return _language


def catalog_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.mo"


def normalize(lang: str) -> str:
    """'bn', 'bn_BD.UTF-8', 'BN' -> 'bn'; anything we do not speak raises ValueError."""
    code = lang.strip().replace("-", "_").split(".")[0].split("_")[0].lower()
    if code not in LANGUAGES:
        raise ValueError(lang)
    return code


def set_language(lang: str) -> None:
    """Switch every later message (ours and argparse's) to `lang` ('en' or 'bn')."""
    global _translation, _language
    lang = normalize(lang)
    if lang == DEFAULT:
        _translation = gettext.NullTranslations()
    else:
        path = catalog_path(lang)
        if not path.is_file():
            raise FileNotFoundError(
                f"the {LANGUAGES[lang]} message catalog {path} is missing; it is compiled "
                f"when digitlab is installed: run `pip install -e .` (or `python tools/i18n.py "
                f"compile`) in the checkout")
        with path.open("rb") as f:
            _translation = gettext.GNUTranslations(f)
    _language = lang
    # argparse formats "usage:", its section titles and its errors with the `_` and
    # `ngettext` it imported from gettext; point them at our catalog, which carries
    # translations of those messages too (ARGPARSE_MESSAGES below).
    if lang == DEFAULT:
        argparse._, argparse.ngettext = _ARGPARSE_GETTEXT
    else:
        argparse._, argparse.ngettext = _translation.gettext, _translation.ngettext


def requested_language(argv: Sequence[str], environ: os._Environ | dict) -> str:
    """The language asked for by `--lang X` / `--lang=X` anywhere in argv, else $DIGITLAB_LANG,
    else English. Read before the parser is built, because help texts are made with it."""
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--lang" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--lang="):
            return arg.split("=", 1)[1]
    return environ.get(ENV) or DEFAULT


# The argparse messages a user of `digitlab` can meet, so that Bengali help and usage errors
# are Bengali throughout. Their msgids must stay exactly argparse's.
ARGPARSE_MESSAGES = (
    N_("usage: "),
    N_("positional arguments"),
    N_("options"),
    N_("show this help message and exit"),
    N_("show program's version number and exit"),
    N_("%(prog)s: error: %(message)s\n"),
    N_("argument %(argument_name)s: %(message)s"),
    N_("the following arguments are required: %s"),
    N_("unrecognized arguments: %s"),
    N_("invalid choice: %(value)r (choose from %(choices)s)"),
    N_("invalid %(type)s value: %(value)r"),
    N_("expected one argument"),
    N_("expected at least one argument"),
    N_("expected at most one argument"),
    N_("ambiguous option: %(option)s could match %(matches)s"),
    N_("not allowed with argument %s"),
    N_("one of the arguments %s is required"),
    N_("ignored explicit argument %r"),
    N_("unknown parser %(parser_name)r (choices: %(choices)s)"),
    N_("can't open '%(filename)s': %(error)s"),
)
