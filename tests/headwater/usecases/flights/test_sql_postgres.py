"""The SQL source against a real PostgreSQL server: the same code as for SQLite."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pytest
import sqlalchemy as sa

from headwater.data.sources.sql import iter_partition
from headwater.usecases.flights.data import FLIGHT_TYPES, flights_for_database, read_flights


@pytest.fixture(scope="module")
def pg_engine(postgres_url: str, demo_db: str):
    """PostgreSQL holding the same flights as the SQLite demo database (first week of 2013)."""
    engine = sa.create_engine(postgres_url)
    flights = flights_for_database(read_flights())
    week = flights[
        (flights["flight_date"] >= date(2013, 1, 1)) & (flights["flight_date"] <= date(2013, 1, 7))
    ]
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS flights"))
        week.to_sql("flights", conn, index=False, dtype=FLIGHT_TYPES)
    yield engine
    engine.dispose()


def _sorted(table: pa.Table) -> pa.Table:
    return table.sort_by(
        [
            ("flight_date", "ascending"),
            ("carrier", "ascending"),
            ("flight", "ascending"),
            ("sched_dep_time", "ascending"),
        ]
    )


@pytest.mark.parametrize("day", [date(2013, 1, 1), date(2013, 1, 5)])
def test_postgres_extract_equals_sqlite_extract(pg_engine: sa.Engine, demo_db: str, day: date):
    # Given the same flights in PostgreSQL and in the SQLite demo database
    sqlite = sa.create_engine(demo_db)
    end = date.fromordinal(day.toordinal() + 1)
    # When one partition is extracted from each, in small chunks
    pg_schema, pg_chunks = iter_partition(
        pg_engine, "flights", "flight_date", day, end, chunk_rows=300
    )
    lite_schema, lite_chunks = iter_partition(
        sqlite, "flights", "flight_date", day, end, chunk_rows=300
    )
    pg_batches = list(pg_chunks)
    pg = pa.concat_tables(pg_batches)
    lite = pa.concat_tables(list(lite_chunks))
    sqlite.dispose()
    # Then both give the same schema and the same rows, and chunks stay bounded
    assert pg_schema == lite_schema
    assert pg.num_rows == lite.num_rows > 0
    assert max(b.num_rows for b in pg_batches) <= 300
    assert _sorted(pg).equals(_sorted(lite))
    assert set(pg["flight_date"].to_pylist()) == {day}
