"""Keep the gettext catalogs in step with the code.

    python tools/i18n.py extract   # messages from src/digitlab -> locale/digitlab.pot, merged
                                   # into every <lang>/LC_MESSAGES/digitlab.po (new ones empty)
    python tools/i18n.py check     # exit 1 if a message lacks a translation (tests run this)
    python tools/i18n.py compile   # .po -> .mo (installing the package does this too)

Messages are what the code passes to `_()`, `N_()` or `ngettext()`, plus every registry's
one-line description (shown by `digitlab list`). Needs Babel (in the dev extras).
"""

from __future__ import annotations

import re
import runpy
import string
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "digitlab"
LOCALE_DIR = PACKAGE / "locale"
TEMPLATE = LOCALE_DIR / "digitlab.pot"
VERSION = re.search(r'^version = "(.+)"', (REPO / "pyproject.toml").read_text(), re.M)[1]
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}


def extract() -> Catalog:
    """Every message of the package, with where it comes from."""
    catalog = Catalog(project="digitlab", charset="utf-8")
    for filename, lineno, message, comments, _context in extract_from_dir(
            str(PACKAGE), method_map=[("**.py", "python")], keywords=KEYWORDS):
        catalog.add(message, locations=[(f"src/digitlab/{filename}", lineno)],
                    auto_comments=comments)
    sys.path.insert(0, str(REPO / "src"))
    from digitlab.catalog import catalog as registries

    for kind, entries in registries().items():
        for name, description in entries.items():
            catalog.add(description, locations=[(f"registry:{kind}:{name}", 0)])
    return catalog


def po_files() -> list[Path]:
    return sorted(LOCALE_DIR.glob("*/LC_MESSAGES/digitlab.po"))


def read(path: Path) -> Catalog:
    with path.open("rb") as f:
        return read_po(f, locale=path.parts[-3])


def write(catalog: Catalog, path: Path, **options) -> None:
    catalog.project, catalog.version = "digitlab", VERSION
    catalog.copyright_holder = "the digitlab authors"
    catalog.msgid_bugs_address = catalog.last_translator = "digitlab <dev@digitlab.invalid>"
    catalog.fuzzy = False
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("wb") as f:
        write_po(f, catalog, width=100, **options)
    tmp.replace(path)


def update(template: Catalog) -> None:
    TEMPLATE.parent.mkdir(parents=True, exist_ok=True)
    write(template, TEMPLATE, omit_header=False)
    for path in po_files():
        catalog = read(path)
        catalog.update(template, no_fuzzy_matching=True)
        write(catalog, path, ignore_obsolete=True)


def fields(message: str) -> set[str]:
    """The named fields a message formats: {path}, {acc:.2f} -> {'path', 'acc'}; %(prog)s too."""
    names = {f for _, f, _, _ in string.Formatter().parse(message) if f is not None}
    return names | set(re.findall(r"%\((\w+)\)", message))


def problems(template: Catalog, catalog: Catalog) -> list[str]:
    """Why `catalog` does not translate `template` completely and correctly; [] if it does."""
    out = []
    for message in template:
        if not message.id:
            continue
        where = ", ".join(f"{f}:{n}" for f, n in message.locations[:2])
        entry = catalog.get(message.id)
        if entry is None or not any(entry.string if isinstance(entry.string, tuple)
                                    else [entry.string]):
            out.append(f"untranslated ({where}): {message.id!r}")
        elif entry.fuzzy:
            out.append(f"fuzzy ({where}): {message.id!r}")
        else:
            ids = message.id if isinstance(message.id, tuple) else (message.id,)
            strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
            if any(fields(s) != fields(ids[0]) for s in strings if s):
                out.append(f"fields differ ({where}): {message.id!r} -> {strings!r}")
    return out


def compile_all() -> list[Path]:
    """The install's own step (setup.py), so a checkout compiles exactly as pip does."""
    return runpy.run_path(str(REPO / "setup.py"), run_name="digitlab_setup")["compile_catalogs"]()


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ("extract", "check", "compile"):
        print(__doc__, file=sys.stderr)
        return 2
    if argv[0] == "extract":
        template = extract()
        update(template)
        print(f"{len(template)} messages -> {TEMPLATE.relative_to(REPO)} and "
              f"{', '.join(str(p.relative_to(REPO)) for p in po_files())}")
    elif argv[0] == "compile":
        for mo in compile_all():
            print(f"wrote {mo.relative_to(REPO)}")
    else:
        template = extract()
        failed = False
        for path in po_files():
            found = problems(template, read(path))
            for line in found:
                print(f"{path.relative_to(REPO)}: {line}", file=sys.stderr)
            failed |= bool(found)
            print(f"{path.relative_to(REPO)}: {len(template) - len(found)}/{len(template)} "
                  f"messages translated")
        return 1 if failed else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
