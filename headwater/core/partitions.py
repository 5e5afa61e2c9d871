"""Date partitions: the unit of extraction, cleaning and Lambda fan-out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

Grain = Literal["day", "month"]
#: The name of a partition's key in the lake, by grain (``month=2013-01``, ``date=2013-01-01``).
KEY_NAMES: dict[Grain, str] = {"month": "month", "day": "date"}


@dataclass(frozen=True, order=True)
class Partition:
    """A half-open range of local calendar dates ``[start, end)``."""

    start: date
    end: date
    grain: Grain

    @property
    def key(self) -> str:
        """The partition's directory name in the lake, e.g. ``date=2013-01-01``."""
        return f"{KEY_NAMES[self.grain]}={self.label}"

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


def partition_of_key(key: str) -> Partition:
    """Read a partition back from its key (:attr:`Partition.key`, e.g. ``month=2013-01``)."""
    name, _, label = key.partition("=")
    grains = {key_name: grain for grain, key_name in KEY_NAMES.items()}
    try:
        return parse_partition(label, grains[name])
    except (KeyError, ValueError):
        raise ValueError(
            f"{key!r} is not a date partition key (month=YYYY-MM or date=YYYY-MM-DD)"
        ) from None


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


def is_settled(
    partition: Partition, published_at: datetime, timezone: str, settle: timedelta = timedelta(0)
) -> bool:
    """True when a partition was published after its period ended (plus ``settle``).

    A partition published while its period was still running (this month's, at month
    grain) holds the days so far only: it is not complete, and the next run replaces it
    whole. ``settle`` leaves time for late data (an archive that lags by hours or days).
    """
    if published_at.tzinfo is None:
        raise ValueError("published_at must be timezone-aware")
    return published_at >= partition.utc_bounds(timezone)[1] + settle


def resolve_date(value: str, today: date) -> date:
    """A run date: ``YYYY-MM-DD``, ``today``, ``yesterday`` or ``today-N`` (N days before).

    The relative forms let a schedule say "the trailing year up to yesterday" once,
    e.g. ``--start today-365 --end yesterday``.
    """
    text = value.strip().lower()
    if text == "today":
        return today
    if text == "yesterday":
        return today - timedelta(days=1)
    if text.startswith("today-"):
        days = text.removeprefix("today-")
        if days.isdigit():
            return today - timedelta(days=int(days))
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(
            f"{value!r} is not a date: expected YYYY-MM-DD, today, yesterday or today-N"
        ) from None
