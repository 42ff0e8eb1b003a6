"""Build hook: compile the gettext catalogs (locale/*/LC_MESSAGES/*.po -> .mo) with Babel.

Runs for wheels and for editable installs (`pip install -e .`), so `--lang bn` works in both.
Everything else about the package is in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

LOCALE_DIR = Path(__file__).parent / "src" / "digitlab" / "locale"


def compile_catalogs() -> list[Path]:
    """Every .po to its .mo (also `python tools/i18n.py compile`); the .mo files written."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    written = []
    for po in sorted(LOCALE_DIR.glob("*/LC_MESSAGES/*.po")):
        with po.open("rb") as f:
            catalog = read_po(f, locale=po.parts[-3])
        tmp = po.with_suffix(".mo.tmp")
        with tmp.open("wb") as f:
            write_mo(f, catalog)  # fuzzy entries are left out, as msgfmt does
        tmp.replace(po.with_suffix(".mo"))
        written.append(po.with_suffix(".mo"))
    return written


class BuildPyWithCatalogs(build_py):
    def run(self):
        compile_catalogs()
        super().run()


if __name__ == "__main__":  # as setuptools runs it; tools/i18n.py imports compile_catalogs
    setup(cmdclass={"build_py": BuildPyWithCatalogs})
