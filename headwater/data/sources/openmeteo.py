"""Source kind ``openmeteo``: Open-Meteo's historical archive, hourly values at a set of points.

The API (``/v1/archive``) takes comma-separated coordinates and answers one JSON object
per coordinate (a list when there are several). Each object carries ``hourly_units`` and
``hourly`` arrays aligned on ``hourly["time"]``; missing values are ``null``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from headwater.data.sources import HttpSourceOptions, no_snapshot, request_of
from headwater.data.sources.http import (
    Credential,
    HttpSourceError,
    JsonHttpClient,
    client_for,
    resolve_credential,
)

if TYPE_CHECKING:
    from headwater.core.partitions import Partition
    from headwater.core.usecase import SourceContext

ARCHIVE_URL = "https://archive-api.open-meteo.com/v1/archive"
DEFAULT_MAX_LOCATIONS_PER_REQUEST = 50

# Unit query parameters the API accepts, their allowed values, and the unit strings the
# API reports for each (as in open-meteo's SiUnit abbreviations).
UNIT_PARAMETERS: dict[str, dict[str, str]] = {
    "temperature_unit": {"celsius": "°C", "fahrenheit": "°F"},
    "wind_speed_unit": {"kmh": "km/h", "ms": "m/s", "mph": "mp/h", "kn": "kn"},
    "precipitation_unit": {"mm": "mm", "inch": "inch"},
}
API_DEFAULT_UNITS = {
    "temperature_unit": "celsius",
    "wind_speed_unit": "kmh",
    "precipitation_unit": "mm",
}

# Base unit per hourly variable. Temperatures and wind speeds follow the unit parameters;
# lengths follow precipitation_unit the way the API converts them (mm/cm -> inch, m -> ft).
_TEMPERATURE, _SPEED = "temperature", "speed"
_VARIABLE_BASE_UNITS: dict[str, str] = {
    "temperature_2m": _TEMPERATURE,
    "dew_point_2m": _TEMPERATURE,
    "apparent_temperature": _TEMPERATURE,
    "soil_temperature_0_to_7cm": _TEMPERATURE,
    "wind_speed_10m": _SPEED,
    "wind_speed_100m": _SPEED,
    "wind_gusts_10m": _SPEED,
    "precipitation": "mm",
    "rain": "mm",
    "et0_fao_evapotranspiration": "mm",
    "snowfall": "cm",
    "snow_depth": "m",
    "visibility": "m",
    "relative_humidity_2m": "%",
    "cloud_cover": "%",
    "cloud_cover_low": "%",
    "cloud_cover_mid": "%",
    "cloud_cover_high": "%",
    "wind_direction_10m": "°",
    "wind_direction_100m": "°",
    "pressure_msl": "hPa",
    "surface_pressure": "hPa",
    "vapour_pressure_deficit": "kPa",
    "shortwave_radiation": "W/m²",
    "weather_code": "wmo code",
}
_INCH_CONVERSIONS = {"mm": "inch", "cm": "inch", "m": "ft"}
_NO_TIMES = np.array([], dtype="datetime64[us]")
_NO_VALUES = np.array([], dtype="float64")


@dataclass(frozen=True)
class Location:
    """A named point to fetch weather for."""

    name: str
    latitude: float
    longitude: float


class InvalidArchiveResponse(HttpSourceError):
    """The archive answered 200 but the payload does not match what was requested."""


class MissingVariableError(InvalidArchiveResponse):
    """A requested hourly variable is absent from a location's payload."""


class UnitMismatchError(InvalidArchiveResponse):
    """A variable came back in a different unit than requested."""


def expected_unit(variable: str, units: Mapping[str, str]) -> str | None:
    """The unit string the API reports for ``variable`` under ``units``; None if not known."""
    base = _VARIABLE_BASE_UNITS.get(variable)
    chosen = {**API_DEFAULT_UNITS, **units}
    if base == _TEMPERATURE:
        return UNIT_PARAMETERS["temperature_unit"][chosen["temperature_unit"]]
    if base == _SPEED:
        return UNIT_PARAMETERS["wind_speed_unit"][chosen["wind_speed_unit"]]
    if base in _INCH_CONVERSIONS and chosen["precipitation_unit"] == "inch":
        return _INCH_CONVERSIONS[base]
    return base


def _check_units(units: Mapping[str, str]) -> None:
    """Reject unit parameters or values the API does not know."""
    for name, value in units.items():
        if name not in UNIT_PARAMETERS:
            raise ValueError(
                f"unknown unit parameter {name!r}; expected one of {list(UNIT_PARAMETERS)}"
            )
        if value not in UNIT_PARAMETERS[name]:
            raise ValueError(
                f"unknown {name} {value!r}; expected one of {list(UNIT_PARAMETERS[name])}"
            )


def _parse_times(
    times: Any, time_unit: str | None, utc_offset_seconds: int, where: str
) -> np.ndarray:
    """Turn the ``hourly.time`` array (local ISO 8601 or unix seconds) into naive UTC datetimes."""
    if not isinstance(times, list):
        raise InvalidArchiveResponse(f"{where}: hourly.time is not a list")
    try:
        if time_unit == "unixtime":
            parsed = pd.to_datetime(np.asarray(times, dtype="int64"), unit="s")
        else:
            local = pd.to_datetime(pd.Index(times, dtype="object"), format="%Y-%m-%dT%H:%M")
            parsed = local - pd.Timedelta(seconds=utc_offset_seconds)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidArchiveResponse(f"{where}: unparseable hourly.time ({exc})") from None
    if parsed.isna().any():
        raise InvalidArchiveResponse(f"{where}: hourly.time has null entries")
    return parsed.as_unit("us").to_numpy()


def _parse_location(
    item: Any, location: Location, variables: Sequence[str], units: Mapping[str, str]
) -> dict[str, Any]:
    """Validate one location object and return its columns as arrays."""
    where = f"location {location.name!r}"
    if not isinstance(item, dict):
        raise InvalidArchiveResponse(f"{where}: expected a JSON object, got {type(item).__name__}")
    hourly = item.get("hourly")
    hourly_units = item.get("hourly_units") or {}
    if not isinstance(hourly, dict) or "time" not in hourly:
        raise InvalidArchiveResponse(f"{where}: payload has no hourly.time")
    missing = [v for v in variables if v not in hourly]
    if missing:
        raise MissingVariableError(
            f"{where}: hourly variables missing from the response: {missing}"
        )
    wrong_units = {
        v: (hourly_units.get(v), want)
        for v in variables
        if (want := expected_unit(v, units)) is not None and hourly_units.get(v) != want
    }
    if wrong_units:
        detail = ", ".join(
            f"{v} is {got!r}, expected {want!r}" for v, (got, want) in wrong_units.items()
        )
        raise UnitMismatchError(f"{where}: unexpected units: {detail}")
    offset = item.get("utc_offset_seconds", 0)
    if not isinstance(offset, int):
        raise InvalidArchiveResponse(f"{where}: utc_offset_seconds is not an integer: {offset!r}")
    time = _parse_times(hourly["time"], hourly_units.get("time"), offset, where)
    columns: dict[str, Any] = {"time": time}
    for variable in variables:
        values = hourly[variable]
        if not isinstance(values, list) or len(values) != len(time):
            got = len(values) if isinstance(values, list) else type(values).__name__
            raise InvalidArchiveResponse(
                f"{where}: hourly.{variable} has {got} values but hourly.time has {len(time)}"
            )
        try:
            columns[variable] = np.asarray(values, dtype="float64")
        except (TypeError, ValueError) as exc:
            raise InvalidArchiveResponse(
                f"{where}: hourly.{variable} is not numeric ({exc})"
            ) from None
    return columns


def parse_archive_response(
    payload: Any,
    locations: Sequence[Location],
    variables: Sequence[str],
    units: Mapping[str, str],
) -> pd.DataFrame:
    """Validate an archive payload and return a long frame: location, time (UTC), variables.

    Args:
        payload: decoded JSON, a list of location objects or one object for one location.
        locations: the locations requested, in request order (the API answers in that order).
        variables: the hourly variables requested; they become float64 columns in this order.
        units: the unit parameters sent (``temperature_unit``, ``wind_speed_unit``,
            ``precipitation_unit``); omitted ones are the API defaults.

    Raises:
        InvalidArchiveResponse: wrong number of locations, ragged arrays, bad times or values.
        MissingVariableError: a requested variable is absent.
        UnitMismatchError: a variable's unit differs from the one requested.
    """
    _check_units(units)
    items = [payload] if isinstance(payload, dict) else payload
    if not isinstance(items, list):
        raise InvalidArchiveResponse(
            f"expected a JSON object or list, got {type(payload).__name__}"
        )
    if len(items) != len(locations):
        raise InvalidArchiveResponse(
            f"expected {len(locations)} location object(s) in the response, got {len(items)}"
        )
    parsed = [
        _parse_location(item, loc, variables, units)
        for item, loc in zip(items, locations, strict=True)
    ]
    lengths = [len(columns["time"]) for columns in parsed]
    data: dict[str, Any] = {
        "location": pd.array(np.repeat([loc.name for loc in locations], lengths), dtype="str"),
        "time": pd.DatetimeIndex(
            np.concatenate([columns["time"] for columns in parsed] or [_NO_TIMES])
        ).tz_localize("UTC"),
    }
    for variable in variables:
        data[variable] = np.concatenate([columns[variable] for columns in parsed] or [_NO_VALUES])
    return pd.DataFrame(data)


def _format_degrees(value: float) -> str:
    """Decimal degrees as the API expects them: plain notation, micro-degree precision."""
    return f"{value:.6f}".rstrip("0").rstrip(".")


def build_archive_params(
    locations: Sequence[Location],
    start: date,
    end: date,
    variables: Sequence[str],
    units: Mapping[str, str],
) -> dict[str, str]:
    """Query parameters for one archive request (UTC, ISO 8601 times)."""
    return {
        "latitude": ",".join(_format_degrees(loc.latitude) for loc in locations),
        "longitude": ",".join(_format_degrees(loc.longitude) for loc in locations),
        "start_date": start.isoformat(),
        "end_date": end.isoformat(),
        "hourly": ",".join(variables),
        **dict(units),
        "timezone": "GMT",
        "timeformat": "iso8601",
    }


def fetch_hourly(
    client: JsonHttpClient,
    base_url: str,
    locations: Sequence[Location],
    start: date,
    end: date,
    variables: Sequence[str],
    units: Mapping[str, str],
    *,
    max_locations_per_request: int = DEFAULT_MAX_LOCATIONS_PER_REQUEST,
    window_days: int | None = None,
    credential: Credential | None = None,
) -> pd.DataFrame:
    """Fetch hourly archive weather for ``locations`` over [start, end] as one long frame.

    One request per ``max_locations_per_request`` locations and per date window of
    ``window_days`` (default: the whole range), as APIs bound the size of one answer;
    the result has columns ``location``, ``time`` (datetime64[us, UTC]) and one
    float64 column per variable.
    """
    if not locations:
        raise ValueError("at least one location is required")
    if not variables or len(set(variables)) != len(variables):
        raise ValueError(f"variables must be non-empty and unique, got {list(variables)}")
    if len({loc.name for loc in locations}) != len(locations):
        raise ValueError("location names must be unique")
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    if max_locations_per_request < 1:
        raise ValueError("max_locations_per_request must be >= 1")
    if window_days is not None and window_days < 1:
        raise ValueError("window_days must be >= 1")
    _check_units(units)
    frames = []
    for lo, hi in date_windows(start, end, window_days):
        for first in range(0, len(locations), max_locations_per_request):
            chunk = locations[first : first + max_locations_per_request]
            params = build_archive_params(chunk, lo, hi, variables, units)
            payload = client.get_json(base_url, params, credential=credential)
            frames.append(parse_archive_response(payload, chunk, variables, units))
    if len(frames) == 1:
        return frames[0]
    frame = pd.concat(frames, ignore_index=True)
    return frame.sort_values(["location", "time"], kind="stable", ignore_index=True)


def date_windows(start: date, end: date, days: int | None) -> list[tuple[date, date]]:
    """Split [start, end] (inclusive) into consecutive windows of at most ``days`` days."""
    if days is None:
        return [(start, end)]
    out = []
    lo = start
    while lo <= end:
        hi = min(end, lo + timedelta(days=days - 1))
        out.append((lo, hi))
        lo = hi + timedelta(days=1)
    return out


@dataclass(frozen=True)
class OpenMeteoRequest:
    """What a use case asks an ``openmeteo`` source for: points, hourly variables, units."""

    locations: tuple[Location, ...]
    variables: tuple[str, ...]
    units: Mapping[str, str] = field(default_factory=dict)


class OpenMeteoOptions(HttpSourceOptions):
    """Keys of an ``openmeteo`` source: the shared HTTP policy plus the request window."""

    window_days: Annotated[int, Field(ge=1, le=366)] = 7


def hourly_schema(variables: Sequence[str]) -> pa.Schema:
    """The raw schema of an archive extraction: location, UTC time, one float per variable."""
    return pa.schema(
        [
            pa.field("location", pa.string()),
            pa.field("time", pa.timestamp("us", tz="UTC")),
            *(pa.field(name, pa.float64()) for name in variables),
        ]
    )


class OpenMeteoKind:
    """The ``openmeteo`` kind: the use case's points and variables over a partition's hours."""

    Config = OpenMeteoOptions
    http = True
    snapshot = staticmethod(no_snapshot("openmeteo"))

    def extract(
        self, config: OpenMeteoOptions, ctx: SourceContext, partition: Partition
    ) -> tuple[pa.Schema, Iterator[pa.Table]]:
        """Hourly values for the UTC hours of the partition's local days."""
        request = request_of(ctx, OpenMeteoRequest, "openmeteo")
        lo, hi = partition.utc_bounds(ctx.timezone)
        frame = fetch_hourly(
            client_for(config),
            ctx.resolve(config.base_url),
            request.locations,
            lo.date(),
            (hi - timedelta(hours=1)).date(),
            request.variables,
            request.units,
            window_days=config.window_days,
            credential=resolve_credential(config.auth, ctx.resolve),
        )
        schema = hourly_schema(request.variables)
        table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
        # The partition is a local calendar period: keep the UTC hours that fall inside it.
        start = pa.scalar(lo, type=schema.field("time").type)
        end = pa.scalar(hi, type=schema.field("time").type)
        inside = pc.and_(pc.greater_equal(table["time"], start), pc.less(table["time"], end))
        return schema, iter([table.filter(inside)])


KIND = OpenMeteoKind()
