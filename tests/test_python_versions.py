"""The package claims Python >= 3.10 (pyproject's requires-python). No 3.10 interpreter is
installed on our machines, so this checks statically what would break there: syntax newer than
3.10, and stdlib modules added in 3.11 (tomllib) imported outside a version guard."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import tomllib

from helpers import REPO

SOURCES = sorted((REPO / "src" / "digitlab").rglob("*.py"))
NEW_IN_311 = {"tomllib", "wsgiref.types"}


def test_requires_python_is_310():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert meta["project"]["requires-python"] == ">=3.10"


def _guarded(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Inside `if sys.version_info >= (3, 11):`?"""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "version_info" in ast.unparse(node.test):
            return True
    return False


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_module_runs_on_python_310(path: Path):
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path), feature_version=(3, 10))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(tree):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        for name in names:
            assert name not in NEW_IN_311 or _guarded(node, parents), (
                f"{path.name}:{node.lineno} imports {name} (Python 3.11+) without a "
                "sys.version_info guard; use digitlab.config.load_toml")
