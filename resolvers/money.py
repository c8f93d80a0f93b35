"""Money on the wire: exact decimal string, minor units, currency and exponent."""

from __future__ import annotations

import strawberry

from adapters.money import format_minor_units
from resolvers.cost_directives import FREE
from resolvers.scalars import BigInt, Decimal

__all__ = ["Money"]


@strawberry.type(
    directives=[FREE],
    description=(
        "An exact amount of money. `amount` is in major units as a decimal string; "
        "`minorUnits` is the same amount as an integer count of the currency's smallest unit."
    ),
)
class Money:
    _minor_units: strawberry.Private[int]

    @strawberry.field(
        description='Decimal string in major units, with exactly `exponent` decimals ("12.50").'
    )
    def amount(self) -> Decimal:
        return Decimal(format_minor_units(self._minor_units, self.exponent))

    @strawberry.field(description='Integer string in minor units ("1250" for 12.50 USD).')
    def minor_units(self) -> BigInt:
        return BigInt(str(self._minor_units))

    currency: str = strawberry.field(description='ISO 4217 alphabetic code ("USD").')
    exponent: int = strawberry.field(
        description="ISO 4217 minor-unit exponent of the currency (USD 2, JPY 0, BHD 3)."
    )

    @classmethod
    def of(cls, minor_units: int, currency: str, exponent: int) -> Money:
        """Money for an amount in minor units; its strings are made only when asked for."""
        return cls(_minor_units=minor_units, currency=currency, exponent=exponent)
