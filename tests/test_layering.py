"""The layering of ARCHITECTURE.md: imports point one way, gateway -> resolvers -> adapters.

`resolvers/loaders` sits between the schema and the adapters: it may import adapters only.
A module that imports upward fails here, naming the file and the import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# package (directory) -> first-party packages it must never import
FORBIDDEN = {
    "adapters": ("gateway", "resolvers"),
    "resolvers": ("gateway",),
    "resolvers/loaders": ("gateway", "resolvers"),
}


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _allowed(importer: Path, package: str, imported: str) -> bool:
    top = imported.split(".")[0]
    if top not in FORBIDDEN[package]:
        return True
    # the loaders' own modules import each other
    return package == "resolvers/loaders" and imported.startswith("resolvers.loaders")


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_one_way(package: str) -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {imported}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for imported in _imports(path)
        if not _allowed(path, package, imported)
    ]
    assert offenders == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from gateway.context import Info\nimport resolvers.schema\n")
    assert _imports(module) == ["gateway.context", "resolvers.schema"]
