"""What the API serves for bike share: the request model (declared once), example, answer keys.

:class:`RentalHourRequest` is the one definition of a prediction request: validation
and the OpenAPI document both come from it. Inputs not given (the holiday flag, any
weather value) are filled the way training saw them (the US federal calendar; the
month's typical weather from the version's lookups) and listed in ``defaulted``; a
weather situation the model never saw is scored (Spark's ``handleInvalid='keep'``) and
listed in ``unseen``. Features come from :func:`features.features_record`.
"""

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from headwater.core.calendar import is_us_holiday
from headwater.core.fields import local_datetime, measure, whole_number
from headwater.core.usecase import AnswerShape, ServingSpec, Shift
from headwater.usecases.bikeshare.features import HIGH_DEMAND_THRESHOLD, LAGS, features_record

MIN_YEAR, MAX_YEAR = 1900, 2199


class Weather(BaseModel):
    """The hour's weather (forecast or observed); what is not given takes the month's typical."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weather_situation: (
        Annotated[str, StringConstraints(strict=True, pattern=r"^[A-Za-z][A-Za-z ]{0,31}$")] | None
    ) = Field(
        None,
        description='The weather situation: "Clear", "Mist", "Light Rain" or "Heavy Rain" '
        "(another name is scored as unseen), or null.",
        examples=["Clear"],
    )
    temp_c: float | None = measure(-50, 60, "Air temperature in degrees Celsius")
    feels_like_c: float | None = measure(-60, 70, "Feels-like temperature in degrees Celsius")
    humidity_pct: float | None = measure(0, 100, "Relative humidity in percent")
    wind_speed_kmh: float | None = measure(0, 250, "Wind speed in km/h")


#: A count of rentals in one hour (the bounds shown in the OpenAPI document).
Rentals = whole_number(0, 100_000)


class RecentRentals(BaseModel):
    """Rentals of the hours before (the model's lags); what is not given takes the typical hour."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rentals_1h_before: Rentals | None = Field(
        None, description="Rentals in the hour before, or null."
    )
    rentals_24h_before: Rentals | None = Field(
        None, description="Rentals in the same hour the day before, or null."
    )
    rentals_168h_before: Rentals | None = Field(
        None, description="Rentals in the same hour a week before, or null."
    )


class RentalHourRequest(BaseModel):
    """One hour of rentals to predict."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hour_start: local_datetime(MIN_YEAR, MAX_YEAR) = Field(  # type: ignore[valid-type]
        description=(
            "The start of the hour: a local ISO 8601 date-time in Washington, DC, without UTC "
            f'offset, years {MIN_YEAR}-{MAX_YEAR}, e.g. "2012-06-01T17:00" (minutes ignored).'
        ),
        examples=["2012-06-01T17:00"],
    )
    holiday: bool | None = Field(
        None,
        strict=True,
        description="Whether the day is a holiday: true or false, or null (the US federal "
        "holiday calendar decides).",
    )
    weather: Weather | None = Field(
        None,
        description="The hour's weather: an object with any of weather_situation, temp_c, "
        "feels_like_c, humidity_pct, wind_speed_kmh, or null (the month's typical weather).",
    )
    recent_rentals: RecentRentals | None = Field(
        None,
        description="Rentals of the hours before: an object with any of rentals_1h_before, "
        "rentals_24h_before, rentals_168h_before (whole numbers), or null; what is not given "
        "takes the training mean of that hour of the day, and is listed in `defaulted`.",
    )


EXAMPLE: dict[str, Any] = {
    "hour_start": "2012-06-01T17:00",
    "holiday": None,
    "weather": {"weather_situation": "Clear", "temp_c": 27.0, "humidity_pct": 45.0},
    "recent_rentals": {
        "rentals_1h_before": 320,
        "rentals_24h_before": 610,
        "rentals_168h_before": 580,
    },
}


def hour_features(request: RentalHourRequest, lookups: Any) -> tuple[dict[str, Any], list[str]]:
    """The model features of one validated request, and the inputs that were defaulted."""

    weather, recent = request.weather, request.recent_rentals
    return features_record(
        hour_start=request.hour_start,
        lookups=lookups,
        holiday=request.holiday,
        weather=None if weather is None else weather.__dict__,
        recent_rentals=None if recent is None else recent.__dict__,
    )


def describe_hour(request: RentalHourRequest) -> dict[str, Any]:
    """The hour as understood (the holiday flag resolved), echoed in the answer."""
    start = request.hour_start.replace(minute=0, second=0, microsecond=0)
    holiday = request.holiday
    return {
        "hour_start": start.isoformat(),
        "holiday": is_us_holiday(start.date()) if holiday is None else holiday,
    }


#: The request's weather fields, which are the clean dataset's weather columns.
WEATHER_FIELDS = ("weather_situation", "temp_c", "feels_like_c", "humidity_pct", "wind_speed_kmh")
#: How much warmer the "heatwave" shift makes every hour, in degrees Celsius.
HEATWAVE_C = 8.0


def request_of_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """The request a client sends for one clean hour: its local start, the holiday flag (a
    calendar fact) and the hour's weather; never the rentals."""
    weather = {name: row[name] for name in WEATHER_FIELDS if row.get(name) is not None}
    # the rentals of the hours before, as a client knows them (the lag windows, when given)
    recent = {name: int(row[name]) for name in LAGS if row.get(name) is not None}
    return {
        "hour_start": f"{row['date'].isoformat()}T{int(row['hour']):02d}:00",
        "holiday": bool(row["holiday"]),
        "weather": weather or None,
        "recent_rentals": recent or None,
    }


def heatwave(request: Mapping[str, Any]) -> dict[str, Any]:
    """Every hour 8 degrees Celsius warmer (air and feels-like temperature), the rest as sent."""
    weather = request.get("weather")
    if not weather:
        return dict(request)
    shifted = {
        name: round(value + HEATWAVE_C, 2)
        if name in ("temp_c", "feels_like_c") and value is not None
        else value
        for name, value in weather.items()
    }
    return {**request, "weather": shifted}


def humidity_as_fraction(request: Mapping[str, Any]) -> dict[str, Any]:
    """The relative humidity sent as a fraction in the percent field (46 % arrives as 0.46)."""
    weather = request.get("weather")
    if not weather or weather.get("humidity_pct") is None:
        return dict(request)
    humidity = round(weather["humidity_pct"] / 100, 4)
    return {**request, "weather": {**weather, "humidity_pct": humidity}}


SHIFTS = {
    "humidity-as-fraction": Shift(
        "the relative humidity sent as a fraction in the percent field (46 % arrives as 0.46)",
        humidity_as_fraction,
    ),
    "heatwave": Shift(
        f"every hour {HEATWAVE_C:g} degrees Celsius warmer than it was (air and feels-like)",
        heatwave,
    ),
}


SERVING = ServingSpec(
    request_model=RentalHourRequest,
    example=EXAMPLE,
    answer=AnswerShape(
        echo="hour",
        probability="high_demand_probability",
        decision="high_demand",
        estimate="expected_rentals",
    ),
    features_record=hour_features,
    describe=describe_hour,
    listed_categories=("weather_situation",),
    description=(
        f"Will more than {HIGH_DEMAND_THRESHOLD} bikes be rented in this hour (a busy hour: "
        "bikes to rebalance), and how many rentals to expect. The holiday flag, weather "
        "values and recent rentals not given come from the US federal calendar, the model "
        "version's typical weather for the month and typical rentals for the hour of the "
        "day, and are listed in `defaulted`."
    ),
    request_of_row=request_of_row,
    shifts=SHIFTS,
)
