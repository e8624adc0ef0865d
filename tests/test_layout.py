"""The layout the README describes: SQL only in smsgw/store/, the store importing no policy, and no
module reaching into another's private names."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DRIVERS = {"sqlite3", "aiosqlite"}


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_only_the_store_package_imports_a_database_driver():
    outside = sorted(
        str(path.relative_to(ROOT))
        for folder in ("smsgw", "adapters")
        for path in (ROOT / folder).rglob("*.py")
        if "store" not in path.relative_to(ROOT / folder).parts[:1] and _imported(path) & DRIVERS
    )
    assert outside == []


def test_the_store_imports_no_policy_module():
    # A fresh interpreter: what importing the store loads, and nothing else of this test run.
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, smsgw.store; print(' '.join(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True, cwd=ROOT, timeout=60,
    ).stdout.split()
    assert "smsgw.store.sqlite_messages" in loaded
    assert [name for name in loaded if name in ("smsgw.protection", "smsgw.replies", "smsgw.dispatch")] == []


def test_no_module_imports_another_modules_private_names():
    # A name with a leading underscore is its module's own: another module of the project needing
    # it means the name belongs in a public module (smsgw/csvfile.py, for one, serves importer.py
    # and faq.py). Third-party private names (listener.py's aiohttp internals) are not counted.
    private = sorted(
        f"{path.relative_to(ROOT)}: {alias.name} from {node.module}"
        for folder in ("smsgw", "adapters")
        for path in (ROOT / folder).rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ImportFrom) and (node.level > 0 or (node.module or "").startswith("smsgw"))
        for alias in node.names
        if alias.name.startswith("_") and not alias.name.startswith("__")
    )
    assert private == []


def test_every_package_of_the_source_tree_is_installed():
    # A wheel (`pip install .`, not -e) holds only the packages pyproject names: a subpackage
    # left out installs a gateway that cannot import its store.
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    present = {
        ".".join(("smsgw", *path.parent.relative_to(ROOT / "smsgw").parts))
        for path in (ROOT / "smsgw").rglob("__init__.py")
    }
    assert present - listed == set()
