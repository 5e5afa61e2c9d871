"""Date partitions: grains, labels and keys, parsing, ranges, and UTC bounds across DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from headwater.core.partitions import (
    Partition,
    is_settled,
    parse_partition,
    partition_of,
    partitions_between,
    resolve_date,
)

NEW_YORK = "America/New_York"
D = date


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("day", "grain", "start", "end", "label", "key"),
    [
        (D(2013, 1, 1), "day", D(2013, 1, 1), D(2013, 1, 2), "2013-01-01", "date=2013-01-01"),
        (D(2013, 1, 31), "day", D(2013, 1, 31), D(2013, 2, 1), "2013-01-31", "date=2013-01-31"),
        (D(2013, 12, 31), "day", D(2013, 12, 31), D(2014, 1, 1), "2013-12-31", "date=2013-12-31"),
        (D(2012, 2, 29), "day", D(2012, 2, 29), D(2012, 3, 1), "2012-02-29", "date=2012-02-29"),
        (D(2013, 1, 17), "month", D(2013, 1, 1), D(2013, 2, 1), "2013-01", "month=2013-01"),
        (D(2013, 2, 28), "month", D(2013, 2, 1), D(2013, 3, 1), "2013-02", "month=2013-02"),
        (D(2013, 12, 1), "month", D(2013, 12, 1), D(2014, 1, 1), "2013-12", "month=2013-12"),
    ],
)
def test_partition_of(day: date, grain: str, start: date, end: date, label: str, key: str) -> None:
    # When the partition containing a day is computed
    part = partition_of(day, grain)  # type: ignore[arg-type]

    # Then it is the half-open range around that day, with its label and lake key
    assert (part.start, part.end, part.grain) == (start, end, grain)
    assert part.start <= day < part.end
    assert (part.label, part.key) == (label, key)


def test_partition_of_unknown_grain_names_it() -> None:
    with pytest.raises(ValueError, match="unknown partition grain 'week'"):
        partition_of(date(2013, 1, 1), "week")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("label", "grain"),
    [("2013-01-01", "day"), ("2013-12-31", "day"), ("2013-01", "month"), ("2013-12", "month")],
)
def test_parse_partition_round_trips_the_label(label: str, grain: str) -> None:
    # When a label is parsed
    part = parse_partition(label, grain)  # type: ignore[arg-type]

    # Then it is the partition that label names
    assert part.label == label
    assert part == partition_of(part.start, grain)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("label", "grain", "reason"),
    [
        pytest.param("2013-13-01", "day", "expected YYYY-MM-DD", id="month-13"),
        pytest.param("2013-02-30", "day", "expected YYYY-MM-DD", id="feb-30"),
        pytest.param("2013-01", "day", "expected YYYY-MM-DD", id="month-as-day"),
        pytest.param("yesterday", "day", "expected YYYY-MM-DD", id="word"),
        pytest.param("", "day", "expected YYYY-MM-DD", id="empty"),
        pytest.param("20130101", "day", "not the start of a day", id="basic-iso"),
        pytest.param("2013-W01-1", "day", "not the start of a day", id="iso-week"),
        pytest.param("2013-01-15", "month", "expected YYYY-MM", id="day-as-month"),
        pytest.param("2013-01-01", "month", "expected YYYY-MM", id="month-start-as-day"),
        pytest.param("2013-1", "month", "expected YYYY-MM", id="unpadded"),
        pytest.param("2013-00", "month", "expected YYYY-MM", id="month-zero"),
    ],
)
def test_parse_partition_rejects_bad_labels(label: str, grain: str, reason: str) -> None:
    # When a malformed label is parsed, then the error quotes it and says what was expected
    with pytest.raises(ValueError) as caught:
        parse_partition(label, grain)  # type: ignore[arg-type]
    assert str(caught.value) == f"bad partition {label!r}: {reason}"


@pytest.mark.parametrize(
    ("first", "last", "grain", "labels"),
    [
        pytest.param(
            date(2013, 1, 30),
            date(2013, 2, 2),
            "day",
            ["2013-01-30", "2013-01-31", "2013-02-01", "2013-02-02"],
            id="days-over-month-end",
        ),
        pytest.param(
            date(2012, 12, 30),
            date(2013, 1, 1),
            "day",
            ["2012-12-30", "2012-12-31", "2013-01-01"],
            id="days-over-year-end",
        ),
        pytest.param(date(2013, 3, 10), date(2013, 3, 10), "day", ["2013-03-10"], id="one-day"),
        pytest.param(
            date(2012, 11, 15),
            date(2013, 2, 1),
            "month",
            ["2012-11", "2012-12", "2013-01", "2013-02"],
            id="months-over-year-end",
        ),
        pytest.param(date(2013, 1, 5), date(2013, 1, 6), "month", ["2013-01"], id="within-month"),
    ],
)
def test_partitions_between(first: date, last: date, grain: str, labels: list[str]) -> None:
    # When the partitions covering a date range are listed
    parts = partitions_between(first, last, grain)  # type: ignore[arg-type]

    # Then they are consecutive, cover both ends, and carry the expected labels
    assert [p.label for p in parts] == labels
    assert parts[0].start <= first and last < parts[-1].end
    assert all(a.end == b.start for a, b in zip(parts, parts[1:], strict=False))


def test_partitions_between_a_whole_year_of_days() -> None:
    parts = partitions_between(date(2013, 1, 1), date(2013, 12, 31), "day")
    assert len(parts) == 365
    assert len({p.key for p in parts}) == 365


def test_partitions_between_rejects_an_empty_range() -> None:
    with pytest.raises(ValueError, match="2013-01-02 is after 2013-01-01"):
        partitions_between(date(2013, 1, 2), date(2013, 1, 1), "day")


@pytest.mark.parametrize(
    ("label", "grain", "lo", "hours"),
    [
        pytest.param("2013-01-15", "day", utc(2013, 1, 15, 5), 24, id="winter"),
        pytest.param("2013-07-04", "day", utc(2013, 7, 4, 4), 24, id="summer"),
        pytest.param("2013-03-10", "day", utc(2013, 3, 10, 5), 23, id="spring-dst"),
        pytest.param("2013-11-03", "day", utc(2013, 11, 3, 4), 25, id="fall-dst"),
        pytest.param("2013-03", "month", utc(2013, 3, 1, 5), 31 * 24 - 1, id="march"),
        pytest.param("2013-11", "month", utc(2013, 11, 1, 4), 30 * 24 + 1, id="november"),
        pytest.param("2013-01", "month", utc(2013, 1, 1, 5), 31 * 24, id="january"),
    ],
)
def test_utc_bounds_follow_local_midnights(
    label: str, grain: str, lo: datetime, hours: int
) -> None:
    # Given a local calendar partition in New York
    part = parse_partition(label, grain)  # type: ignore[arg-type]

    # When its UTC bounds are computed
    start, end = part.utc_bounds(NEW_YORK)

    # Then they are the UTC instants of the local midnights, as long as the local period really is
    assert start == lo
    assert end - start == timedelta(hours=hours)
    assert start.utcoffset() == timedelta(0) and end.utcoffset() == timedelta(0)


def test_utc_bounds_in_utc_are_the_dates_themselves() -> None:
    part = Partition(date(2013, 3, 10), date(2013, 3, 11), "day")
    assert part.utc_bounds("UTC") == (
        datetime(2013, 3, 10, tzinfo=UTC),
        datetime(2013, 3, 11, tzinfo=UTC),
    )


def test_partitions_sort_by_start() -> None:
    later, earlier = partition_of(date(2013, 2, 1), "day"), partition_of(date(2013, 1, 1), "day")
    assert sorted([later, earlier]) == [earlier, later]


# --- is_settled / resolve_date -----------------------------------------------------------------


def test_a_partition_is_settled_only_once_published_after_its_period_ended() -> None:
    # January 2013 in New York ends at 2013-02-01 05:00 UTC
    january = parse_partition("2013-01", "month")
    end = datetime(2013, 2, 1, 5, tzinfo=UTC)

    assert not is_settled(january, end - timedelta(seconds=1), "America/New_York")
    assert is_settled(january, end, "America/New_York")
    # with late data expected, a day more
    assert not is_settled(january, end + timedelta(hours=23), "America/New_York", timedelta(days=1))
    assert is_settled(january, end + timedelta(days=1), "America/New_York", timedelta(days=1))


def test_is_settled_refuses_a_naive_publication_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        is_settled(parse_partition("2013-01-01", "day"), datetime(2013, 1, 2), "UTC")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2013-01-31", date(2013, 1, 31)),
        ("today", date(2026, 3, 1)),
        ("Yesterday", date(2026, 2, 28)),
        ("today-0", date(2026, 3, 1)),
        ("today-365", date(2025, 3, 1)),
        (" 2013-01-31 ", date(2013, 1, 31)),
    ],
)
def test_resolve_date_absolute_and_relative(value: str, expected: date) -> None:
    assert resolve_date(value, today=date(2026, 3, 1)) == expected


@pytest.mark.parametrize("value", ["2013-13-01", "today+1", "today-", "today-x", "Jan 4", ""])
def test_resolve_date_names_the_accepted_forms(value: str) -> None:
    with pytest.raises(ValueError, match="expected YYYY-MM-DD, today, yesterday or today-N"):
        resolve_date(value, today=date(2026, 3, 1))


@pytest.mark.parametrize("grain", ["day", "month"])
def test_a_partition_is_read_back_from_its_key(grain: str) -> None:
    from headwater.core.partitions import partition_of_key

    part = partition_of(date(2013, 2, 14), grain)  # type: ignore[arg-type]

    assert partition_of_key(part.key) == part


@pytest.mark.parametrize("key", ["snapshot=2013-03-12", "month=2013-13", "date=2013-02", "x"])
def test_a_key_that_is_no_date_partition_is_refused(key: str) -> None:
    from headwater.core.partitions import partition_of_key

    with pytest.raises(ValueError, match="not a date partition key"):
        partition_of_key(key)
