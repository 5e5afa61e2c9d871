"""The paginated weather API: its format, its cursor, its errors and loopback only."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from headwater.usecases.bikeshare.data import read_csv
from headwater.usecases.bikeshare.weather_server import WeatherServer, main

QUERY = "start=2011-01-01T05:00:00Z&end=2011-01-02T05:00:00Z"


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_pages_chain_by_cursor_to_the_whole_range(bike_weather_server: Any) -> None:
    status, first = _get(f"{bike_weather_server.url}?{QUERY}&limit=10")
    assert status == 200 and len(first["observations"]) == 10
    csv = read_csv()
    row = csv[(csv["dteday"] == "2011-01-01") & (csv["hr"] == "12am")].iloc[0]  # 05:00 UTC
    assert first["observations"][0] == {
        "observed_at": "2011-01-01T05:00:00Z", "condition": row["weathersit"],
        "temp_c": float(row["temp"]), "apparent_temp_c": float(row["atemp"]),
        "humidity": float(row["hum"]), "wind_kmh": float(row["windspeed"]),
    }  # fmt: skip
    seen = list(first["observations"])
    cursor = first["next"]
    while cursor:
        _, page = _get(f"{bike_weather_server.url}?{QUERY}&limit=10&cursor={cursor}")
        seen += page["observations"]
        cursor = page["next"]
    assert len(seen) == 24 and len({o["observed_at"] for o in seen}) == 24


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("end=2011-01-02T00:00Z", "'start' is required"),
        ("start=2011-01-01T00:00&end=2011-01-02T00:00Z", "UTC offset"),
        (QUERY + "&limit=0", "limit must be between"),
        (QUERY + "&cursor=bogus", "invalid cursor"),
        ("start=2011-01-02T00:00Z&end=2011-01-01T00:00Z", "not after start"),
    ],
)
def test_bad_queries_answer_400(bike_weather_server: Any, query: str, message: str) -> None:
    status, body = _get(f"{bike_weather_server.url}?{query}")
    assert status == 400 and message in body["error"]["message"]


def test_rate_limit_answers_429_with_retry_after() -> None:
    with WeatherServer("127.0.0.1", 0, rate_limit_per_second=1) as server:
        _get(f"{server.url}?{QUERY}")
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(f"{server.url}?{QUERY}", timeout=5)
        assert caught.value.code == 429 and int(caught.value.headers["Retry-After"]) >= 1
        caught.value.close()


def test_only_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        WeatherServer("0.0.0.0", 0)
    with pytest.raises(SystemExit):
        main(["--host", "0.0.0.0"])
