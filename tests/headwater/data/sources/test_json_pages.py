"""The json_pages kind against a real paginated server on loopback (the bike share API)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from headwater.core.config import SourceConfig
from headwater.core.partitions import partition_of
from headwater.core.usecase import SourceContext
from headwater.data.sources import get_kind, validate_source
from headwater.data.sources.http import HttpPolicy, HttpRetriesExhausted, JsonHttpClient
from headwater.data.sources.json_pages import (
    InvalidPage,
    JsonPagesOptions,
    PagedRequest,
    TooManyPages,
    iter_pages,
    records_to_table,
)
from headwater.usecases.bikeshare.cleaning import RAW_WEATHER_SCHEMA
from headwater.usecases.bikeshare.weather_server import WeatherServer

TZ = "America/New_York"
DAY = partition_of(date(2011, 3, 13), "day")  # the spring DST change: 23 local hours


@pytest.fixture
def server() -> Iterator[WeatherServer]:
    with WeatherServer("127.0.0.1", 0) as running:
        yield running


def _options(url: str, **extra: Any) -> JsonPagesOptions:
    keys = {"items_field": "observations", "rate_limit_per_second": 500, **extra}
    return validate_source(SourceConfig(kind="json_pages", base_url=url, **keys))


def _extract(server: WeatherServer, partition: Any = DAY, **extra: Any) -> pa.Table:
    ctx = SourceContext("bikeshare", "weather", TZ, PagedRequest(RAW_WEATHER_SCHEMA), lambda v: v)
    schema, batches = get_kind("json_pages").extract(_options(server.url, **extra), ctx, partition)
    assert schema == RAW_WEATHER_SCHEMA
    return pa.concat_tables(list(batches))


def test_follows_the_cursor_over_every_page(server: WeatherServer) -> None:
    table = _extract(server, page_size=5)
    times = table["observed_at"].to_pandas()
    lo, hi = (pd.Timestamp(t) for t in DAY.utc_bounds(TZ))
    assert len(times) == 23  # the 23 local hours of the day clocks spring forward
    assert times.is_monotonic_increasing and times.is_unique
    assert times.min() >= lo and times.max() < hi
    assert server.request_count == 5  # ceil(23 / 5) pages


def test_page_size_does_not_change_the_records(server: WeatherServer) -> None:
    assert _extract(server, page_size=3).equals(_extract(server, page_size=1000))


def test_429_is_retried_after_retry_after(server: WeatherServer) -> None:
    server.inject_faults(["429:0.05", "ok", "429:0.05"])
    table = _extract(server, page_size=10)
    assert table.num_rows == 23
    assert server.request_count == 3 + 2


def test_the_servers_own_rate_limit_is_survived() -> None:
    with WeatherServer("127.0.0.1", 0, rate_limit_per_second=10) as limited:
        table = _extract(limited, page_size=1)
        assert table.num_rows == 23
        assert limited.throttled_count > 0  # throttling really ran, and was recovered from


def test_retries_are_bounded(server: WeatherServer) -> None:
    server.inject_faults(["503"] * 3)
    with pytest.raises(HttpRetriesExhausted, match="3 attempt"):
        _extract(server, max_retries=2)


def test_a_malformed_page_names_its_number_and_url(server: WeatherServer) -> None:
    options = _options(server.url, items_field="records", page_size=5)
    client = JsonHttpClient(HttpPolicy(rate_limit_per_second=500))
    with pytest.raises(InvalidPage, match=r"page 1 \(GET http://127\.0\.0\.1:\d+/v1/observations"):
        list(
            iter_pages(
                client,
                server.url,
                {"start": "2011-03-13T05:00:00Z", "end": "2011-03-14T04:00:00Z"},
                RAW_WEATHER_SCHEMA,
                options,
            )
        )
    client.close()


def test_page_limit_stops_an_endless_api(server: WeatherServer) -> None:
    with pytest.raises(TooManyPages, match="max_pages=2"):
        _extract(server, page_size=1, max_pages=2)


def test_records_convert_to_the_schema_and_bad_values_are_named() -> None:
    schema = pa.schema([pa.field("t", pa.timestamp("us", tz="UTC")), pa.field("x", pa.float64())])
    table = records_to_table([{"t": "2011-01-01T05:00:00Z", "x": 1, "extra": 3}, {}], schema, "p")
    assert table.to_pylist()[1] == {"t": None, "x": None}
    assert table["x"].to_pylist() == [1.0, None]
    with pytest.raises(InvalidPage, match=r"p: field 'x' is not double \(record 1: 'warm'\)"):
        records_to_table([{"x": 1.5}, {"x": "warm"}], schema, "p")
    with pytest.raises(InvalidPage, match="record 0 is list"):
        records_to_table([[1]], schema, "p")
