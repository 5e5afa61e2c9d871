"""SQL database source kind ``sql``: one date partition, or a whole table, in bounded chunks.

Every extract carries one more column than the table, :data:`headwater.data.contracts.UNREADABLE`:
null, or for a row with a cell that cannot be read as its column's type, which cell and
its text as extracted. Such a row is
quarantined by the pipeline; the rest of the partition goes on.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import pyarrow as pa
import sqlalchemy as sa
from pydantic import Field

from headwater.data.contracts import UNREADABLE
from headwater.data.sources import SourceOptions

if TYPE_CHECKING:
    from headwater.core.partitions import Partition
    from headwater.core.usecase import SourceContext


class SqlSourceError(RuntimeError):
    """The source table or its columns cannot be extracted."""


def arrow_type(column: sa.Column) -> pa.DataType:
    """Map a reflected SQL column type onto the Arrow type it is extracted as."""
    kind = column.type
    if isinstance(kind, sa.Boolean):
        return pa.bool_()
    if isinstance(kind, sa.Integer):
        return pa.int64()
    if isinstance(kind, sa.Float | sa.Numeric):
        return pa.float64()
    if isinstance(kind, sa.DateTime):
        return pa.timestamp("us", tz="UTC") if kind.timezone else pa.timestamp("us")
    if isinstance(kind, sa.Date):
        return pa.date32()
    if isinstance(kind, sa.String):
        return pa.string()
    raise SqlSourceError(f"column {column.name!r} has unsupported type {kind!r}")


def _cast(values: Sequence[Any], kind: pa.DataType) -> pa.Array:
    try:
        return pa.array(values, type=kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        pass  # e.g. SQLite hands dates over as ISO strings: parse the whole column at once
    return pa.array(values).cast(kind)


def _column(values: tuple, field: pa.Field) -> tuple[pa.Array, list[str | None]]:
    """The column as ``field``'s type, and per row why a cell could not be read (or None).

    A cell that cannot be read as the column's type (text in a number column, say) is
    left null in the column and described, with the text as extracted, in the row's
    problem: the row is then quarantined, not the partition.
    """
    problems: list[str | None] = [None] * len(values)
    try:
        return _cast(values, field.type), problems
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        pass  # one bad cell: read the chunk's cells one by one (only this chunk pays)
    cells = []
    for row, value in enumerate(values):
        try:
            cells.append(_cast([value], field.type)[0].as_py())
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
            problems[row] = f"{field.name}: cannot be read as {field.type} (got {value!r})"
            cells.append(None)
    return pa.array(cells, type=field.type), problems


def reflect_table(engine: sa.Engine, table: str) -> sa.Table:
    """Reflect ``table`` or fail naming it and the tables that do exist."""
    metadata = sa.MetaData()
    try:
        return sa.Table(table, metadata, autoload_with=engine)
    except sa.exc.NoSuchTableError:
        known = ", ".join(sa.inspect(engine).get_table_names()) or "none"
        raise SqlSourceError(f"table {table!r} not found in the source (tables: {known})") from None


def table_schema(table: sa.Table) -> pa.Schema:
    """Return the Arrow schema of every column of ``table``."""
    return pa.schema([pa.field(c.name, arrow_type(c)) for c in table.columns])


def iter_partition(
    engine: sa.Engine,
    table: str,
    date_column: str,
    start: date,
    end: date,
    *,
    chunk_rows: int = 50_000,
) -> tuple[pa.Schema, Iterator[pa.Table]]:
    """Return the schema and an iterator of Arrow tables of rows with ``start <= date < end``.

    The dates are bound parameters (never formatted into SQL); rows are fetched
    ``chunk_rows`` at a time through a server-side cursor where the driver has one,
    so memory stays bounded whatever the partition's size.
    """
    reflected = reflect_table(engine, table)
    if date_column not in reflected.columns:
        raise SqlSourceError(f"table {table!r} has no column {date_column!r}")
    column = reflected.columns[date_column]
    query = (
        _raw_select(reflected)
        .where(column >= sa.bindparam("start", start, type_=column.type))
        .where(column < sa.bindparam("end", end, type_=column.type))
        .order_by(*reflected.primary_key.columns or [column])
    )
    return _stream(engine, query, table_schema(reflected), chunk_rows)


def iter_table(
    engine: sa.Engine, table: str, *, chunk_rows: int = 50_000
) -> tuple[pa.Schema, Iterator[pa.Table]]:
    """Return the schema and bounded chunks of a whole (reference) table: a snapshot."""
    reflected = reflect_table(engine, table)
    query = _raw_select(reflected)
    if reflected.primary_key.columns:
        query = query.order_by(*reflected.primary_key.columns)
    return _stream(engine, query, table_schema(reflected), chunk_rows)


def _raw_select(reflected: sa.Table) -> sa.Select:
    # Untyped result columns: rows come back as the driver gives them (no per-value
    # Python conversion); Arrow then casts whole columns to the declared types.
    return sa.select(
        *(sa.type_coerce(c, sa.types.NullType()).label(c.name) for c in reflected.columns)
    )


def _stream(
    engine: sa.Engine, query: sa.Select, schema: pa.Schema, chunk_rows: int
) -> tuple[pa.Schema, Iterator[pa.Table]]:
    declared = schema.append(pa.field(UNREADABLE, pa.string()))

    def chunks() -> Iterator[pa.Table]:
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True).execute(query)
            for rows in result.partitions(chunk_rows):
                columns = list(zip(*rows, strict=True)) if rows else [()] * len(schema)
                arrays, unreadable = [], [None] * len(rows)
                for values, field in zip(columns, schema, strict=True):
                    array, problems = _column(values, field)
                    arrays.append(array)
                    for row, problem in enumerate(problems):
                        if problem is not None:
                            before = unreadable[row]
                            unreadable[row] = problem if before is None else f"{before}; {problem}"
                arrays.append(pa.array(unreadable, pa.string()))
                yield pa.Table.from_arrays(arrays, schema=declared)

    return declared, chunks()


class SqlOptions(SourceOptions):
    """Keys of a ``sql`` source: the database URL (or an ssm:/secretsmanager: reference)."""

    url: Annotated[str, Field(min_length=1)]
    table: Annotated[str, Field(min_length=1)]
    # The column partitions are cut on; none for a reference table extracted whole.
    date_column: str | None = None
    chunk_rows: Annotated[int, Field(gt=0)] = 50_000


def sqlite_file(url: str) -> Path | None:
    """The file of a ``sqlite:///<path>`` URL; None for any other database."""
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///"))
    return None


@functools.cache
def engine_for(url: str) -> sa.Engine:
    """One engine per database URL and process; a missing SQLite file is named with its fix."""
    path = sqlite_file(url)
    if path is not None:
        if not path.is_file():
            raise FileNotFoundError(f"source database {path} does not exist: {missing_hint(path)}")
    return sa.create_engine(url, pool_pre_ping=True)


#: Where the demo's databases are built (``headwater demo-data``), relative to the project.
DEMO_DIR = ("var", "demo")


def missing_hint(path: Path) -> str:
    """The next step for a missing SQLite file: build the demo's, or fix a chosen URL."""
    if path.parent.parts[-len(DEMO_DIR) :] == DEMO_DIR:
        return "build it with `headwater demo-data`"
    return "check the source's url (a sqlite:/// path to an existing file)"


class SqlKind:
    """The ``sql`` kind: rows of a table by date partition, or whole as a snapshot."""

    Config = SqlOptions
    http = False

    def extract(
        self, config: SqlOptions, ctx: SourceContext, partition: Partition
    ) -> tuple[pa.Schema, Iterator[pa.Table]]:
        """Rows of ``config.table`` whose ``date_column`` falls in the partition's dates."""
        if config.date_column is None:
            raise SqlSourceError(
                f"source {ctx.source!r} (table {config.table!r}) has no date_column: it is a "
                "reference table, extracted whole as a snapshot"
            )
        return iter_partition(
            engine_for(ctx.resolve(config.url)),
            config.table,
            config.date_column,
            partition.start,
            partition.end,
            chunk_rows=config.chunk_rows,
        )

    def snapshot(
        self, config: SqlOptions, ctx: SourceContext, as_of: date
    ) -> tuple[pa.Schema, Iterator[pa.Table]]:
        """The whole of ``config.table`` (a reference table) as it is now."""
        return iter_table(
            engine_for(ctx.resolve(config.url)), config.table, chunk_rows=config.chunk_rows
        )


KIND = SqlKind()


def sqlite_target(url: str, what: str) -> Path:
    """The file of the ``sqlite:///`` URL that demo data is built into; other URLs are refused."""
    path = sqlite_file(url)
    if path is None:
        raise ValueError(
            f"{what} points at {url!r}: demo data is only built into a local sqlite:/// file"
        )
    return path


def count_rows(url: str) -> dict[str, int]:
    """Rows per table of a database (what an existing demo database holds)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                name: conn.execute(sa.text(f'SELECT COUNT(*) FROM "{name}"')).scalar_one()
                for name in sa.inspect(conn).get_table_names()
            }
    finally:
        engine.dispose()


def build_sqlite(
    path: Path, write: Callable[[sa.Connection], dict[str, int]], *, replace: bool = False
) -> tuple[str, dict[str, int]]:
    """Build a SQLite database at ``path`` with ``write`` (one transaction); return url, rows.

    An existing file is kept (its row counts returned) unless ``replace``. The database
    is written to a temporary file and renamed into place, so an interrupted build never
    leaves a half-filled database behind.
    """
    path = Path(path)
    url = f"sqlite:///{path}"
    if path.exists() and not replace:
        return url, count_rows(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    engine = sa.create_engine(f"sqlite:///{tmp}")
    try:
        with engine.begin() as conn:
            tables = write(conn)
    except BaseException:
        # The temporary file may already hold some tables: never leave it behind.
        engine.dispose()
        tmp.unlink(missing_ok=True)
        raise
    finally:
        engine.dispose()
    tmp.replace(path)
    engine_for.cache_clear()  # engines on the replaced file would read the old inode
    return url, tables
