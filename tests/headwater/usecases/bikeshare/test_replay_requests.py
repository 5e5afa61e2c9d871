"""A clean hour of bike share as the request a client sends for it, and the heatwave shift."""

from __future__ import annotations

from datetime import UTC, date, datetime

from headwater.usecases.bikeshare.serving import SERVING, RentalHourRequest

ROW = {
    "hour_start": datetime(2012, 7, 4, 21, tzinfo=UTC),  # 17:00 in Washington
    "date": date(2012, 7, 4),
    "hour": 17,
    "weekday": 2,
    "month": 7,
    "holiday": True,
    "workingday": False,
    "season": "Summer",
    "weather_situation": "Clear",
    "temp_c": 33.5,
    "feels_like_c": 38.0,
    "humidity_pct": None,
    "wind_speed_kmh": 11.0,
    "casual": 120,
    "registered": 400,
    "rentals": 520,
    "high_demand": True,
}


def test_a_clean_hour_becomes_its_local_start_holiday_and_weather_never_its_rentals() -> None:
    request = SERVING.request_of_row(ROW)

    assert request == {
        "hour_start": "2012-07-04T17:00",
        "holiday": True,
        "weather": {
            "weather_situation": "Clear",
            "temp_c": 33.5,
            "feels_like_c": 38.0,
            "wind_speed_kmh": 11.0,
        },
        "recent_rentals": None,
    }
    RentalHourRequest.model_validate(request)


def test_the_lag_windows_of_a_row_are_sent_as_the_recent_rentals_a_client_knows() -> None:
    # Given the row with its lag windows (one null: before the range)
    lags = {"rentals_1h_before": 480.0, "rentals_24h_before": 455, "rentals_168h_before": None}
    row = {**ROW, **lags}

    request = SERVING.request_of_row(row)

    assert request["recent_rentals"] == {"rentals_1h_before": 480, "rentals_24h_before": 455}
    assert "rentals" not in request["recent_rentals"]
    RentalHourRequest.model_validate(request)


def test_the_heatwave_warms_air_and_feels_like_by_eight_degrees_and_stays_valid() -> None:
    request = SERVING.request_of_row(ROW)

    shifted = SERVING.shifts["heatwave"].apply(request)

    assert shifted["weather"]["temp_c"] == 41.5
    assert shifted["weather"]["feels_like_c"] == 46.0
    assert shifted["weather"]["wind_speed_kmh"] == 11.0
    assert request["weather"]["temp_c"] == 33.5
    RentalHourRequest.model_validate(shifted)


def test_the_heatwave_leaves_an_hour_without_weather_as_it_is() -> None:
    request = SERVING.request_of_row(
        {**ROW, "weather_situation": None, "temp_c": None}
        | {"feels_like_c": None, "wind_speed_kmh": None}
    )

    assert request["weather"] is None
    assert SERVING.shifts["heatwave"].apply(request) == request


def test_humidity_as_fraction_sends_the_percent_divided_by_a_hundred_and_stays_valid() -> None:
    request = SERVING.request_of_row({**ROW, "humidity_pct": 46.0})

    shifted = SERVING.shifts["humidity-as-fraction"].apply(request)

    assert shifted["weather"]["humidity_pct"] == 0.46
    assert shifted["weather"]["temp_c"] == 33.5
    assert request["weather"]["humidity_pct"] == 46.0
    RentalHourRequest.model_validate(shifted)
