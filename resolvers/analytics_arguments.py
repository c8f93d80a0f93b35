"""The analysts' arguments, each described once for every field that takes it.

Used as annotations (`first_day: FromDay = None`): the description travels with the type, so
the documentation GraphiQL shows is the same wherever the argument appears.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import strawberry

from adapters import records
from resolvers.analytics_enums import Dimension, Interval

__all__ = [
    "AccountIds",
    "FromDay",
    "GroupBy",
    "HistoryInterval",
    "Statuses",
    "SummaryInterval",
    "ToDay",
]

FromDay = Annotated[
    dt.date | None,
    strawberry.argument(
        name="from",
        description=(
            "First day of the range (a UTC calendar day, included); null for the field's "
            "default (see its description). After `to` is BAD_USER_INPUT."
        ),
    ),
]
ToDay = Annotated[
    dt.date | None,
    strawberry.argument(
        name="to",
        description="Last day of the range (a UTC calendar day, included); null for today.",
    ),
]
HistoryInterval = Annotated[
    Interval,
    strawberry.argument(
        description=(
            "Length of each period: DAY, WEEK (ISO, from Monday) or MONTH, in UTC; one "
            "closing balance per period."
        )
    ),
]
SummaryInterval = Annotated[
    Interval,
    strawberry.argument(
        description=(
            "Length of the periods when grouping by PERIOD: DAY, WEEK (ISO, from Monday) or "
            "MONTH, in UTC; ignored otherwise."
        )
    ),
]
GroupBy = Annotated[
    list[Dimension],
    strawberry.argument(
        description=(
            "What to group the entries by, besides currency (always a group key); an empty "
            "list gives one group per currency."
        )
    ),
]
Statuses = Annotated[
    list[records.TransactionStatus] | None,
    strawberry.argument(
        description=(
            "Count only entries of transactions with these statuses; null for PENDING and "
            "POSTED. An empty list is BAD_USER_INPUT."
        )
    ),
]
AccountIds = Annotated[
    list[strawberry.ID] | None,
    strawberry.argument(
        description=(
            "Count only the entries of these ledger accounts (global ids; at most the page "
            "cap); null for every account. Ids not in your tenant match nothing."
        )
    ),
]
