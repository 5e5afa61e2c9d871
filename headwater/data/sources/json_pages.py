"""Source kind ``json_pages``: records from a paginated JSON API, page by page, by cursor.

One partition is one query: ``GET base_url?<start_param>=<UTC start>&<end_param>=<UTC end>
&<limit_param>=<page_size>`` plus the use case's fixed parameters; each answer is a JSON
object holding the records (a list of objects) under ``items_field`` and the cursor of
the next page under ``next_field`` (null or absent on the last page), sent back as
``cursor_param``. Times are ISO 8601 UTC (``2011-01-01T05:00:00Z``). Every request goes
through the shared HTTP client (rate limit, 429/Retry-After, backoff, timeouts).

The use case's ``source_request(source)`` returns a :class:`PagedRequest`: the Arrow
schema records are converted to (fields absent from a record are null, others ignored)
and any fixed query parameters. Each page becomes one Arrow table, so memory is bounded
by the page size; a malformed page fails naming its number and URL.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import pyarrow as pa
import requests
from pydantic import Field

from headwater.data.sources import HttpSourceOptions, no_snapshot, request_of
from headwater.data.sources.http import HttpSourceError, JsonHttpClient, client_for, redact_url

if TYPE_CHECKING:
    from headwater.core.partitions import Partition
    from headwater.core.usecase import SourceContext

_Name = Annotated[str, Field(min_length=1)]


class InvalidPage(HttpSourceError):
    """A page answered 200 but is not what the kind expects (shape, cursor or values)."""


class TooManyPages(HttpSourceError):
    """The API kept answering with a next cursor past the configured page limit."""


@dataclass(frozen=True)
class PagedRequest:
    """What a use case asks a ``json_pages`` source for: the record schema, fixed parameters."""

    schema: pa.Schema
    params: Mapping[str, str] = field(default_factory=dict)


class JsonPagesOptions(HttpSourceOptions):
    """Keys of a ``json_pages`` source: the shared HTTP policy plus the API's field names."""

    items_field: _Name = "items"
    next_field: _Name = "next"
    cursor_param: _Name = "cursor"
    start_param: _Name = "start"
    end_param: _Name = "end"
    limit_param: _Name = "limit"
    page_size: Annotated[int, Field(ge=1, le=100_000)] = 500
    # A safety limit: an API that never stops paginating fails the extraction.
    max_pages: Annotated[int, Field(ge=1)] = 10_000


def format_time(instant: datetime) -> str:
    """An instant as ISO 8601 UTC with a ``Z`` (``2011-01-01T05:00:00Z``)."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def page_url(base_url: str, params: Mapping[str, Any]) -> str:
    """The URL of one page's request, credentials masked (for messages)."""
    prepared = requests.Request("GET", base_url, params=dict(params)).prepare()
    return redact_url(str(prepared.url))


def records_to_table(records: list[Any], schema: pa.Schema, where: str) -> pa.Table:
    """Convert a page's records (JSON objects) to an Arrow table of ``schema``.

    A field absent from a record is null; fields the schema does not name are ignored.
    Strings in timestamp fields must be ISO 8601 with a zone offset.
    """
    for position, record in enumerate(records):
        if not isinstance(record, dict):
            raise InvalidPage(
                f"{where}: record {position} is {type(record).__name__}, not a JSON object"
            )
    arrays = []
    for column in schema:
        values = [record.get(column.name) for record in records]
        try:
            if pa.types.is_timestamp(column.type) or pa.types.is_date(column.type):
                array = pa.array(values, type=pa.string()).cast(column.type)
            else:
                array = pa.array(values, type=column.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            bad = _first_bad(values, column.type)
            raise InvalidPage(
                f"{where}: field {column.name!r} is not {column.type}"
                + (f" (record {bad[0]}: {bad[1]!r})" if bad else f" ({exc})")
            ) from None
        if not column.nullable and array.null_count:
            raise InvalidPage(f"{where}: field {column.name!r} is missing or null in a record")
        arrays.append(array)
    return pa.Table.from_arrays(arrays, schema=schema)


def _first_bad(values: list[Any], kind: pa.DataType) -> tuple[int, Any] | None:
    """The first value that does not convert to ``kind`` (for the error message)."""
    for position, value in enumerate(values):
        try:
            if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
                pa.array([value], type=pa.string()).cast(kind)
            else:
                pa.array([value], type=kind)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            return position, value
    return None


def iter_pages(
    client: JsonHttpClient,
    base_url: str,
    params: Mapping[str, str],
    schema: pa.Schema,
    options: JsonPagesOptions,
) -> Iterator[pa.Table]:
    """Follow the cursor from the first page to the last, one Arrow table per page."""
    cursor: str | None = None
    seen: set[str] = set()
    for number in range(1, options.max_pages + 1):
        query = dict(params)
        if cursor is not None:
            query[options.cursor_param] = cursor
        where = f"page {number} (GET {page_url(base_url, query)})"
        payload = client.get_json(base_url, query)
        if not isinstance(payload, dict):
            raise InvalidPage(f"{where}: expected a JSON object, got {type(payload).__name__}")
        records = payload.get(options.items_field)
        if not isinstance(records, list):
            got = "no such field" if records is None else type(records).__name__
            raise InvalidPage(f"{where}: {options.items_field!r} is not a list ({got})")
        yield records_to_table(records, schema, where)
        cursor = payload.get(options.next_field)
        if cursor is None or cursor == "":
            return
        if not isinstance(cursor, str):
            raise InvalidPage(
                f"{where}: {options.next_field!r} is {type(cursor).__name__}, "
                "expected a string or null"
            )
        if cursor in seen:
            raise InvalidPage(f"{where}: the API sent cursor {cursor!r} twice (a pagination loop)")
        seen.add(cursor)
    raise TooManyPages(
        f"GET {page_url(base_url, params)}: still paginating after max_pages="
        f"{options.max_pages} pages (raise max_pages if the partition really is that large)"
    )


class JsonPagesKind:
    """The ``json_pages`` kind: the records of a partition's UTC hours, page by page."""

    Config = JsonPagesOptions
    http = True
    snapshot = staticmethod(no_snapshot("json_pages"))

    def extract(
        self, config: JsonPagesOptions, ctx: SourceContext, partition: Partition
    ) -> tuple[pa.Schema, Iterator[pa.Table]]:
        """Records between the partition's UTC bounds, converted to the use case's schema."""
        request = request_of(ctx, PagedRequest, "json_pages")
        lo, hi = partition.utc_bounds(ctx.timezone)
        params = {
            **request.params,
            config.start_param: format_time(lo),
            config.end_param: format_time(hi),
            config.limit_param: str(config.page_size),
        }
        base_url = ctx.resolve(config.base_url)
        return request.schema, iter_pages(
            client_for(config), base_url, params, request.schema, config
        )


KIND = JsonPagesKind()
