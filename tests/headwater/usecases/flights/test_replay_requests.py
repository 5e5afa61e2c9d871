"""A clean flight as the request a client sends for it, and the documented shifts."""

from __future__ import annotations

from datetime import date, datetime

from headwater.usecases.flights.serving import SERVING, FlightRequest

ROW = {
    "flight_date": date(2013, 11, 4),
    "carrier": "UA",
    "flight": 1545,
    "tailnum": "N14228",
    "origin": "EWR",
    "dest": "IAH",
    "sched_dep_local": datetime(2013, 11, 4, 17, 15),
    "sched_dep_hour": 17,
    "cancelled": False,
    "dep_delay": 22.0,
    "arr_delay": 31.0,
    "dep_delayed_15": True,
    "temp_f": 41.0,
    "dew_point_f": 23.0,
    "humidity_pct": 48.5,
    "wind_dir_deg": 270.0,
    "wind_speed_mph": 12.7,
    "wind_gust_mph": None,
    "precip_in": 0.0,
    "pressure_hpa": None,
    "visibility_ft": 52800.0,
    "weather_missing": False,
}


def test_a_clean_flight_becomes_its_schedule_and_origin_weather_never_its_delays() -> None:
    request = SERVING.request_of_row(ROW)

    assert request == {
        "carrier": "UA",
        "flight": 1545,
        "origin": "EWR",
        "dest": "IAH",
        "scheduled_departure": "2013-11-04T17:15",
        "tailnum": "N14228",
        "weather": {
            "temp_f": 41.0,
            "dew_point_f": 23.0,
            "humidity_pct": 48.5,
            "wind_speed_mph": 12.7,
            "precip_in": 0.0,
            "visibility_ft": 52800.0,
        },
    }
    FlightRequest.model_validate(request)


def test_a_flight_without_weather_sends_none() -> None:
    row = {**ROW, **{name: None for name in ("temp_f", "dew_point_f", "humidity_pct")}}
    row |= {"wind_speed_mph": None, "precip_in": None, "visibility_ft": None, "tailnum": None}

    request = SERVING.request_of_row(row)

    assert request["weather"] is None and request["tailnum"] is None
    FlightRequest.model_validate(request)


def test_celsius_as_fahrenheit_sends_the_temperatures_in_celsius_and_stays_valid() -> None:
    request = SERVING.request_of_row(ROW)

    shifted = SERVING.shifts["celsius-as-fahrenheit"].apply(request)

    assert shifted["weather"]["temp_f"] == 5.0  # 41 F
    assert shifted["weather"]["dew_point_f"] == -5.0  # 23 F
    assert shifted["weather"]["humidity_pct"] == 48.5
    assert request["weather"]["temp_f"] == 41.0  # the original is untouched
    FlightRequest.model_validate(shifted)


def test_weather_missing_drops_the_weather() -> None:
    shifted = SERVING.shifts["weather-missing"].apply(SERVING.request_of_row(ROW))

    assert shifted["weather"] is None and shifted["carrier"] == "UA"
    FlightRequest.model_validate(shifted)


def test_a_flight_with_its_now_cast_sends_it_as_a_client_on_the_airport_knows_it() -> None:
    # Given the clean row with the now-cast window computed (replay adds the windows)
    row = {**ROW, "origin_delay_share_3h": 0.25}

    request = SERVING.request_of_row(row)

    # Then the request carries it, so the API does not default the model's strongest input
    assert request["recent_delay_share"] == 0.25
    FlightRequest.model_validate(request)
