"""Calendar periods in UTC (day, ISO week from Monday, month) and their SQL bucket expressions.

Python and SQL agree on where a period starts: `period_start` here and `bucket_expression` in
each dialect (PostgreSQL `date_trunc` on the UTC time, SQLite `date`/`strftime`) give the same
date for the same instant, so rows grouped by the database fall into the periods listed here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Date, cast, func, literal_column
from sqlalchemy.sql.elements import ColumnElement

__all__ = [
    "Interval",
    "Period",
    "bucket_date",
    "bucket_expression",
    "day_start",
    "period_start",
    "periods",
]


class Interval(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


@dataclass(frozen=True, slots=True)
class Period:
    """Days `first`..`last` (both inclusive); `natural_start` is where its calendar period
    starts (before `first` when the range starts mid-period)."""

    first: dt.date
    last: dt.date
    natural_start: dt.date


def period_start(day: dt.date, interval: Interval) -> dt.date:
    if interval is Interval.DAY:
        return day
    if interval is Interval.WEEK:
        return day - dt.timedelta(days=day.weekday())
    return day.replace(day=1)


def _next_start(start: dt.date, interval: Interval) -> dt.date:
    if interval is Interval.DAY:
        return start + dt.timedelta(days=1)
    if interval is Interval.WEEK:
        return start + dt.timedelta(days=7)
    return (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def periods(first: dt.date, last: dt.date, interval: Interval) -> list[Period]:
    """The periods covering `first`..`last`, the first and last clipped to the range."""
    found: list[Period] = []
    start = period_start(first, interval)
    while start <= last:
        following = _next_start(start, interval)
        found.append(Period(max(start, first), min(following - dt.timedelta(days=1), last), start))
        start = following
    return found


def day_start(day: dt.date) -> dt.datetime:
    """Midnight UTC at the start of `day`."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def bucket_expression(column: Any, interval: Interval | None, dialect: str) -> ColumnElement[Any]:
    """The start date of the period holding `column` (a UTC datetime or a date).

    None: one bucket for everything (a constant). Constants are inlined, not bound, so that
    the same expression may appear in a select list and its GROUP BY.
    """
    if interval is None:
        return literal_column("'all'")
    if dialect == "postgresql":
        utc = column if isinstance(column.type, Date) else func.timezone(_UTC, column)
        return cast(func.date_trunc(literal_column(f"'{interval}'"), utc), Date)
    if interval is Interval.DAY:
        return func.date(column)
    if interval is Interval.WEEK:
        return func.date(column, literal_column("'weekday 0'"), literal_column("'-6 days'"))
    return func.strftime(literal_column("'%Y-%m-01'"), column)


_UTC: ColumnElement[Any] = literal_column("'UTC'")


def bucket_date(value: Any) -> dt.date:
    """A bucket as a date (SQLite returns ISO text, PostgreSQL dates)."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))
