"""The provider specs the contract tests need travel with the repository (tests/specs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.adapters.banking.obuk_fixtures import OBUK_SPEC_PATH
from tests.adapters.banking.sandbox_fixtures import PLAID_SPEC_PATH
from tests.fixtures.specs import PINNED_SPECS, SPECS_DIR, spec_path
from tests.fixtures.stripe_spec import STRIPE_SPEC_PATH

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "path", [STRIPE_SPEC_PATH, PLAID_SPEC_PATH, OBUK_SPEC_PATH], ids=lambda p: p.name
)
def test_contract_tests_read_specs_inside_the_repository(path: Path) -> None:
    resolved = path.resolve()
    assert resolved.is_relative_to(REPO_ROOT), f"{path} is outside the repository"
    assert resolved.name in PINNED_SPECS


@pytest.mark.parametrize("name", sorted(PINNED_SPECS))
def test_every_pinned_spec_is_present_with_its_digest(name: str) -> None:
    assert spec_path(name) == SPECS_DIR / name


def test_a_missing_spec_fails_instead_of_skipping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(PINNED_SPECS, "absent.yaml", "0" * 64)
    with pytest.raises(pytest.fail.Exception, match="missing"):
        spec_path("absent.yaml")


def test_a_changed_spec_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "stripe-spec3.yaml").write_text("openapi: 3.0.0\n")
    monkeypatch.setattr("tests.fixtures.specs.SPECS_DIR", tmp_path)
    with pytest.raises(pytest.fail.Exception, match="not the pinned version"):
        spec_path("stripe-spec3.yaml")


def test_the_stripe_licence_travels_with_its_spec() -> None:
    assert "Stripe, Inc." in (SPECS_DIR / "stripe-LICENSE").read_text()
