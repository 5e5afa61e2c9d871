"""Date partitions: the unit of extraction, cleaning and Lambda fan-out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

Grain = Literal["day", "month"]


@dataclass(frozen=True, order=True)
class Partition:
    """A half-open range of local calendar dates ``[start, end)``."""

    start: date
    end: date
    grain: Grain

    @property
    def key(self) -> str:
        """The partition's directory name in the lake, e.g. ``date=2013-01-01``."""
        if self.grain == "month":
            return f"month={self.start:%Y-%m}"
        return f"date={self.start.isoformat()}"

    @property
    def label(self) -> str:
        """The short form used in events and task ids, e.g. ``2013-01-01`` or ``2013-01``."""
        return f"{self.start:%Y-%m}" if self.grain == "month" else self.start.isoformat()

    def utc_bounds(self, timezone: str) -> tuple[datetime, datetime]:
        """Return the UTC instants where this partition starts and ends in ``timezone``."""
        tz = ZoneInfo(timezone)
        utc = ZoneInfo("UTC")
        lo = datetime(self.start.year, self.start.month, self.start.day, tzinfo=tz)
        hi = datetime(self.end.year, self.end.month, self.end.day, tzinfo=tz)
        return lo.astimezone(utc), hi.astimezone(utc)


def _next_month(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def partition_of(day: date, grain: Grain) -> Partition:
    """Return the partition of ``grain`` that contains ``day``."""
    if grain == "month":
        first = day.replace(day=1)
        return Partition(first, _next_month(first), "month")
    if grain == "day":
        return Partition(day, day + timedelta(days=1), "day")
    raise ValueError(f"unknown partition grain {grain!r}: expected 'day' or 'month'")


def parse_partition(label: str, grain: Grain) -> Partition:
    """Parse a label (``2013-01-01`` for days, ``2013-01`` for months) into a partition."""
    try:
        day = date.fromisoformat(f"{label}-01" if grain == "month" else label)
    except ValueError:
        expected = "YYYY-MM" if grain == "month" else "YYYY-MM-DD"
        raise ValueError(f"bad partition {label!r}: expected {expected}") from None
    part = partition_of(day, grain)
    if part.label != label:
        raise ValueError(f"bad partition {label!r}: not the start of a {grain}")
    return part


def partitions_between(first: date, last: date, grain: Grain) -> list[Partition]:
    """Return the partitions covering the dates ``first``..``last`` inclusive."""
    if last < first:
        raise ValueError(f"date range is empty: {first} is after {last}")
    out = []
    part = partition_of(first, grain)
    while part.start <= last:
        out.append(part)
        part = partition_of(part.end, grain)
    return out
