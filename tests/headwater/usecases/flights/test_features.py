"""The one feature definition: holidays, the record path's defaults, and batch = record.

The batch path (``features_frame``, what training runs on Spark) and the record path
(``features_record``, what the API runs per request) must give the same features for the
same flight, or the model is served inputs it was never trained on. The parity tests run
both on the real clean flights of the ``trained_model`` lake, with that version's lookups.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.core.layout import CLEAN, dataset
from headwater.usecases.flights.features import (
    CATEGORICAL,
    FEATURES,
    NUMERIC,
    WEATHER,
    FeatureLookups,
    features_frame,
    features_record,
    holiday_near,
    us_holidays,
)

# Spark runs in this process for the trained_model fixture: see the note in tests/conftest.py.
pytestmark = pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")
TOLERANCE = 1e-12


# --- holidays ----------------------------------------------------------------------------------


def test_us_holidays_of_2013_are_the_federal_holiday_dates() -> None:
    assert us_holidays(2013) == (
        date(2013, 1, 1),
        date(2013, 1, 21),  # Martin Luther King Jr. Day: third Monday of January
        date(2013, 2, 18),  # Presidents' Day: third Monday of February
        date(2013, 5, 27),  # Memorial Day: last Monday of May
        date(2013, 7, 4),
        date(2013, 9, 2),  # Labor Day: first Monday of September
        date(2013, 10, 14),  # Columbus Day: second Monday of October
        date(2013, 11, 11),
        date(2013, 11, 28),  # Thanksgiving: fourth Thursday of November
        date(2013, 12, 25),
    )


@pytest.mark.parametrize(
    ("year", "index", "expected"),
    [
        (2018, 1, date(2018, 1, 15)),  # January 1st is itself a Monday: MLK is the 15th
        (2014, 5, date(2014, 9, 1)),  # September 1st is a Monday: it is Labor Day
        (2010, 3, date(2010, 5, 31)),  # May 31st is a Monday: it is Memorial Day
        (2011, 3, date(2011, 5, 30)),  # May 31st is a Tuesday: the Monday before
        (2012, 8, date(2012, 11, 22)),  # November 1st is a Thursday: Thanksgiving the 22nd
        (2018, 8, date(2018, 11, 22)),  # November 1st is a Thursday again
        (2019, 8, date(2019, 11, 28)),  # ... and here a Friday: the latest possible
    ],
)
def test_rule_based_holidays_at_month_edges(year: int, index: int, expected: date) -> None:
    assert us_holidays(year)[index] == expected


@pytest.mark.parametrize(
    ("day", "near"),
    [
        (date(2013, 11, 28), 1.0),  # Thanksgiving itself
        (date(2013, 11, 25), 1.0),  # three days before
        (date(2013, 11, 24), 0.0),  # four days before
        (date(2013, 12, 1), 1.0),  # three days after
        (date(2013, 12, 2), 0.0),  # four days after
        (date(2013, 1, 4), 1.0),  # New Year's Day + 3
        (date(2013, 1, 5), 0.0),  # New Year's Day + 4
        (date(2013, 1, 18), 1.0),  # MLK - 3
        (date(2012, 12, 29), 1.0),  # Christmas + 4, but next year's New Year's Day - 3
        (date(2013, 12, 28), 1.0),  # Christmas + 3
        (date(2014, 1, 5), 0.0),  # last year's Christmas is 11 days back
        (date(2013, 3, 12), 0.0),  # an ordinary day of the demo range
    ],
)
def test_holiday_near_is_a_three_day_window_across_years(day: date, near: float) -> None:
    assert holiday_near(day) == near


# --- the record path on hand-made lookups ------------------------------------------------------

OBSERVED = {
    "temp_f": 30.0,
    "dew_point_f": 20.0,
    "humidity_pct": 66.0,
    "wind_speed_mph": 9.0,
    "precip_in": 0.0,
    "pressure_hpa": 1020.0,
    "visibility_ft": 50000.0,
}
EWR_JANUARY = {name: float(i) for i, name in enumerate(WEATHER, start=1)}
EVERYWHERE = {name: 100.0 + i for i, name in enumerate(WEATHER)}
MONDAY_8AM = datetime(2013, 1, 7, 8, 15)


@pytest.fixture
def lookups() -> FeatureLookups:
    """Small lookups with one known value of each kind."""
    return FeatureLookups(
        route_distance={"EWR-LAX": 2454.0},
        default_distance=1000.0,
        aircraft={
            "N101": {"year": 2003.0, "seats": 178.0, "engines": 2.0},
            "N202": {"year": None, "seats": 20.0, "engines": 1.0},
        },
        default_aircraft={"plane_age": 12.0, "seats": 150.0, "engines": 2.0},
        weather={"EWR-01": EWR_JANUARY},
        default_weather=EVERYWHERE,
        congestion={"EWR|2013-01-07|08": 31.0},
        typical_congestion={"EWR|0|08": 27.5},
        default_congestion=4.25,
        delay_share={"EWR": 0.3},
        default_delay_share=0.2,
    )


def record(lookups: FeatureLookups, **changes: Any) -> tuple[dict[str, Any], list[str]]:
    """features_record of a fully known flight, with some inputs changed."""
    inputs: dict[str, Any] = {
        "carrier": "UA",
        "origin": "EWR",
        "dest": "LAX",
        "scheduled_departure": MONDAY_8AM,
        "tailnum": "N101",
        "weather": OBSERVED,
        "recent_delay_share": 0.5,
    }
    return features_record(lookups=lookups, **{**inputs, **changes})


def test_a_fully_known_flight_uses_no_default(lookups: FeatureLookups) -> None:
    features, defaulted = record(lookups)

    assert defaulted == []
    assert list(features) == list(FEATURES)
    assert {k: features[k] for k in CATEGORICAL} == {
        "carrier": "UA",
        "origin": "EWR",
        "dest": "LAX",
        "dep_hour": "08",
        "weekday": "0",  # Monday
    }
    assert features["log_distance"] == math.log1p(2454.0)
    assert (features["month_sin"], features["month_cos"]) == (0.0, 1.0)  # January
    assert features["holiday_near"] == 0.0
    assert (features["plane_age"], features["seats"], features["engines"]) == (10.0, 178.0, 2.0)
    assert {k: features[k] for k in WEATHER} == OBSERVED
    assert features["weather_defaulted"] == 0.0
    assert features["congestion"] == 31.0


def test_an_unknown_route_defaults_the_distance(lookups: FeatureLookups) -> None:
    features, defaulted = record(lookups, dest="SFO")

    assert defaulted == ["distance"]
    assert features["log_distance"] == math.log1p(1000.0)
    assert features["dest"] == "SFO"


@pytest.mark.parametrize("tailnum", ["N999ZZ", None, ""])
def test_an_unknown_or_missing_aircraft_gets_the_typical_one(
    lookups: FeatureLookups, tailnum: str | None
) -> None:
    features, defaulted = record(lookups, tailnum=tailnum)

    assert defaulted == ["aircraft"]
    assert (features["plane_age"], features["seats"], features["engines"]) == (12.0, 150.0, 2.0)


def test_an_aircraft_without_a_build_year_keeps_its_seats_but_defaults_its_age(
    lookups: FeatureLookups,
) -> None:
    features, defaulted = record(lookups, tailnum="N202")

    assert defaulted == ["aircraft"]
    assert (features["plane_age"], features["seats"], features["engines"]) == (12.0, 20.0, 1.0)


@pytest.mark.parametrize("weather", [None, {}])
def test_no_weather_takes_the_origin_and_month_averages(
    lookups: FeatureLookups, weather: dict[str, Any] | None
) -> None:
    features, defaulted = record(lookups, weather=weather)

    assert defaulted == ["weather"]
    assert {k: features[k] for k in WEATHER} == EWR_JANUARY
    assert features["weather_defaulted"] == 1.0


@pytest.mark.parametrize("missing", [None, float("nan")])
def test_partial_weather_fills_only_the_missing_values_and_says_weather_once(
    lookups: FeatureLookups, missing: float | None
) -> None:
    observed = {**OBSERVED, "temp_f": missing, "visibility_ft": missing}

    features, defaulted = record(lookups, weather=observed)

    assert defaulted == ["weather"]
    assert features["temp_f"] == EWR_JANUARY["temp_f"]
    assert features["visibility_ft"] == EWR_JANUARY["visibility_ft"]
    assert features["wind_speed_mph"] == OBSERVED["wind_speed_mph"]
    assert features["weather_defaulted"] == 1.0


def test_weather_of_an_origin_and_month_never_seen_takes_the_overall_averages(
    lookups: FeatureLookups,
) -> None:
    features, defaulted = record(lookups, scheduled_departure=datetime(2013, 7, 1, 8), weather=None)

    assert "weather" in defaulted
    assert {k: features[k] for k in WEATHER} == EVERYWHERE


def test_an_unknown_date_takes_the_typical_congestion_of_the_weekday_and_hour(
    lookups: FeatureLookups,
) -> None:
    a_later_monday = datetime(2013, 1, 14, 8, 59)

    features, defaulted = record(lookups, scheduled_departure=a_later_monday)

    assert defaulted == ["congestion"]
    assert features["congestion"] == 27.5


def test_an_hour_never_scheduled_takes_the_overall_congestion(lookups: FeatureLookups) -> None:
    features, defaulted = record(lookups, scheduled_departure=datetime(2013, 1, 7, 3, 0))

    assert defaulted == ["congestion"]
    assert features["congestion"] == 4.25
    assert features["dep_hour"] == "03"


def test_everything_unknown_lists_each_default_once_in_order(lookups: FeatureLookups) -> None:
    _, defaulted = record(
        lookups,
        dest="XXX",
        tailnum=None,
        weather=None,
        scheduled_departure=datetime(2014, 2, 3, 23, 0),
        recent_delay_share=None,
    )

    assert defaulted == ["distance", "aircraft", "weather", "congestion", "recent_delays"]


@pytest.mark.parametrize(("origin", "share"), [("EWR", 0.3), ("ORD", 0.2)])
def test_recent_delays_not_given_take_the_origins_training_rate_and_say_so(
    lookups: FeatureLookups, origin: str, share: float
) -> None:
    known, known_defaulted = record(lookups, origin=origin)
    features, defaulted = record(lookups, origin=origin, recent_delay_share=None)

    assert known["origin_delay_share_3h"] == 0.5 and "recent_delays" not in known_defaulted
    assert features["origin_delay_share_3h"] == share
    assert defaulted[-1] == "recent_delays"


def test_lookups_survive_their_json_form(lookups: FeatureLookups) -> None:
    import json

    again = FeatureLookups.from_dict(json.loads(json.dumps(lookups.to_dict())))

    assert again == lookups
    assert record(again) == record(lookups)


# --- batch path = record path, on the real clean flights ---------------------------------------


@pytest.fixture(scope="module")
def real_lookups(trained_model: Any) -> FeatureLookups:
    """The lookups stored with the trained version (as the API loads them)."""
    return FeatureLookups.from_dict(trained_model.read_json("lookups.json"))


@pytest.fixture(scope="module")
def clean_flights(trained_model: Any) -> pd.DataFrame:
    """Every clean flight of the demo range, read through the lake's manifests."""
    lake, flights = trained_model.lake, dataset("flights", "flights")
    frames = [
        lake.read(CLEAN, flights, key)[0].to_pandas() for key in lake.partitions(CLEAN, flights)
    ]
    flights = pd.concat(frames, ignore_index=True)
    # the now-cast as the training job's window gives it: a share, null where unknown
    share = (flights.index % 5) / 4.0
    flights["origin_delay_share_3h"] = pd.Series(share).where(flights.index % 3 != 0)
    return flights


def _none_if_missing(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def record_of(row: dict[str, Any], lookups: FeatureLookups) -> tuple[dict[str, Any], list[str]]:
    """features_record of one clean flight, passed the way the API passes a request."""
    when = row["sched_dep_local"]
    return features_record(
        carrier=row["carrier"],
        origin=row["origin"],
        dest=row["dest"],
        scheduled_departure=when.to_pydatetime() if isinstance(when, pd.Timestamp) else when,
        lookups=lookups,
        tailnum=_none_if_missing(row["tailnum"]),
        weather={name: _none_if_missing(row[name]) for name in WEATHER},
        recent_delay_share=_none_if_missing(row["origin_delay_share_3h"]),
    )


def assert_paths_agree(flights: pd.DataFrame, lookups: FeatureLookups) -> list[list[str]]:
    """Run both paths on ``flights``; assert equal features; return the defaulted lists."""
    batch = features_frame(flights, lookups)
    records = [record_of(row, lookups) for row in flights.to_dict("records")]
    single = pd.DataFrame([features for features, _ in records], index=flights.index)

    assert list(batch.columns) == list(FEATURES)
    assert batch.index.equals(flights.index)
    for name in CATEGORICAL:
        differ = batch[name].astype(object) != single[name].astype(object)
        assert not differ.any(), (name, batch[name][differ].head(), single[name][differ].head())
    for name in NUMERIC:
        a, b = batch[name].to_numpy(float), single[name].to_numpy(float)
        assert np.isfinite(a).all() and np.isfinite(b).all(), name
        worst = float(np.max(np.abs(a - b), initial=0.0))
        assert worst <= TOLERANCE, (name, worst)
    return [defaulted for _, defaulted in records]


def test_real_flights_have_nulls_the_paths_must_handle(clean_flights: pd.DataFrame) -> None:
    # The parity tests below are only as good as the data: it must hold the awkward cases.
    assert len(clean_flights) > 60_000
    assert clean_flights["tailnum"].isna().sum() > 0
    assert clean_flights["temp_f"].isna().sum() > 0
    assert clean_flights["cancelled"].sum() > 0


def test_batch_and_record_paths_agree_on_every_real_flight(
    clean_flights: pd.DataFrame, real_lookups: FeatureLookups
) -> None:
    # Given every clean flight of January to March 2013 and the version's lookups
    # When the batch path and the record path each compute the features
    defaulted = assert_paths_agree(clean_flights, real_lookups)

    # Then (asserted above) they agree; and since schedules are known in advance, no real
    # flight's congestion is defaulted, while missing aircraft and weather are
    assert not any("congestion" in d for d in defaulted)
    assert sum("aircraft" in d for d in defaulted) >= clean_flights["tailnum"].isna().sum()
    assert sum("weather" in d for d in defaulted) >= clean_flights["temp_f"].isna().sum()


UNKNOWN = "unknown"


@st.composite
def mutated_flight(draw: st.DrawFn, flights: pd.DataFrame, awkward: list[int]) -> dict[str, Any]:
    """A real clean flight, sometimes with inputs a request could send and training never saw."""
    position = draw(st.one_of(st.sampled_from(awkward), st.integers(0, len(flights) - 1)))
    row = flights.iloc[position].to_dict()
    tail = draw(st.sampled_from(["keep", "null", UNKNOWN]))
    if tail != "keep":
        row["tailnum"] = None if tail == "null" else "N0TSEEN"
    if draw(st.booleans()):
        row["dest"] = draw(st.sampled_from(["XXX", row["origin"], "LAX", "HNL"]))
    if draw(st.booleans()):
        moment = draw(
            st.datetimes(min_value=datetime(2012, 11, 1), max_value=datetime(2015, 1, 31))
        )
        row["sched_dep_local"] = pd.Timestamp(moment.replace(second=0, microsecond=0))
    for name in draw(st.sets(st.sampled_from(WEATHER))):
        row[name] = draw(st.sampled_from([None, float("nan")]))
    return row


@settings(max_examples=40, deadline=None, database=None)
@given(data=st.data())
def test_batch_and_record_paths_agree_on_any_batch_of_real_and_altered_flights(
    data: st.DataObject, clean_flights: pd.DataFrame, real_lookups: FeatureLookups
) -> None:
    # Given a batch of real flights (rows with null tailnum or missing weather drawn often),
    # some with an unknown aircraft, route or date, or weather values removed
    awkward = np.flatnonzero(
        (clean_flights["tailnum"].isna() | clean_flights["temp_f"].isna()).to_numpy()
    ).tolist()
    rows = data.draw(st.lists(mutated_flight(clean_flights, awkward), min_size=1, max_size=25))
    batch = pd.DataFrame(rows, columns=clean_flights.columns).astype(
        {name: "float64" for name in WEATHER}
    )
    batch["sched_dep_local"] = pd.to_datetime(batch["sched_dep_local"])

    # When both paths compute the features, then they agree row by row
    assert_paths_agree(batch, real_lookups)
