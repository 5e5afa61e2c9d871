"""SQL source: quoted identifiers, type mapping, a missing SQLite file.

Partitions read from a real database (bounded chunks, typed, bound parameters) are tested on
the use case's demo database that ships one.
"""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa

from headwater.data.sources.sql import SqlSourceError, arrow_type, iter_partition


def test_identifiers_with_quotes_are_quoted(tmp_path: Path) -> None:
    # Given a table and a date column whose names contain quotes and SQL
    path = tmp_path / "odd.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute('CREATE TABLE "t""; DROP TABLE keep; --" ("d\'ay" DATE, v INTEGER)')
        conn.execute("CREATE TABLE keep (x INTEGER)")
        conn.executemany(
            'INSERT INTO "t""; DROP TABLE keep; --" VALUES (?, ?)',
            [("2013-01-01", 1), ("2013-01-01", 2), ("2013-01-02", 3)],
        )
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        # When it is extracted
        _, batches = iter_partition(
            engine, 't"; DROP TABLE keep; --', "d'ay", date(2013, 1, 1), date(2013, 1, 2)
        )
        table = pa.concat_tables(list(batches))
    finally:
        engine.dispose()

    # Then the right rows come back and nothing in the names was executed
    assert table["v"].to_pylist() == [1, 2]
    with sqlite3.connect(path) as conn:
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert "keep" in names


# --- arrow_type ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql_type", "expected"),
    [
        (sa.Boolean(), pa.bool_()),
        (sa.Integer(), pa.int64()),
        (sa.BigInteger(), pa.int64()),
        (sa.SmallInteger(), pa.int64()),
        (sa.Float(), pa.float64()),
        (sa.Numeric(10, 2), pa.float64()),
        (sa.DateTime(), pa.timestamp("us")),
        (sa.DateTime(timezone=True), pa.timestamp("us", tz="UTC")),
        (sa.Date(), pa.date32()),
        (sa.String(8), pa.string()),
        (sa.Text(), pa.string()),
        (sa.Enum("a", "b"), pa.string()),
    ],
    ids=lambda value: repr(value) if isinstance(value, sa.types.TypeEngine) else None,
)
def test_arrow_type(sql_type: sa.types.TypeEngine, expected: pa.DataType) -> None:
    assert arrow_type(sa.Column("c", sql_type)) == expected


@pytest.mark.parametrize("sql_type", [sa.LargeBinary(), sa.JSON(), sa.Interval(), sa.Uuid()])
def test_arrow_type_rejects_unsupported_types_naming_the_column(
    sql_type: sa.types.TypeEngine,
) -> None:
    with pytest.raises(SqlSourceError, match="column 'payload' has unsupported type"):
        arrow_type(sa.Column("payload", sql_type))


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("sqlite:///var/demo/missing-demo.sqlite", "build it with `headwater demo-data`"),
        ("sqlite:////tmp/headwater-missing/mine.sqlite", "check the source's url"),
    ],
    ids=["demo-database", "chosen-url"],
)
def test_a_missing_sqlite_file_names_the_next_step_that_applies(url: str, hint: str) -> None:
    from headwater.data.sources.sql import engine_for

    with pytest.raises(FileNotFoundError) as missing:
        engine_for(url)

    assert hint in str(missing.value)
    assert ("demo-data" in str(missing.value)) is ("demo" in url)
