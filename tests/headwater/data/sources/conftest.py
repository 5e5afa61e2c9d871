"""A local API in the NOAA Climate Data Online v2 shape, for the json_pages and auth tests.

``GET /cdo-web/api/v2/data?datasetid=GHCND&startdate=YYYY-MM-DD&enddate=YYYY-MM-DD
&limit=N&offset=K`` (dates inclusive, offset 1-based) answers ``{"metadata": {"resultset":
{"offset", "count", "limit"}}, "results": [...]}``, and only with the ``token`` header (or
``?token=`` when built with ``token_in="param"``). ``?page=P`` is read instead of the offset
when built with ``by_page=True``; ``offset_base=0`` makes offsets 0-based. ``count_drift`` is
added to the count after the first page, as an archive being written to while it is read.
``stations`` are served (one by default); ``stationid``, repeatable as on NOAA, keeps those
named.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from headwater.data.sources.embedded import Headers, LoopbackJsonServer, Reply, json_reply

TOKEN = "noaa-t0ken/with+chars"
FIRST_DAY, DAYS = date(2013, 1, 1), 90
DATATYPES = ("PRCP", "TMAX")


def _one(query: Mapping[str, Sequence[str]], name: str, default: str | None = None) -> str:
    values = query.get(name)
    if not values:
        if default is None:
            raise ValueError(f"{name} is required")
        return default
    return values[0]


class NoaaLikeServer(LoopbackJsonServer):
    """Daily PRCP and TMAX of one station, answered as NOAA CDO v2 does."""

    path = "/cdo-web/api/v2/data"

    def __init__(
        self,
        *,
        token_in: str = "header",
        by_page: bool = False,
        offset_base: int = 1,
        count_drift: int = 0,
        stations: Sequence[str] = ("GHCND:USW00094728",),
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.token_in = token_in
        self.offset_base = offset_base
        self.by_page = by_page
        self.count_drift = count_drift
        self.queries: list[dict[str, list[str]]] = []
        self.records = [
            {
                "date": f"{FIRST_DAY + timedelta(days=d)}T00:00:00",
                "datatype": datatype,
                "station": station,
                "value": (d * 7 + i * 3) % 41,
            }
            for station in stations
            for d in range(DAYS)
            for i, datatype in enumerate(DATATYPES)
        ]

    def authorize(
        self, headers: Mapping[str, str], query: Mapping[str, Sequence[str]]
    ) -> Reply | None:
        """NOAA answers 400 without its token."""
        if self.token_in == "header":
            sent = {k.lower(): v for k, v in headers.items()}.get("token")
        else:
            sent = _one(query, "token", "")
        if sent != TOKEN:
            return json_reply(400, {"status": "400", "message": "Token parameter is required."})
        return None

    def answer(self, path: str, query: Mapping[str, Sequence[str]]) -> Reply:
        """One page of the records dated within [startdate, enddate]."""
        self.queries.append({k: list(v) for k, v in query.items()})
        if path != self.path:
            return self.error(404, f"no endpoint {path}")
        try:
            first = date.fromisoformat(_one(query, "startdate"))
            last = date.fromisoformat(_one(query, "enddate"))
            limit = int(_one(query, "limit", "25"))
            if self.by_page:
                offset = (int(_one(query, "page", "1")) - 1) * limit + 1
            else:
                offset = int(_one(query, "offset", str(self.offset_base))) - self.offset_base + 1
        except ValueError as exc:
            return self.error(400, str(exc))
        wanted = set(query.get("stationid", ())) or {r["station"] for r in self.records}
        inside = [
            r
            for r in self.records
            if first <= date.fromisoformat(r["date"][:10]) <= last and r["station"] in wanted
        ]
        page = inside[offset - 1 : offset - 1 + limit]
        count = len(inside) + (self.count_drift if offset > 1 else 0)
        return json_reply(
            200,
            {
                "metadata": {"resultset": {"offset": offset, "count": count, "limit": limit}},
                "results": page,
            },
        )


@pytest.fixture
def noaa() -> Iterator[NoaaLikeServer]:
    """The NOAA-shaped API, token in a header."""
    with NoaaLikeServer() as server:
        yield server


class CursorServer(LoopbackJsonServer):
    """Hourly observations paginated by an opaque cursor, as many REST APIs page.

    ``GET /v1/observations?start=<UTC ISO>&end=<UTC ISO>[&limit=N][&cursor=C]`` answers
    ``{"observations": [{"observed_at", "temp_c"}, ...], "next": "<cursor>" | null}`` for
    ``start <= observed_at < end`` in time order; an unknown cursor is a 400.
    """

    path = "/v1/observations"
    first = datetime(2011, 3, 1, tzinfo=UTC)
    hours = 31 * 24

    def error(self, status: int, reason: str, headers: Headers = ()) -> Reply:
        """Errors as ``{"message": ...}``, the shape the client reads its reason from."""
        return json_reply(status, {"message": reason}, headers)

    def answer(self, path: str, query: Mapping[str, Sequence[str]]) -> Reply:
        """One page of the observations inside [start, end)."""
        if path != self.path:
            return self.error(404, f"no endpoint {path}")
        try:
            start = datetime.fromisoformat(_one(query, "start"))
            end = datetime.fromisoformat(_one(query, "end"))
            limit = int(_one(query, "limit", "100"))
            cursor = _one(query, "cursor", "")
            position = int(cursor.removeprefix("c-")) if cursor else 0
        except ValueError as exc:
            return self.error(400, str(exc))
        stamps = [self.first + timedelta(hours=h) for h in range(self.hours)]
        inside = [t for t in stamps if start <= t < end]
        page = inside[position : position + limit]
        following = position + limit
        return json_reply(
            200,
            {
                "observations": [
                    {"observed_at": t.isoformat(), "temp_c": t.hour / 2} for t in page
                ],
                "next": f"c-{following}" if following < len(inside) else None,
            },
        )
