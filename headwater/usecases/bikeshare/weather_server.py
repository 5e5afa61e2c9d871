"""A local hourly-weather API for Washington, DC (2011-2012), paginated by cursor.

``GET /v1/observations?start=<UTC ISO>&end=<UTC ISO>[&limit=N][&cursor=C]`` answers
``{"observations": [{"observed_at": "2011-01-01T05:00:00Z", "condition": "Clear",
"temp_c": 9.84, "apparent_temp_c": 14.39, "humidity": 81.0, "wind_kmh": 0.0}, ...],
"next": "<cursor>" | null}``: observations with ``start <= observed_at < end`` in time
order, ``limit`` per page (default 100, at most 1000), the cursor opaque. Hours the data
set lacks are absent; an unknown condition is null. Bad queries answer 400 with
``{"error": {"status": 400, "message": ...}}``; above its rate limit it answers 429
with ``Retry-After``; ``GET /health`` answers 200. Listens on loopback only.

Run standalone: ``python -m headwater.usecases.bikeshare.weather_server --port 8766``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from headwater.data.sources.embedded import (
    LoopbackJsonServer,
    Reply,
    error_reply,
    json_reply,
    serve_standalone,
)

OBSERVATIONS_PATH = "/v1/observations"
DEFAULT_PORT = 8766
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_CURSOR_PREFIX = "o1:"


class QueryError(ValueError):
    """A query the API rejects with 400."""


def encode_cursor(position: int) -> str:
    """An opaque cursor for the observation at ``position`` of the server's time order."""
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{position}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The position a cursor points at; QueryError if it is not one of ours."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise QueryError(f"invalid cursor {cursor!r}") from None
    if not text.startswith(_CURSOR_PREFIX) or not text[len(_CURSOR_PREFIX) :].isdigit():
        raise QueryError(f"invalid cursor {cursor!r}")
    return int(text[len(_CURSOR_PREFIX) :])


def _single(query: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = query.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise QueryError(f"parameter {name!r} given {len(values)} times")
    return values[0]


def _instant(query: Mapping[str, Sequence[str]], name: str) -> pd.Timestamp:
    text = _single(query, name)
    if text is None:
        raise QueryError(f"parameter {name!r} is required (UTC ISO 8601, e.g. 2011-01-01T05:00Z)")
    try:
        stamp = pd.Timestamp(text)
    except ValueError:
        raise QueryError(f"parameter {name!r} is not an ISO 8601 time: {text!r}") from None
    if stamp.tzinfo is None:
        raise QueryError(f"parameter {name!r} needs a UTC offset or 'Z': {text!r}")
    return stamp.tz_convert("UTC")


class Observations:
    """The served observations, in time order, as arrays (one page is a slice)."""

    def __init__(self, frame: pd.DataFrame):
        frame = frame.sort_values("observed_at", ignore_index=True)
        self.times = frame["observed_at"].to_numpy(dtype="datetime64[us]")
        self.frame = frame

    def __len__(self) -> int:
        return len(self.times)

    def page(self, start: pd.Timestamp, end: pd.Timestamp, limit: int, cursor: int | None):
        """Records of one page and the position of the next one (None on the last page)."""
        lo = int(np.searchsorted(self.times, _naive(start), side="left"))
        hi = int(np.searchsorted(self.times, _naive(end), side="left"))
        if cursor is not None:
            if not lo <= cursor <= hi:
                raise QueryError("cursor does not belong to this start/end query")
            lo = cursor
        stop = min(hi, lo + limit)
        rows = self.frame.iloc[lo:stop]
        records = [
            {
                "observed_at": f"{stamp:%Y-%m-%dT%H:%M:%SZ}",
                **{k: _json(v) for k, v in record.items()},
            }
            for stamp, record in zip(
                rows["observed_at"],
                rows.drop(columns="observed_at").to_dict("records"),
                strict=True,
            )
        ]
        return records, (stop if stop < hi else None)


def _naive(stamp: pd.Timestamp) -> np.datetime64:
    return np.datetime64(stamp.tz_convert("UTC").tz_localize(None).as_unit("us"))


def _json(value: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    return value.item() if isinstance(value, np.generic) else value


def answer_query(observations: Observations, query: Mapping[str, Sequence[str]]) -> dict:
    """One page of observations for a query (raises QueryError for a bad one)."""
    start, end = _instant(query, "start"), _instant(query, "end")
    if end <= start:
        raise QueryError(f"end {end.isoformat()} is not after start {start.isoformat()}")
    limit_text = _single(query, "limit")
    try:
        limit = DEFAULT_LIMIT if limit_text is None else int(limit_text)
    except ValueError:
        raise QueryError(f"limit is not an integer: {limit_text!r}") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    cursor_text = _single(query, "cursor")
    cursor = None if cursor_text is None else decode_cursor(cursor_text)
    records, following = observations.page(start, end, limit, cursor)
    return {
        "observations": records,
        "next": None if following is None else encode_cursor(following),
    }


class WeatherServer(LoopbackJsonServer):
    """The paginated weather API on loopback, serving the vendored data set's weather."""

    path = OBSERVATIONS_PATH

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        observations: pd.DataFrame | None = None,
        **options: Any,
    ):
        """``options``: the base's rate limit and faults; ``observations`` replaces the CSV's."""
        super().__init__(host, port, **options)
        self._frame = observations
        self._observations: Observations | None = None

    def load(self) -> None:
        """Read the vendored CSV's weather (or the frame given) once."""
        if self._observations is None:
            if self._frame is None:
                # lazy: pandas only once the demo server starts
                from headwater.usecases.bikeshare.data import read_csv, weather_observations

                self._frame = weather_observations(read_csv())
            self._observations = Observations(self._frame)

    def answer(self, path: str, query: Mapping[str, Sequence[str]]) -> Reply:
        """One page of observations, or 400/404."""
        if path != OBSERVATIONS_PATH:
            return error_reply(404, f"Not found: {path}")
        assert self._observations is not None
        try:
            return json_reply(200, answer_query(self._observations, query))
        except QueryError as exc:
            return error_reply(400, str(exc))


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the observations API until interrupted."""
    return serve_standalone(
        WeatherServer,
        argv,
        description=__doc__.splitlines()[0],
        default_port=DEFAULT_PORT,
        serving="hourly weather observations",
    )


if __name__ == "__main__":
    raise SystemExit(main())
