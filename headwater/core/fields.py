"""Request field types a use case's request model declares (plain pydantic, nothing heavy).

Each declares its rule once: pydantic enforces it, the JSON schema (so the OpenAPI
document) shows it, and the description reported as "what was expected" states it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import annotated_types
from pydantic import BeforeValidator, Field, WithJsonSchema


def kind_of(value: Any) -> str:
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


def show(value: Any) -> str:
    """A value as the client sent it, cut short (messages must not echo megabytes back)."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _integral(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


#: A request field type: an integer; JSON Schema counts ``1545.0`` as one, so it is accepted
#: as 1545 (strings, booleans and fractions are not).
WholeNumber = Annotated[int, BeforeValidator(_integral), Field(strict=True)]


def local_datetime_pattern(min_year: int, max_year: int) -> str:
    """A regular expression of ``YYYY-MM-DDTHH:MM[:SS[.ffffff]]`` for real dates in the years.

    The documented form (the OpenAPI ``pattern``): a string it matches is always accepted,
    because it admits real calendar days only (February 29 in leap years alone) of whole
    centuries ``min_year`` to ``max_year``. The parser accepts other ISO 8601 forms too.
    """
    if min_year % 100 or max_year % 100 != 99:
        raise ValueError(f"years {min_year}-{max_year}: give whole centuries, e.g. 1900-2199")
    centuries = [str(c) for c in range(min_year // 100, max_year // 100 + 1)]
    year = f"(?:{'|'.join(centuries)})\\d{{2}}"
    leap = [f"{c}(?:0[48]|[2468][048]|[13579][26])" for c in centuries]
    leap += [f"{c}00" for c in centuries if int(c) % 4 == 0]
    day = (
        f"{year}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\\d|3[01])"
        "|(?:0[469]|11)-(?:0[1-9]|[12]\\d|30)|02-(?:0[1-9]|1\\d|2[0-8]))"
        f"|(?:{'|'.join(leap)})-02-29"
    )
    return f"^(?:{day})T(?:[01]\\d|2[0-3]):[0-5]\\d(?::[0-5]\\d(?:\\.\\d{{1,6}})?)?$"


def local_datetime(min_year: int, max_year: int) -> Any:
    """A request field type: a local ISO 8601 date-time string without UTC offset."""
    pattern = local_datetime_pattern(min_year, max_year)

    def parse(value: Any) -> datetime:
        if isinstance(value, datetime):  # built in Python (the examples), not from JSON
            return value
        if not isinstance(value, str):
            raise ValueError(f"got {kind_of(value)}")
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{show(value)} is not an ISO 8601 date-time") from None
        if "T" not in text.upper() and " " not in text:  # a date alone parses as midnight
            raise ValueError(f"{show(value)} has no time of day")
        if parsed.tzinfo is not None:
            raise ValueError(f"{show(value)} has a UTC offset: give the local time")
        if not min_year <= parsed.year <= max_year:
            raise ValueError(f"year {parsed.year} is out of range")
        return parsed

    return Annotated[
        datetime,
        BeforeValidator(parse, json_schema_input_type=str),
        WithJsonSchema({"type": "string", "pattern": pattern}),
    ]


def measure(low: float, high: float, description: str) -> Any:
    """A request field: an optional finite number from ``low`` to ``high`` (null: unknown).

    The range is declared here once: pydantic enforces it (out of range is a problem
    naming the field), the JSON schema (so the OpenAPI document) shows it as
    ``minimum``/``maximum``, and the description, reported as what was expected, states it.
    """
    return Field(
        None,
        strict=True,
        allow_inf_nan=False,
        ge=low,
        le=high,
        description=f"{description}: a finite number from {low:g} to {high:g}, or null (unknown).",
    )


def whole_number(low: int, high: int) -> Any:
    """A request field type: a whole number from ``low`` to ``high`` (``WholeNumber``'s rules).

    The bounds are annotations of the integer itself, so the JSON schema (and the OpenAPI
    document) shows them as ``minimum``/``maximum`` even inside ``... | None``; a ``Field(ge=,
    le=)`` beside a nullable ``WholeNumber`` leaked as raw ``ge``/``le`` keys.
    """
    return Annotated[
        int,
        annotated_types.Ge(low),
        annotated_types.Le(high),
        BeforeValidator(_integral),
        Field(strict=True),
    ]
