"""The json_pages kind against real paginated servers on loopback (cursor and NOAA shapes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from headwater.core.config import SourceConfig
from headwater.core.partitions import partition_of
from headwater.core.usecase import SourceContext
from headwater.data.sources import SourceOptionsError, get_kind, validate_source
from headwater.data.sources.embedded import json_reply
from headwater.data.sources.http import HttpPolicy, HttpRetriesExhausted, JsonHttpClient
from headwater.data.sources.json_pages import (
    CountChanged,
    InvalidPage,
    JsonPagesOptions,
    PagedRequest,
    TooManyPages,
    iter_pages,
    range_params,
    read_path,
    records_to_table,
)
from tests.headwater.data.sources.conftest import TOKEN, CursorServer, NoaaLikeServer

TZ = "America/New_York"
DAY = partition_of(date(2011, 3, 13), "day")  # the spring DST change: 23 local hours


OBSERVED = pa.schema(
    [
        pa.field("observed_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("temp_c", pa.float64()),
    ]
)


@pytest.fixture
def server() -> Iterator[CursorServer]:
    with CursorServer("127.0.0.1", 0) as running:
        yield running


def _options(url: str, **extra: Any) -> JsonPagesOptions:
    keys = {"items_field": "observations", "rate_limit_per_second": 500, **extra}
    return validate_source(SourceConfig(kind="json_pages", base_url=url, **keys))


def _extract(server: CursorServer, partition: Any = DAY, **extra: Any) -> pa.Table:
    ctx = SourceContext("meters", "weather", TZ, PagedRequest(OBSERVED), lambda v: v)
    schema, batches = get_kind("json_pages").extract(_options(server.url, **extra), ctx, partition)
    assert schema == OBSERVED
    return pa.concat_tables(list(batches))


def test_follows_the_cursor_over_every_page(server: CursorServer) -> None:
    table = _extract(server, page_size=5)
    times = table["observed_at"].to_pandas()
    lo, hi = (pd.Timestamp(t) for t in DAY.utc_bounds(TZ))
    assert len(times) == 23  # the 23 local hours of the day clocks spring forward
    assert times.is_monotonic_increasing and times.is_unique
    assert times.min() >= lo and times.max() < hi
    assert server.request_count == 5  # ceil(23 / 5) pages


def test_page_size_does_not_change_the_records(server: CursorServer) -> None:
    assert _extract(server, page_size=3).equals(_extract(server, page_size=1000))


def test_429_is_retried_after_retry_after(server: CursorServer) -> None:
    server.inject_faults(["429:0.05", "ok", "429:0.05"])
    table = _extract(server, page_size=10)
    assert table.num_rows == 23
    assert server.request_count == 3 + 2


def test_the_servers_own_rate_limit_is_survived() -> None:
    with CursorServer("127.0.0.1", 0, rate_limit_per_second=10) as limited:
        table = _extract(limited, page_size=1)
        assert table.num_rows == 23
        assert limited.throttled_count > 0  # throttling really ran, and was recovered from


def test_retries_are_bounded(server: CursorServer) -> None:
    server.inject_faults(["503"] * 3)
    with pytest.raises(HttpRetriesExhausted, match="3 attempt"):
        _extract(server, max_retries=2)


def test_a_malformed_page_names_its_number_and_url(server: CursorServer) -> None:
    options = _options(server.url, items_field="records", page_size=5)
    client = JsonHttpClient(HttpPolicy(rate_limit_per_second=500))
    with pytest.raises(InvalidPage, match=r"page 1 \(GET http://127\.0\.0\.1:\d+/v1/observations"):
        list(
            iter_pages(
                client,
                server.url,
                {"start": "2011-03-13T05:00:00Z", "end": "2011-03-14T04:00:00Z"},
                OBSERVED,
                options,
            )
        )
    client.close()


def test_page_limit_stops_an_endless_api(server: CursorServer) -> None:
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


# --- offset and page pagination, date ranges, a total count: an API in the NOAA CDO v2 shape ---

JANUARY = partition_of(date(2013, 1, 1), "month")
NOAA_SCHEMA = pa.schema(
    [
        pa.field("date", pa.string()),
        pa.field("datatype", pa.string()),
        pa.field("station", pa.string()),
        pa.field("value", pa.float64()),
    ]
)
NOAA_KEYS = {
    "items_field": "results",
    "pagination": "offset",
    "first_offset": 1,
    "total_path": "metadata.resultset.count",
    "time_format": "date",
    "end_inclusive": True,
    "start_param": "startdate",
    "end_param": "enddate",
    "page_size": 25,
    "rate_limit_per_second": 500,
    "auth": {"header": "token", "value": "env:NOAA_TOKEN"},
}


def _noaa_extract(
    server: NoaaLikeServer, partition: Any = JANUARY, **keys: Any
) -> tuple[pa.Table, JsonPagesOptions]:
    options = validate_source(
        SourceConfig(kind="json_pages", base_url=server.url, **{**NOAA_KEYS, **keys})
    )
    request = PagedRequest(NOAA_SCHEMA, {"datasetid": "GHCND"})
    ctx = SourceContext("rain", "daily", "America/New_York", request, lambda v: v)
    schema, batches = get_kind("json_pages").extract(options, ctx, partition)
    return pa.concat_tables(list(batches)), options


@pytest.fixture
def noaa_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOAA_TOKEN", TOKEN)


def _sent(server: NoaaLikeServer, name: str) -> list[str]:
    return [query[name][0] for query in server.queries]


def test_offset_pages_one_based_until_the_total_count(
    noaa: NoaaLikeServer, noaa_token: None
) -> None:
    # Given a month of two daily values (62 records) read 25 at a time from offset 1
    table, _ = _noaa_extract(noaa)

    # Then every record of the month's local dates came, once, in three requests
    days = sorted({d[:10] for d in table["date"].to_pylist()})
    assert table.num_rows == 62 and len(set(zip(*table.to_pydict().values(), strict=True))) == 62
    assert (days[0], days[-1]) == ("2013-01-01", "2013-01-31")
    assert _sent(noaa, "offset") == ["1", "26", "51"]
    assert {(q["startdate"][0], q["enddate"][0]) for q in noaa.queries} == {
        ("2013-01-01", "2013-01-31")
    }
    assert set(_sent(noaa, "datasetid")) == {"GHCND"} and set(_sent(noaa, "limit")) == {"25"}


STATIONS = ("GHCND:USW00094728", "GHCND:USW00094789", "GHCND:USW00014732")


def test_a_list_value_repeats_its_parameter_in_the_use_cases_request(noaa_token: None) -> None:
    # Given an archive of three stations, and a request for two of them
    with NoaaLikeServer(stations=STATIONS) as server:
        options = validate_source(SourceConfig(kind="json_pages", base_url=server.url, **NOAA_KEYS))
        wanted = list(STATIONS[::2])
        request = PagedRequest(NOAA_SCHEMA, {"datasetid": "GHCND", "stationid": wanted})
        ctx = SourceContext("rain", "daily", "America/New_York", request, lambda v: v)
        # When January is extracted
        _, batches = get_kind("json_pages").extract(options, ctx, JANUARY)
        table = pa.concat_tables(list(batches))

    # Then every page asked for both, in order, and both stations' 62 records came
    assert {tuple(q["stationid"]) for q in server.queries} == {STATIONS[::2]}
    assert sorted(set(table["station"].to_pylist())) == sorted(STATIONS[::2])
    assert table.num_rows == 2 * 62


def test_the_stages_params_repeat_a_parameter_and_override_the_use_cases(
    noaa_token: None,
) -> None:
    # Given the stage's own params: one station, then a list of two (TOML arrays)
    with NoaaLikeServer(stations=STATIONS) as server:
        one, _ = _noaa_extract(server, params={"stationid": STATIONS[1]})
        two, _ = _noaa_extract(server, params={"stationid": list(STATIONS[:2])})

    assert set(one["station"].to_pylist()) == {STATIONS[1]} and one.num_rows == 62
    assert sorted(set(two["station"].to_pylist())) == sorted(STATIONS[:2])
    assert two.num_rows == 124
    # and the use case's own fixed parameter is still sent beside them
    assert {tuple(q["datasetid"]) for q in server.queries} == {("GHCND",)}


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"stationid": []}, "params.stationid.list[str]: List should have at least 1 item"),
        ({"stationid": ["A", 3]}, "params.stationid.list[str].1: Input should be a valid str"),
        ({"limit": "5"}, "params names 'limit', which the kind sends itself"),
        ({"offset": "5"}, "params names 'offset'"),
    ],
)
def test_params_the_kind_cannot_send_are_refused_with_the_configuration(
    params: dict[str, Any], words: str
) -> None:
    with pytest.raises(SourceOptionsError, match="params") as refused:
        _options("http://x", **NOAA_KEYS, params=params)
    assert words in str(refused.value)


def test_a_request_value_that_is_not_a_string_or_a_list_of_strings_is_refused() -> None:
    with pytest.raises(ValueError, match="'stationid': give a string, or a non-empty list"):
        PagedRequest(NOAA_SCHEMA, {"stationid": 7})  # type: ignore[dict-item]


def test_a_count_that_ends_on_a_full_page_asks_no_empty_page(
    noaa: NoaaLikeServer, noaa_token: None
) -> None:
    table, _ = _noaa_extract(noaa, page_size=31)  # 62 records: exactly two pages

    assert table.num_rows == 62 and _sent(noaa, "offset") == ["1", "32"]


def test_zero_based_offsets(noaa_token: None) -> None:
    with NoaaLikeServer(offset_base=0) as server:
        table, _ = _noaa_extract(server, first_offset=0)

    assert table.num_rows == 62 and _sent(server, "offset") == ["0", "25", "50"]


def test_page_numbers_with_configured_parameter_names(noaa_token: None) -> None:
    with NoaaLikeServer(by_page=True) as server:
        table, _ = _noaa_extract(server, pagination="page", page_param="page", first_page=1)

    assert table.num_rows == 62 and _sent(server, "page") == ["1", "2", "3"]
    assert all("offset" not in query for query in server.queries)


def test_without_a_count_the_first_short_page_is_the_last(
    noaa: NoaaLikeServer, noaa_token: None
) -> None:
    table, _ = _noaa_extract(noaa, total_path=None, page_size=20)  # 20, 20, 20, 2

    assert table.num_rows == 62 and _sent(noaa, "offset") == ["1", "21", "41", "61"]


def test_the_exclusive_end_is_the_day_after_the_partition(
    noaa: NoaaLikeServer, noaa_token: None
) -> None:
    table, _ = _noaa_extract(noaa, end_inclusive=False, partition=DAY)

    # The server reads enddate inclusively: an exclusive end asks one more day of it.
    assert {(q["startdate"][0], q["enddate"][0]) for q in noaa.queries} == {
        ("2011-03-13", "2011-03-14")
    }


def test_a_count_changing_between_pages_is_refused_naming_source_page_and_counts(
    noaa_token: None,
) -> None:
    with NoaaLikeServer(count_drift=3) as server, pytest.raises(CountChanged) as changed:
        _noaa_extract(server)

    message = str(changed.value)
    assert "source 'daily' of use case 'rain'" in message
    assert "page 2 (GET http://127.0.0.1:" in message
    assert "from 62 (page 1) to 65 (page 2)" in message
    assert "'metadata.resultset.count'" in message


def test_a_page_without_a_count_is_named(noaa: NoaaLikeServer, noaa_token: None) -> None:
    with pytest.raises(InvalidPage, match=r"page 1 .*'metadata\.resultset\.total'.*no such field"):
        _noaa_extract(noaa, total_path="metadata.resultset.total")


def test_an_empty_page_before_the_count_is_reached_fails(noaa_token: None) -> None:
    # Given a server that counts 25 more records than it serves
    with NoaaLikeServer() as server:
        original = server.answer

        def overcounting(path: str, query: Any) -> Any:
            reply = original(path, query)
            return json_reply(200, {**json.loads(reply.body), "metadata": _counted(87)})

        server.answer = overcounting  # type: ignore[method-assign]
        with pytest.raises(InvalidPage, match=r"page 4 .*an empty page after 62 of the 87"):
            _noaa_extract(server)


def _counted(count: int) -> dict[str, Any]:
    return {"resultset": {"offset": 1, "count": count, "limit": 25}}


@pytest.mark.parametrize(
    ("time_format", "end_inclusive", "expected"),
    [
        ("date", True, {"s": "2013-01-01", "e": "2013-01-31"}),
        ("date", False, {"s": "2013-01-01", "e": "2013-02-01"}),
        ("instant", False, {"s": "2013-01-01T05:00:00Z", "e": "2013-02-01T05:00:00Z"}),
    ],
)
def test_range_params_in_each_time_format(
    time_format: str, end_inclusive: bool, expected: dict[str, str]
) -> None:
    options = _options(
        "http://x",
        start_param="s",
        end_param="e",
        time_format=time_format,
        end_inclusive=end_inclusive,
    )
    assert range_params(options, JANUARY, "America/New_York") == expected


@pytest.mark.parametrize(
    ("keys", "words"),
    [
        ({"pagination": "offset", "first_offset": 2}, "first_offset: Input should be 0 or 1"),
        ({"pagination": "pages"}, "pagination: Input should be 'cursor', 'offset' or 'page'"),
        ({"time_format": "day"}, "time_format: Input should be 'instant' or 'date'"),
        ({"total_path": "metadata..count", "pagination": "offset"}, "total_path: String should"),
        ({"total_path": "metadata.count"}, "total_path is read only with pagination"),
        ({"end_inclusive": True}, "end_inclusive applies to time_format = 'date' only"),
        ({"first_page": -1, "pagination": "page"}, "first_page: Input should be greater"),
    ],
)
def test_options_are_checked_when_the_configuration_is_read(
    keys: dict[str, Any], words: str
) -> None:
    with pytest.raises(SourceOptionsError, match=r"\(kind 'json_pages'\): ") as refused:
        _options("http://x", **keys)
    assert words in str(refused.value)


def test_read_path_follows_dotted_keys() -> None:
    payload = {"metadata": {"resultset": {"count": 7}}, "results": []}
    assert read_path(payload, "metadata.resultset.count") == 7
    assert read_path(payload, "metadata.nothing.count") is None
    assert read_path(payload, "results.count") is None
