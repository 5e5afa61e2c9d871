"""The sql kind on the flights demo SQLite database: one date partition, in bounded chunks, typed
(moved from tests/headwater/data/sources/test_sql.py)."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import sqlalchemy as sa

from headwater.data.sources.sql import SqlSourceError, iter_partition

# What the partition query looks like once compiled (reflection queries come before it).
PARTITION_SELECT = "SELECT flights.flight_date AS flight_date,"


@pytest.fixture(scope="module")
def engine(demo_db: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(demo_db)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def sqlite_path(demo_db: str) -> str:
    return demo_db.removeprefix("sqlite:///")


def count_between(path: str, start: date, end: date) -> int:
    """Count rows with start <= flight_date < end straight through sqlite3."""
    with sqlite3.connect(path) as conn:
        if end - start == timedelta(days=1):
            query, args = "SELECT COUNT(*) FROM flights WHERE flight_date = ?", [start.isoformat()]
        else:
            query = "SELECT COUNT(*) FROM flights WHERE flight_date >= ? AND flight_date < ?"
            args = [start.isoformat(), end.isoformat()]
        return conn.execute(query, args).fetchone()[0]


def read_all(engine: sa.Engine, start: date, end: date, chunk_rows: int = 50_000) -> pa.Table:
    schema, batches = iter_partition(
        engine, "flights", "flight_date", start, end, chunk_rows=chunk_rows
    )
    return pa.concat_tables([schema.empty_table(), *batches])


# --- partitions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end"),
    [
        pytest.param(date(2013, 1, 1), date(2013, 1, 2), id="new-year"),
        pytest.param(date(2013, 3, 10), date(2013, 3, 11), id="dst-day"),
        pytest.param(date(2013, 3, 12), date(2013, 3, 13), id="last-day"),
        pytest.param(date(2013, 1, 30), date(2013, 2, 2), id="over-month-end"),
        pytest.param(date(2013, 2, 1), date(2013, 3, 1), id="february"),
    ],
)
def test_iter_partition_returns_exactly_the_rows_of_the_range(
    engine: sa.Engine, sqlite_path: str, start: date, end: date
) -> None:
    # When a date range is extracted
    table = read_all(engine, start, end)

    # Then it holds as many rows as the database has for those dates, and no others
    expected = count_between(sqlite_path, start, end)
    assert expected > 0
    assert table.num_rows == expected
    days = set(table["flight_date"].to_pylist())
    assert days == {start + timedelta(days=i) for i in range((end - start).days)}


def test_iter_partition_values_match_the_database(engine: sa.Engine, sqlite_path: str) -> None:
    # When one day is extracted
    table = read_all(engine, date(2013, 1, 5), date(2013, 1, 6))

    # Then aggregates and nulls agree with the database's own answer
    with sqlite3.connect(sqlite_path) as conn:
        delay_sum, null_dep_time, carriers = conn.execute(
            "SELECT SUM(dep_delay), SUM(dep_time IS NULL), COUNT(DISTINCT carrier)"
            " FROM flights WHERE flight_date = '2013-01-05'"
        ).fetchone()
    assert pc.sum(table["dep_delay"]).as_py() == pytest.approx(delay_sum)
    assert table["dep_time"].null_count == null_dep_time > 0
    assert pc.count_distinct(table["carrier"]).as_py() == carriers


def test_a_range_without_rows_yields_no_batches(engine: sa.Engine) -> None:
    schema, batches = iter_partition(
        engine, "flights", "flight_date", date(2013, 6, 1), date(2013, 6, 2)
    )
    assert list(batches) == []
    assert "flight_date" in schema.names


@pytest.mark.parametrize("chunk_rows", [100, 333, 421, 842, 5000])
def test_chunks_are_bounded(engine: sa.Engine, sqlite_path: str, chunk_rows: int) -> None:
    # Given a day of n rows
    start, end = date(2013, 1, 1), date(2013, 1, 2)
    n = count_between(sqlite_path, start, end)

    # When it is extracted chunk_rows at a time
    _, batches = iter_partition(engine, "flights", "flight_date", start, end, chunk_rows=chunk_rows)
    sizes = [batch.num_rows for batch in batches]

    # Then there are ceil(n / chunk) batches, all full but the last, adding up to n
    assert len(sizes) == math.ceil(n / chunk_rows)
    assert all(size == chunk_rows for size in sizes[:-1])
    assert 0 < sizes[-1] <= chunk_rows
    assert sum(sizes) == n


def test_batches_are_produced_lazily(engine: sa.Engine) -> None:
    # Given a partition iterator that has not been consumed
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        _, batches = iter_partition(
            engine, "flights", "flight_date", date(2013, 1, 1), date(2013, 1, 2), chunk_rows=100
        )
        selects_before = [s for s in statements if s.startswith(PARTITION_SELECT)]

        # When only its first batch is taken
        first = next(batches)
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)

    # Then the query ran only then
    assert selects_before == []
    assert len([s for s in statements if s.startswith(PARTITION_SELECT)]) == 1
    assert first.num_rows == 100


# --- schema and errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        ("flight_date", pa.date32()),
        ("dep_delay", pa.float64()),
        ("distance", pa.float64()),
        ("carrier", pa.string()),
        ("tailnum", pa.string()),
        ("dep_time", pa.int64()),
        ("year", pa.int64()),
    ],
)
def test_schema_types_are_mapped(engine: sa.Engine, column: str, expected: pa.DataType) -> None:
    # When a partition is extracted
    schema, batches = iter_partition(
        engine, "flights", "flight_date", date(2013, 1, 1), date(2013, 1, 2), chunk_rows=50
    )

    # Then the declared schema and the batches carry the mapped type
    assert schema.field(column).type == expected
    assert next(batches).schema.field(column).type == expected


def test_missing_table_lists_the_tables(engine: sa.Engine) -> None:
    with pytest.raises(SqlSourceError) as caught:
        iter_partition(engine, "flight", "flight_date", date(2013, 1, 1), date(2013, 1, 2))
    assert str(caught.value) == (
        "table 'flight' not found in the source (tables: airlines, airports, flights, planes)"
    )


def test_missing_date_column_is_named(engine: sa.Engine) -> None:
    with pytest.raises(SqlSourceError) as caught:
        iter_partition(engine, "flights", "departure_date", date(2013, 1, 1), date(2013, 1, 2))
    assert str(caught.value) == "table 'flights' has no column 'departure_date'"


def test_dates_are_bound_parameters_not_sql_text(engine: sa.Engine) -> None:
    # Given a listener recording what reaches the driver
    executed: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        executed.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        # When a partition is extracted
        _, batches = iter_partition(
            engine, "flights", "flight_date", date(2013, 1, 7), date(2013, 1, 8)
        )
        list(batches)
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)

    # Then the SELECT has placeholders and no date literal; the dates travel as parameters
    [(statement, parameters)] = [(s, p) for s, p in executed if s.startswith(PARTITION_SELECT)]
    assert "2013" not in statement
    assert statement.count("?") == 2
    assert tuple(parameters) == ("2013-01-07", "2013-01-08")
