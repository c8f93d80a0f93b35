"""The analysts' enums, registered once, before any module names them in an annotation."""

from __future__ import annotations

import strawberry

from adapters.ledger.periods import Interval
from adapters.ledger.summary import Dimension

__all__ = ["Dimension", "Interval"]

strawberry.enum(
    Interval,
    name="PeriodInterval",
    description="Calendar periods in UTC: DAY, WEEK (ISO, from Monday) or MONTH.",
)
strawberry.enum(
    Dimension,
    name="LedgerSummaryDimension",
    description=(
        "What to group entries by, besides currency (always a group key): PERIOD (see "
        "`interval`), ACCOUNT_NAME, CUSTOMER_KIND, DIRECTION, STATUS."
    ),
)
