"""What the API serves for flights: the request model (declared once), example, answer keys.

:class:`FlightRequest` is the one definition of a prediction request: validation and
the OpenAPI document both come from it. Codes are case-insensitive (``ewr`` is
``EWR``). A well-formed code the model never saw in training is *not* an error: it is
scored the way Spark scores it (``handleInvalid='keep'``) and reported in the
prediction's ``unseen`` list. Features come from :func:`features.features_record`.
"""

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model

from headwater.core.fields import WholeNumber, local_datetime, measure
from headwater.core.usecase import AnswerShape, ServingSpec, Shift
from headwater.usecases.flights.features import NOWCAST, WEATHER, WEATHER_RANGES, features_record

MIN_YEAR, MAX_YEAR = 1900, 2199

_Code2 = Annotated[str, StringConstraints(strict=True, to_upper=True, pattern=r"^[A-Za-z0-9]{2}$")]
_Code3 = Annotated[str, StringConstraints(strict=True, to_upper=True, pattern=r"^[A-Za-z]{3}$")]
_Tail = Annotated[
    str, StringConstraints(strict=True, to_upper=True, pattern=r"^[A-Za-z0-9-]{1,10}$")
]

#: The plausible range of each weather input (the raw weather contract admits the same to
#: training), and what it is. Anything outside is refused: a model scores nonsense silently.

#: Observed weather at the origin: any of the model's weather inputs (the feature names).
Weather = create_model(
    "Weather",
    __config__=ConfigDict(extra="forbid", frozen=True),
    __doc__="Observed weather at the origin for the scheduled hour.",
    **{name: (float | None, measure(*WEATHER_RANGES[name])) for name in WEATHER},
)


class FlightRequest(BaseModel):
    """One flight to score."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    carrier: _Code2 = Field(
        description='The airline\'s 2-character IATA code, e.g. "UA" (any case).',
        examples=["UA"],
    )
    flight: WholeNumber = Field(
        ge=1,
        le=9999,
        description="The flight number: an integer from 1 to 9999.",
        examples=[1545],
    )
    origin: _Code3 = Field(
        description='The 3-letter IATA code of the departure airport, e.g. "EWR".',
        examples=["EWR"],
    )
    dest: _Code3 = Field(
        description='The 3-letter IATA code of the arrival airport, e.g. "ORD".',
        examples=["IAH"],
    )
    scheduled_departure: local_datetime(MIN_YEAR, MAX_YEAR) = Field(  # type: ignore[valid-type]
        description=(
            "The scheduled departure: a local ISO 8601 date-time at the origin, without UTC "
            f'offset, years {MIN_YEAR}-{MAX_YEAR}, e.g. "2013-06-01T17:30".'
        ),
        examples=["2013-11-04T17:15"],
    )
    tailnum: _Tail | None = Field(
        None,
        description='The aircraft\'s tail number, e.g. "N14228", or null (unknown).',
        examples=["N14228"],
    )
    weather: Weather | None = Field(  # type: ignore[valid-type]
        None,
        description=(
            f"Observed weather at the origin: an object with any of {', '.join(WEATHER)} "
            "(numbers in their plausible ranges, or null), or null; what is not given comes "
            "from the model's defaults for the origin and month."
        ),
    )
    recent_delay_share: float | None = measure(
        0,
        1,
        "The share of the origin's departures delayed 15 minutes or more among those "
        "scheduled in the 3 hours before this one (up to 15 minutes before); null takes the "
        "origin's typical delay rate, listed in `defaulted` as recent_delays",
    )


EXAMPLE: dict[str, Any] = {
    "carrier": "UA",
    "flight": 1545,
    "origin": "EWR",
    "dest": "IAH",
    "scheduled_departure": "2013-11-04T17:15",
    "tailnum": "N14228",
    "weather": {"temp_f": 41.0, "wind_speed_mph": 12.7, "precip_in": 0.0},
    "recent_delay_share": 0.25,
}


def flight_features(request: FlightRequest, lookups: Any) -> tuple[dict[str, Any], list[str]]:
    """The model features of one validated request, and the inputs that were defaulted."""

    weather = request.weather
    return features_record(
        carrier=request.carrier,
        origin=request.origin,
        dest=request.dest,
        scheduled_departure=request.scheduled_departure,
        lookups=lookups,
        tailnum=request.tailnum,
        weather=None if weather is None else weather.__dict__,
        recent_delay_share=request.recent_delay_share,
    )


def describe_flight(request: FlightRequest) -> dict[str, Any]:
    """The flight as understood (codes upper-cased), echoed in the answer."""
    return {
        "carrier": request.carrier,
        "flight": request.flight,
        "origin": request.origin,
        "dest": request.dest,
        "scheduled_departure": request.scheduled_departure.isoformat(),
    }


def request_of_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """The request a client sends for one clean flight: the schedule, the aircraft and the
    origin's weather for the scheduled hour; never the delays or the cancellation."""
    weather = {name: float(row[name]) for name in WEATHER if row.get(name) is not None}
    # the origin's recent delays, as a client on the airport knows them (the now-cast window,
    # when the row carries it: without it the model loses its strongest input)
    recent = row.get(NOWCAST)
    return {
        "carrier": row["carrier"],
        "flight": int(row["flight"]),
        "origin": row["origin"],
        "dest": row["dest"],
        "scheduled_departure": row["sched_dep_local"].isoformat(timespec="minutes"),
        "tailnum": row.get("tailnum"),
        "weather": weather or None,
        **({"recent_delay_share": float(recent)} if recent is not None else {}),
    }


def _fahrenheit_to_celsius(value: float) -> float:
    return round((value - 32.0) * 5.0 / 9.0, 1)


def celsius_as_fahrenheit(request: Mapping[str, Any]) -> dict[str, Any]:
    """The temperature and dew point sent in degrees Celsius in the Fahrenheit fields."""
    weather = request.get("weather")
    if not weather:
        return dict(request)
    shifted = {
        name: _fahrenheit_to_celsius(value)
        if name in ("temp_f", "dew_point_f") and value is not None
        else value
        for name, value in weather.items()
    }
    return {**request, "weather": shifted}


def weather_missing(request: Mapping[str, Any]) -> dict[str, Any]:
    """No weather sent: every weather input comes from the model's defaults."""
    return {**request, "weather": None}


SHIFTS = {
    "celsius-as-fahrenheit": Shift(
        "a client sends the temperature and dew point in degrees Celsius where the API reads "
        "degrees Fahrenheit (a units mix-up: 41 F arrives as 5)",
        celsius_as_fahrenheit,
    ),
    "weather-missing": Shift(
        "a client stops sending the weather: every weather input is defaulted",
        weather_missing,
    ),
}


SERVING = ServingSpec(
    request_model=FlightRequest,
    example=EXAMPLE,
    answer=AnswerShape(
        echo="flight",
        probability="delay_probability",
        decision="delayed",
        estimate="expected_arrival_delay_minutes",
    ),
    features_record=flight_features,
    describe=describe_flight,
    listed_categories=("carrier", "origin", "dest"),
    description=(
        "Will a flight leave 15 minutes late or more, and what arrival delay to expect "
        "(minutes; negative: early). Inputs not given (tail number, weather, the recent "
        "delays at the origin) and lookups "
        "the model has no entry for come from the model version's lookups and are listed "
        "in `defaulted`; codes the model never saw are scored and listed in `unseen`."
    ),
    request_of_row=request_of_row,
    shifts=SHIFTS,
)
