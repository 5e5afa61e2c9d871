"""Turn a prediction request's JSON into typed flights, naming every problem (no Flask here).

A request is one flight object, or ``{"instances": [flight, ...]}``. Every problem
with the input is collected, with the field's path (``instances[3].origin``), what
is wrong and what was expected, so a client can fix all of them in one go.

Codes are case-insensitive (``ewr`` is ``EWR``). A well-formed code the model never
saw in training is *not* an error: it is scored the way Spark scores it
(``handleInvalid='keep'``) and reported in the prediction's ``unseen`` list.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from headwater.usecases.flights.features import WEATHER

MIN_YEAR, MAX_YEAR = 1900, 2199
MAX_PROBLEMS = 50  # reported per request; the count says how many there were in all

_CARRIER = re.compile(r"[A-Z0-9]{2}")
_AIRPORT = re.compile(r"[A-Z]{3}")
_TAILNUM = re.compile(r"[A-Z0-9-]{1,10}")

EXPECTED = {
    "carrier": 'a string: the airline\'s 2-character IATA code, e.g. "UA"',
    "flight": "an integer flight number from 1 to 9999",
    "origin": 'a string: the 3-letter IATA code of the departure airport, e.g. "EWR"',
    "dest": 'a string: the 3-letter IATA code of the arrival airport, e.g. "ORD"',
    "scheduled_departure": (
        "a string: the scheduled departure as a local ISO 8601 date-time at the origin, "
        f'without UTC offset, years {MIN_YEAR}-{MAX_YEAR}, e.g. "2013-06-01T17:30"'
    ),
    "tailnum": 'a string: the aircraft\'s tail number, e.g. "N14228", or null (unknown)',
    "weather": (
        "an object of observed weather at the origin with any of "
        f"{', '.join(WEATHER)}: finite numbers, or null (unknown)"
    ),
    "weather.value": "a finite number, or null (unknown: the model's default is used)",
}
REQUIRED = ("carrier", "flight", "origin", "dest", "scheduled_departure")
OPTIONAL = ("tailnum", "weather")
FIELDS = (*REQUIRED, *OPTIONAL)
_ALLOWED_FIELDS = ", ".join(FIELDS)
_FIELD_SET = frozenset(FIELDS)
_ALLOWED_WEATHER = frozenset(WEATHER)


@dataclass(frozen=True)
class Flight:
    """One flight to score, as the client described it (codes upper-cased)."""

    carrier: str
    flight: int
    origin: str
    dest: str
    scheduled_departure: datetime
    tailnum: str | None = None
    weather: Mapping[str, float | None] | None = None


@dataclass(frozen=True)
class Problem:
    """What is wrong with one field, and what was expected there."""

    field: str
    message: str
    expected: str

    def to_dict(self) -> dict[str, str]:
        """JSON-able form."""
        return {"field": self.field, "message": self.message, "expected": self.expected}


class InvalidRequest(ValueError):
    """The request's content is not a valid prediction request."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        where = f"{first.field}: " if first.field else ""
        super().__init__(f"{where}{first.message}{more}")


class BatchTooLarge(ValueError):
    """More instances than the configured maximum."""

    def __init__(self, count: int, limit: int) -> None:
        self.count, self.limit = count, limit
        super().__init__(
            f"{count} instances in one request; at most {limit} are accepted: "
            "split the batch into several requests"
        )


def _kind(value: Any) -> str:
    """The JSON type name of a parsed value, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _show(value: Any) -> str:
    """A value as the client sent it, cut short (messages must not echo megabytes back)."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _code(value: Any, pattern: re.Pattern[str]) -> tuple[str | None, str | None]:
    """Return (code, None) or (None, what is wrong)."""
    if not isinstance(value, str):
        return None, f"got {_kind(value)}"
    code = value.strip().upper()
    if not pattern.fullmatch(code):
        return None, f"{_show(value)} is not a valid code"
    return code, None


def _departure(value: Any) -> tuple[datetime | None, str | None]:
    if not isinstance(value, str):
        return None, f"got {_kind(value)}"
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None, f"{_show(value)} is not an ISO 8601 date-time"
    if "T" not in text.upper() and " " not in text:  # a date alone parses as midnight
        return None, f"{_show(value)} has no time of day"
    if parsed.tzinfo is not None:
        return None, f"{_show(value)} has a UTC offset: give the local time at the origin"
    if not MIN_YEAR <= parsed.year <= MAX_YEAR:
        return None, f"year {parsed.year} is out of range"
    return parsed, None


def _weather(value: Any, where: str, problems: list[Problem]) -> dict[str, float | None] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        problems.append(Problem(where, f"got {_kind(value)}", EXPECTED["weather"]))
        return None
    out: dict[str, float | None] = {}
    for name, item in value.items():
        if name not in _ALLOWED_WEATHER:
            problems.append(
                Problem(f"{where}.{name[:64]}", "unknown weather variable", EXPECTED["weather"])
            )
        elif item is None:
            out[name] = None
        elif isinstance(item, int | float) and not isinstance(item, bool) and math.isfinite(item):
            out[name] = float(item)
        else:
            problem = Problem(f"{where}.{name}", f"got {_show(item)}", EXPECTED["weather.value"])
            problems.append(problem)
    return out


def parse_flight(body: Any, prefix: str = "") -> Flight:
    """Validate one flight object; raise :class:`InvalidRequest` listing all its problems."""
    problems: list[Problem] = []
    if not isinstance(body, dict):
        raise InvalidRequest(
            [Problem(prefix.rstrip("."), f"got {_kind(body)}", "a JSON object: one flight")]
        )
    for name in body:
        if name not in _FIELD_SET:
            problems.append(
                Problem(f"{prefix}{name[:64]}", "unknown field", f"one of {_ALLOWED_FIELDS}")
            )
    for name in REQUIRED:
        if name not in body:
            problems.append(Problem(f"{prefix}{name}", "required field is missing", EXPECTED[name]))

    def check(name: str, result: tuple[Any, str | None]) -> Any:
        value, error = result
        if error is not None:
            problems.append(Problem(f"{prefix}{name}", error, EXPECTED[name]))
        return value

    carrier = check("carrier", _code(body["carrier"], _CARRIER)) if "carrier" in body else None
    origin = check("origin", _code(body["origin"], _AIRPORT)) if "origin" in body else None
    dest = check("dest", _code(body["dest"], _AIRPORT)) if "dest" in body else None
    departure = None
    if "scheduled_departure" in body:
        departure = check("scheduled_departure", _departure(body["scheduled_departure"]))
    number = body.get("flight")
    if "flight" in body and (
        not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= 9999
    ):
        problems.append(Problem(f"{prefix}flight", f"got {_show(number)}", EXPECTED["flight"]))
    tailnum = None
    if body.get("tailnum") is not None:
        tailnum = check("tailnum", _code(body["tailnum"], _TAILNUM))
    weather = _weather(body.get("weather"), f"{prefix}weather", problems)
    if problems:
        raise InvalidRequest(problems)
    return Flight(carrier, number, origin, dest, departure, tailnum, weather)  # type: ignore[arg-type]


def parse_request(body: Any, max_batch: int) -> tuple[list[Flight], bool]:
    """Validate a whole request; return its flights and whether it was a batch.

    Raises:
        InvalidRequest: listing the problems of every instance (answers show the
            first :data:`MAX_PROBLEMS`).
        BatchTooLarge: more than ``max_batch`` instances.
    """
    if not isinstance(body, dict):
        raise InvalidRequest(
            [
                Problem(
                    "",
                    f"the body is {_kind(body)}",
                    'a JSON object: one flight, or {"instances": [flight, ...]}',
                )
            ]
        )
    if "instances" not in body:
        return [parse_flight(body)], False
    instances = body["instances"]
    problems = [
        Problem(name[:64], "unknown field", 'only "instances" in a batch request')
        for name in body
        if name != "instances"
    ]
    expected = f"an array of 1 to {max_batch} flight objects"
    if not isinstance(instances, list):
        problems.append(Problem("instances", f"got {_kind(instances)}", expected))
        raise InvalidRequest(problems)
    if not instances:
        problems.append(Problem("instances", "the array is empty", expected))
        raise InvalidRequest(problems)
    if len(instances) > max_batch:
        raise BatchTooLarge(len(instances), max_batch)
    flights: list[Flight] = []
    for i, instance in enumerate(instances):
        try:
            flights.append(parse_flight(instance, f"instances[{i}]."))
        except InvalidRequest as exc:
            problems.extend(exc.problems)
    if problems:
        raise InvalidRequest(problems)
    return flights, True
