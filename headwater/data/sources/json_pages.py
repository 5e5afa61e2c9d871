"""Source kind ``json_pages``: records from a paginated JSON API, page by page.

One partition is one query: ``GET base_url?<start_param>=<start>&<end_param>=<end>
&<limit_param>=<page_size>`` plus the use case's fixed parameters; each answer is a JSON
object holding the records (a list of objects) under ``items_field``. Pages are walked by
``pagination``:

- ``cursor`` (the default): the cursor of the next page is read under ``next_field`` (null
  or absent on the last page) and sent back as ``cursor_param``;
- ``offset``: ``offset_param`` is the position of the page's first record, counted from
  ``first_offset`` (0 or 1): ``first_offset``, then ``first_offset + records read``;
- ``page``: ``page_param`` is the page number, ``first_page``, ``first_page + 1``, ...

With ``offset`` and ``page``, the last page is the one that completes the total count read
at ``total_path`` (a dotted path, e.g. ``metadata.resultset.count``) when one is set, else the
first page shorter than ``page_size``; a count that changes between pages is refused.
Bounds are ISO 8601 UTC instants (``time_format = "instant"``, ``2011-01-01T05:00:00Z``) or
the partition's local dates (``"date"``, ``2011-01-01``; the end the day after the last,
or the last itself with ``end_inclusive``). Every request goes through the shared HTTP
client (rate limit, 429/Retry-After, backoff, timeouts, the source's credential).

The use case's ``source_request(source)`` returns a :class:`PagedRequest`: the Arrow
schema records are converted to (fields absent from a record are null, others ignored)
and any fixed query parameters; the stage's ``params`` key adds or overrides fixed
parameters. A list value repeats its parameter, once per item and in order (as requests
sends it): ``{"stationid": ["A", "B"]}`` is ``stationid=A&stationid=B``. Each page becomes
one Arrow table, so memory is bounded by the page size; a malformed page fails naming its
number and URL.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

import pyarrow as pa
import requests
from pydantic import Field, model_validator

from headwater.data.sources import HttpSourceOptions, no_snapshot, request_of
from headwater.data.sources.http import (
    Credential,
    HttpSourceError,
    JsonHttpClient,
    client_for,
    redact_url,
    resolve_credential,
)

if TYPE_CHECKING:
    from headwater.core.partitions import Partition
    from headwater.core.usecase import SourceContext

_Name = Annotated[str, Field(min_length=1)]


class InvalidPage(HttpSourceError):
    """A page answered 200 but is not what the kind expects (shape, cursor or values)."""


class TooManyPages(HttpSourceError):
    """The API kept answering with a next cursor past the configured page limit."""


class CountChanged(InvalidPage):
    """The total count the API reports changed between two pages of one query."""


#: A fixed query parameter's value: a string, or a list of them to repeat the parameter.
ParamValue = str | Sequence[str]


def check_params(params: Mapping[str, Any]) -> dict[str, str | list[str]]:
    """Fixed query parameters, checked: a string, or a non-empty list of strings (repeated)."""
    checked: dict[str, str | list[str]] = {}
    for name, value in params.items():
        if isinstance(value, str):
            checked[name] = value
            continue
        items = list(value) if isinstance(value, list | tuple) else None
        if not items or not all(isinstance(item, str) for item in items):
            raise ValueError(
                f"query parameter {name!r}: give a string, or a non-empty list of strings to "
                f"repeat the parameter ({name}=A&{name}=B), not {value!r}"
            )
        checked[name] = items
    return checked


@dataclass(frozen=True)
class PagedRequest:
    """What a use case asks a ``json_pages`` source for: the record schema, fixed parameters.

    A list value repeats its parameter: ``{"stationid": ["A", "B"]}`` sends
    ``stationid=A&stationid=B``.
    """

    schema: pa.Schema
    params: Mapping[str, ParamValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Refuse a value that is neither a string nor a non-empty list of strings."""
        check_params(self.params)


class JsonPagesOptions(HttpSourceOptions):
    """Keys of a ``json_pages`` source: the shared HTTP policy plus the API's field names."""

    items_field: _Name = "items"
    # How pages are walked: by a cursor in each answer, a record offset or a page number.
    pagination: Literal["cursor", "offset", "page"] = "cursor"
    next_field: _Name = "next"
    cursor_param: _Name = "cursor"
    offset_param: _Name = "offset"
    first_offset: Literal[0, 1] = 0  # the offset of the first record: 0- or 1-based
    page_param: _Name = "page"
    first_page: Annotated[int, Field(ge=0)] = 1
    # Dotted path of the total record count in each answer (offset and page pagination).
    total_path: Annotated[str, Field(pattern=r"^[^.\s]+(\.[^.\s]+)*$")] | None = None
    start_param: _Name = "start"
    end_param: _Name = "end"
    # Bounds as UTC instants, or as the partition's local dates (YYYY-MM-DD).
    time_format: Literal["instant", "date"] = "instant"
    # With dates: the end is the partition's last date (inclusive), not the day after.
    end_inclusive: bool = False
    limit_param: _Name = "limit"
    # Fixed query parameters of the stage (over the use case's own); a list repeats one.
    params: Mapping[_Name, str | Annotated[list[str], Field(min_length=1)]] = Field(
        default_factory=dict
    )
    page_size: Annotated[int, Field(ge=1, le=100_000)] = 500
    # A safety limit: an API that never stops paginating fails the extraction.
    max_pages: Annotated[int, Field(ge=1)] = 10_000

    @model_validator(mode="after")
    def _keys_fit_the_modes(self) -> JsonPagesOptions:
        if self.total_path is not None and self.pagination == "cursor":
            raise ValueError(
                "total_path is read only with pagination = 'offset' or 'page' "
                "(a cursor API ends when the cursor does): remove it or change pagination"
            )
        if self.end_inclusive and self.time_format != "date":
            raise ValueError(
                "end_inclusive applies to time_format = 'date' only "
                "(an instant end is always exclusive)"
            )
        check_params(self.params)
        own = set(self.kind_params())
        if taken := sorted(own & set(self.params)):
            raise ValueError(
                f"params names {', '.join(map(repr, taken))}, which the kind sends itself "
                "(range, page size, pagination): remove it from params"
            )
        return self

    def kind_params(self) -> tuple[str, ...]:
        """The query parameters the kind sends itself: range bounds, page size, pagination."""
        walk = {
            "cursor": self.cursor_param,
            "offset": self.offset_param,
            "page": self.page_param,
        }[self.pagination]
        return (self.start_param, self.end_param, self.limit_param, walk)


def format_time(instant: datetime) -> str:
    """An instant as ISO 8601 UTC with a ``Z`` (``2011-01-01T05:00:00Z``)."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def range_params(options: JsonPagesOptions, partition: Partition, timezone: str) -> dict[str, str]:
    """The start and end parameters of a partition, in the source's time format."""
    if options.time_format == "date":
        start: str = partition.start.isoformat()
        end = partition.end - timedelta(days=1) if options.end_inclusive else partition.end
        return {options.start_param: start, options.end_param: date.isoformat(end)}
    lo, hi = partition.utc_bounds(timezone)
    return {options.start_param: format_time(lo), options.end_param: format_time(hi)}


def read_path(payload: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted ``path`` of a JSON object (None where a step is missing)."""
    value: Any = payload
    for step in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(step)
    return value


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
    params: Mapping[str, ParamValue],
    schema: pa.Schema,
    options: JsonPagesOptions,
    *,
    source: str = "the source",
    credential: Credential | None = None,
) -> Iterator[pa.Table]:
    """Walk the pages of one query from the first to the last, one Arrow table per page."""
    if options.pagination == "cursor":
        return _by_cursor(client, base_url, params, schema, options, credential)
    return _by_position(client, base_url, params, schema, options, source, credential)


def _get_page(
    client: JsonHttpClient,
    base_url: str,
    query: Mapping[str, ParamValue],
    number: int,
    options: JsonPagesOptions,
    credential: Credential | None,
) -> tuple[str, dict[str, Any], list[Any]]:
    """One page's description (for messages), its JSON object and its records."""
    where = f"page {number} (GET {page_url(base_url, query)})"
    payload = client.get_json(base_url, query, credential=credential)
    if not isinstance(payload, dict):
        raise InvalidPage(f"{where}: expected a JSON object, got {type(payload).__name__}")
    records = payload.get(options.items_field)
    if not isinstance(records, list):
        got = "no such field" if records is None else type(records).__name__
        raise InvalidPage(f"{where}: {options.items_field!r} is not a list ({got})")
    return where, payload, records


def _by_cursor(
    client: JsonHttpClient,
    base_url: str,
    params: Mapping[str, ParamValue],
    schema: pa.Schema,
    options: JsonPagesOptions,
    credential: Credential | None,
) -> Iterator[pa.Table]:
    """Follow the cursor from the first page to the last."""
    cursor: str | None = None
    seen: set[str] = set()
    for number in range(1, options.max_pages + 1):
        query: dict[str, ParamValue] = dict(params)
        if cursor is not None:
            query[options.cursor_param] = cursor
        where, payload, records = _get_page(client, base_url, query, number, options, credential)
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
    raise _too_many(base_url, params, options)


def _by_position(
    client: JsonHttpClient,
    base_url: str,
    params: Mapping[str, ParamValue],
    schema: pa.Schema,
    options: JsonPagesOptions,
    source: str,
    credential: Credential | None,
) -> Iterator[pa.Table]:
    """Ask page after page by record offset or page number, until the last."""
    total: int | None = None
    read = 0
    for number in range(1, options.max_pages + 1):
        query: dict[str, ParamValue] = dict(params)
        if options.pagination == "offset":
            query[options.offset_param] = str(options.first_offset + read)
        else:
            query[options.page_param] = str(options.first_page + number - 1)
        where, payload, records = _get_page(client, base_url, query, number, options, credential)
        yield records_to_table(records, schema, where)
        read += len(records)
        if options.total_path is None:
            if len(records) < options.page_size:
                return
            continue
        count = _total(payload, options.total_path, where)
        if total is not None and count != total:
            raise CountChanged(
                f"{source}: {where}: the total count at {options.total_path!r} changed "
                f"between pages, from {total} (page 1) to {count} (page {number}); "
                "the records changed while being read: extract the partition again later"
            )
        total = count
        if read >= total:
            return
        if not records:
            raise InvalidPage(
                f"{source}: {where}: an empty page after {read} of the {total} records "
                f"the API counts at {options.total_path!r}"
            )
    raise _too_many(base_url, params, options)


def _total(payload: Mapping[str, Any], path: str, where: str) -> int:
    """The total record count at ``path`` of a page (a non-negative integer)."""
    count = read_path(payload, path)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        got = "no such field" if count is None else repr(count)
        raise InvalidPage(f"{where}: the total count at {path!r} is not a count ({got})")
    return count


def _too_many(
    base_url: str, params: Mapping[str, ParamValue], options: JsonPagesOptions
) -> TooManyPages:
    return TooManyPages(
        f"GET {page_url(base_url, params)}: still paginating after max_pages="
        f"{options.max_pages} pages (raise max_pages if the partition really is that large)"
    )


class JsonPagesKind:
    """The ``json_pages`` kind: the records of a partition's time range, page by page."""

    Config = JsonPagesOptions
    http = True
    snapshot = staticmethod(no_snapshot("json_pages"))

    def extract(
        self, config: JsonPagesOptions, ctx: SourceContext, partition: Partition
    ) -> tuple[pa.Schema, Iterator[pa.Table]]:
        """Records between the partition's bounds, converted to the use case's schema."""
        request = request_of(ctx, PagedRequest, "json_pages")
        params = {
            **check_params(request.params),
            **config.params,
            **range_params(config, partition, ctx.timezone),
            config.limit_param: str(config.page_size),
        }
        base_url = ctx.resolve(config.base_url)
        # Read now, for this extraction: a rotated secret is picked up by the next run.
        credential = resolve_credential(config.auth, ctx.resolve)
        return request.schema, iter_pages(
            client_for(config),
            base_url,
            params,
            request.schema,
            config,
            source=f"source {ctx.source!r} of use case {ctx.usecase!r}",
            credential=credential,
        )


KIND = JsonPagesKind()
