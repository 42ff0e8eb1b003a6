"""Figure text in the CLI's language (`--lang`, $DIGITLAB_LANG), when a font can show it.

matplotlib's default font (DejaVu Sans) has no Bengali glyphs, so under `--lang bn` the figures
use the first installed Bengali-capable font (Debian: fonts-noto-core, fonts-lohit-beng-bengali)
with DejaVu Sans behind it for Latin letters and digits. Without one, figures stay in English
and one line says so, once per process. report.html is translated either way: the browser
brings its own fonts.

A figure that shows Bengali text in any language (the class names "০".."৯" of cmaterdb and
mnist+cmaterdb on tick labels and titles) gets the same font, so that ৭ is never a box.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import warnings
from pathlib import Path

from digitlab.i18n import DEFAULT, N_, _, language
from digitlab.scripts import has_bengali

# First found wins; all of them carry the Bengali block.
BENGALI_FAMILIES = ("Noto Sans Bengali", "Noto Sans Bengali UI", "Noto Serif Bengali",
                    "Lohit Bengali", "Lohit Assamese")
BENGALI_FILES = ("bengali", "assamese")  # their font files' names hold one of these words
NO_FONT = N_("no Bengali font found (install fonts-noto-core or fonts-lohit-beng-bengali); "
             "figures stay in English")
NO_FONT_FOR_NAMES = N_("no Bengali font found (install fonts-noto-core or "
                       "fonts-lohit-beng-bengali); Bengali class names show as boxes in the "
                       "figures")
_noticed: list[bool] = []  # the notice, once per process
_noticed_names: list[bool] = []  # NO_FONT_FOR_NAMES, once per process


@functools.cache
def bengali_font() -> str | None:
    """The family name of the first installed Bengali-capable font, or None. matplotlib keeps
    the fonts it found in a cache file; a font installed after that (apt-get install
    fonts-lohit-beng-bengali once matplotlib has run) is missing from it, so the system's font
    files are looked through once more for one."""
    from matplotlib import font_manager

    def first() -> str | None:
        installed = {entry.name for entry in font_manager.fontManager.ttflist}
        return next((family for family in BENGALI_FAMILIES if family in installed), None)

    if first() is None:
        for path in font_manager.findSystemFonts():
            if any(word in Path(path).name.lower() for word in BENGALI_FILES):
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):
                    continue  # an unreadable font file: the next one
    return first()


def figure_font() -> str | None:
    """The font figures need for the current language (None: matplotlib's default will do, or
    the language's font is missing)."""
    return bengali_font() if language() == "bn" else None


def figures_translated() -> bool:
    """Whether figure text follows the language; False prints the missing-font notice once."""
    if language() == DEFAULT:
        return False
    if figure_font() is not None:
        return True
    if not _noticed:
        _noticed.append(True)
        print(_(NO_FONT), file=sys.stderr)
    return False


def tr(message: str) -> str:
    """A figure's text (marked with N_ where it is written) in the language figures can show."""
    return _(message) if figures_translated() else message


def _texts(fig) -> list:
    from matplotlib.text import Text

    texts = fig.findobj(Text)
    for ax in fig.axes:  # tick labels take their text when drawn; these calls set it now
        texts += [*ax.get_xticklabels(), *ax.get_yticklabels()]
    return texts


def apply_font(fig) -> bool:
    """Give every text of `fig` the language's font, DejaVu Sans after it for what it lacks;
    the Bengali font in any language when the figure shows Bengali text (class names).
    True when it shows Bengali text that no installed font can draw (said once, in one line)."""
    texts = _texts(fig)
    font = figure_font()
    if font is None and any(has_bengali(text.get_text()) for text in texts):
        font = bengali_font()
        if font is None:
            if not _noticed_names:
                _noticed_names.append(True)
                print(_(NO_FONT_FOR_NAMES), file=sys.stderr)
            return True
    if font is not None:
        for text in texts:
            text.set_fontfamily([font, "DejaVu Sans"])
    return False


@contextlib.contextmanager
def drawing(fig):
    """apply_font(fig), then draw (lay out, save) inside: where Bengali text has no font, the
    one line apply_font prints says so, and matplotlib's warning for each missing glyph is
    not repeated."""
    boxes = apply_font(fig)
    with warnings.catch_warnings():
        if boxes:
            warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        yield


def tight_layout(fig) -> None:
    """fig.tight_layout(), measured in the language's font (apply_font first)."""
    with drawing(fig):
        fig.tight_layout()
