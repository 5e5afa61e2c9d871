"""Up-front configuration checks of the flights use case's settings: each bad value one problem,
named by key and value (moved from tests/headwater/ops/test_checks.py)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from headwater.ops.checks import check_run
from tests.headwater.ops.test_checks import stage

FLIGHTS_2013 = {"flights": (date(2013, 1, 1), date(2013, 12, 31))}


def flights(**keys: Any) -> dict[str, Any]:
    return {"usecase": {"flights": keys}}


@pytest.mark.parametrize(
    ("overrides", "key", "value", "words"),
    [
        (
            flights(gate={"metric": "auc"}),
            "usecase.flights.gate.metric",
            "auc",
            ["not a metric the gate compares", "use one of: auc_roc"],
        ),
        (
            flights(timezone="Mars/Olympus_Mons"),
            "usecase.flights.timezone",
            "Mars/Olympus_Mons",
            ["not a known time zone", "IANA"],
        ),
        (
            {"lake": {"uri": "hdfs://namenode/lake"}},
            "lake.uri",
            "hdfs://namenode/lake",
            ["unsupported lake scheme 'hdfs'", "file://PATH or s3://BUCKET/PREFIX"],
        ),
        (
            {"lake": {"uri": "s3://"}},
            "lake.uri",
            "s3://",
            ["names no bucket"],
        ),
        (
            flights(holdout_from="2014-02-01"),
            "usecase.flights.holdout_from",
            "2014-02-01",
            ["outside the run's range 2013-01-01..2013-12-31", "remove it"],
        ),
        (
            flights(holdout_from="2013-01-01"),
            "usecase.flights.holdout_from",
            "2013-01-01",
            ["outside the run's range"],
        ),
        (
            flights(holdout_from="Nov 1"),
            "usecase.flights.holdout_from",
            "Nov 1",
            ["not a date", "YYYY-MM-DD"],
        ),
        (
            flights(sources={"weather": {"window_days": 0}}),
            "usecase.flights.sources.weather.window_days",
            0,
            ["greater than or equal to 1", "kind 'openmeteo'"],
        ),
        (
            flights(sources={"weather": {"colour": "blue"}}),
            "usecase.flights.sources.weather.colour",
            "blue",
            ["Extra inputs are not permitted"],
        ),
        (
            flights(sources={"planes": {"kind": "ftp"}}),
            "usecase.flights.sources.planes.kind",
            "ftp",
            ["unknown source kind 'ftp'", "known kinds: json_pages, openmeteo, sql"],
        ),
        (
            flights(module="nowhere.flights"),
            "usecase.flights.module",
            "nowhere.flights",
            ["does not load", "set usecase.flights.module"],
        ),
    ],
    ids=[
        "gate-metric",
        "timezone",
        "lake-scheme",
        "lake-bucket",
        "holdout-after-range",
        "holdout-at-start",
        "holdout-not-a-date",
        "source-option",
        "source-unknown-key",
        "source-kind",
        "usecase-import",
    ],
)
def test_each_bad_value_is_one_problem_naming_key_value_and_next_step(
    overrides: dict[str, Any], key: str, value: Any, words: list[str]
) -> None:
    settings = stage(**overrides)

    problems = check_run(settings, ["flights"], FLIGHTS_2013)

    assert [(p.key, p.value) for p in problems] == [(key, value)]
    text = str(problems[0])
    assert text.startswith(f"{key} = {value!r}: ")
    for word in words:
        assert word in text


def test_a_declared_source_missing_from_the_configuration_is_named() -> None:
    settings = stage()
    sources = {k: v for k, v in settings.usecase["flights"].sources.items() if k != "planes"}
    usecase = settings.usecase["flights"].model_copy(update={"sources": sources})
    settings = settings.model_copy(update={"usecase": {**settings.usecase, "flights": usecase}})

    [problem] = check_run(settings, ["flights"], FLIGHTS_2013)

    assert problem.key == "usecase.flights.sources.planes"
    assert "reads source 'planes', which is not configured" in problem.reason
    assert "add a [usecase.flights.sources.planes] table" in problem.fix


def test_problems_of_several_use_cases_are_all_reported() -> None:
    settings = stage(
        usecase={"flights": {"gate": {"metric": "f1"}}, "bikeshare": {"timezone": "Nowhere"}}
    )

    problems = check_run(settings, settings.usecases)

    assert {p.key for p in problems} == {
        "usecase.flights.gate.metric",
        "usecase.bikeshare.timezone",
    }


def test_a_holdout_is_only_checked_against_a_known_range_and_when_training() -> None:
    settings = stage(**flights(holdout_from="2014-02-01"))

    assert check_run(settings, ["flights"]) == []
    assert check_run(settings, ["flights"], FLIGHTS_2013, train=False) == []


@pytest.mark.parametrize("holdout_from", [None, "2013-03-05"], ids=["default", "configured"])
def test_a_one_day_range_cannot_be_split_into_training_and_holdout(
    holdout_from: str | None,
) -> None:
    # Given a run of one day (--end defaults to --start), with or without a holdout date
    settings = stage(**flights(holdout_from=holdout_from))
    one_day = {"flights": (date(2013, 3, 5), date(2013, 3, 5))}

    # When it is checked for training, then one problem names the range and the next step
    [problem] = check_run(settings, ["flights"], one_day)

    assert (problem.key, problem.value) == ("usecase.flights", "2013-03-05..2013-03-05")
    assert "1 day: too short to split into days to train on and days to hold out" in str(problem)
    assert "run a range of at least 2 days" in problem.fix
    assert "usecase.flights.start" in problem.fix
    assert check_run(settings, ["flights"], one_day, train=False) == []  # no training, no split


def test_a_two_day_range_trains_on_the_first_and_holds_out_the_last() -> None:
    settings = stage()

    assert check_run(settings, ["flights"], {"flights": (date(2013, 3, 4), date(2013, 3, 5))}) == []


def test_a_credential_is_not_echoed_by_the_check() -> None:
    literal = {"header": "token", "value": "hunter2-literal-token"}
    settings = stage(**flights(sources={"weather": {"auth": literal}}))  # an HTTP source

    problems = check_run(settings, ["flights"], train=False)

    assert [p.key for p in problems] == ["usecase.flights.sources.weather.auth"]
    assert "value must be a reference" in problems[0].reason
    assert "hunter2" not in " ".join(str(p) for p in problems)


@pytest.mark.parametrize("embedded", [False, True])
def test_an_unset_credential_variable_is_a_problem_before_any_work_unless_a_stand_in_serves(
    monkeypatch: pytest.MonkeyPatch, embedded: bool
) -> None:
    # Given an HTTP source sending a token read from a variable nobody exported
    monkeypatch.delenv("HEADWATER_TEST_UNSET_TOKEN", raising=False)
    auth = {"header": "token", "value": "env:HEADWATER_TEST_UNSET_TOKEN"}
    weather = {"auth": auth, "embedded_server": embedded}
    settings = stage(**flights(sources={"weather": weather}))

    problems = check_run(settings, ["flights"], train=False)

    if embedded:  # the run generates the stand-in's credential: nothing to export
        assert problems == []
        return
    # Then the check names the key, the variable and the next step
    [problem] = problems
    assert problem.key == "usecase.flights.sources.weather.auth.value"
    assert "environment variable HEADWATER_TEST_UNSET_TOKEN, which is not set" in problem.reason
    assert problem.fix.startswith("export HEADWATER_TEST_UNSET_TOKEN=")
    # and once exported, there is none
    monkeypatch.setenv("HEADWATER_TEST_UNSET_TOKEN", "t")
    assert check_run(settings, ["flights"], train=False) == []
