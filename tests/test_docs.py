"""The repository documents itself: no pointers to files a user of the repository lacks."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURE = ROOT / "ARCHITECTURE.md"


def test_readme_links_the_architecture_document_not_the_workspace_design() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "](ARCHITECTURE.md" in readme
    assert "DESIGN.md" not in readme
    assert ARCHITECTURE.is_file()


def test_paths_named_in_the_architecture_document_exist() -> None:
    text = ARCHITECTURE.read_text()
    named = set(re.findall(r"`((?:adapters|gateway|resolvers|tests|bench)/[\w/.]*)`", text))
    assert len(named) > 20
    assert sorted(path for path in named if not (ROOT / path).exists()) == []


def test_the_architecture_document_covers_the_layers_and_the_read_path() -> None:
    text = ARCHITECTURE.read_text()
    for heading in (
        "## Three layers, one direction",
        "## A request, end to end",
        "## The ledger",
        "## Providers",
        "## Embedded default and production services",
        "## Where the read path is going",
    ):
        assert heading in text
    assert "tests/test_layering.py" in text
