"""Up-front configuration checks: every problem a run would hit later, named by key and value."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from headwater.core.config import Settings, load_settings
from headwater.ops.checks import Problem, check_run
from headwater.registry.gate import GATE_METRICS

FLIGHTS_2013 = {"flights": (date(2013, 1, 1), date(2013, 12, 31))}


def stage(name: str = "local", **overrides: Any) -> Settings:
    """A shipped stage file with ``overrides`` (nested mappings), no environment."""
    return load_settings(name, overrides=overrides, environ={})


def flights(**keys: Any) -> dict[str, Any]:
    return {"usecase": {"flights": keys}}


@pytest.mark.parametrize("name", ["local", "prod"])
def test_the_shipped_stages_have_no_problem(name: str) -> None:
    settings = stage(name)

    assert check_run(settings, settings.usecases, FLIGHTS_2013) == []


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


def test_the_gate_metrics_are_holdout_metrics_the_training_writes() -> None:
    from headwater.model.evaluation import ScoreBin, exact_metrics

    holdout = exact_metrics([ScoreBin.exact(0.2, 10.0, 2.0), ScoreBin.exact(0.7, 10.0, 6.0)])

    assert set(GATE_METRICS) <= set(holdout)
    assert isinstance(Problem("k", 1, "r", "f"), Problem)


# --- a use case that brings its own source kind, from a package outside the platform ----------

RAIN_KINDS = '''
"""A source kind that lives beside its use case, not in the platform."""
import pyarrow as pa
from headwater.data.sources import SourceOptions, no_snapshot


class StationOptions(SourceOptions):
    station: str


class StationKind:
    Config = StationOptions
    http = False
    snapshot = staticmethod(no_snapshot("station_days"))

    def extract(self, config, ctx, partition):
        table = pa.table({"station": [config.station], "day": [partition.start]})
        return table.schema, iter([table])


KIND = StationKind()
'''

RAIN_USECASE = '''
"""A use case of a temporary directory, declaring the kind it brings."""
from types import SimpleNamespace

USECASE = SimpleNamespace(
    name="rain",
    title="Will it rain tomorrow? (test-only)",
    timezone="America/New_York",
    sources=("daily",),
    references=(),
    source_kinds={"station_days": "rain_kinds:KIND"},
    source_request=lambda source: None,
)
'''


@pytest.fixture
def rain_package(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A use case package in a temporary directory, on the path for this test only."""
    import sys

    from headwater.data import sources

    (tmp_path / "rain_kinds.py").write_text(RAIN_KINDS, encoding="utf-8")
    (tmp_path / "rain_usecase.py").write_text(RAIN_USECASE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sources, "KINDS", dict(sources.KINDS))
    monkeypatch.setattr(sources, "_loaded", dict(sources._loaded))
    yield tmp_path
    for module in ("rain_kinds", "rain_usecase"):
        sys.modules.pop(module, None)


def rain(**source: Any) -> Settings:
    daily = {"kind": "station_days", "station": "GHCND:USW00094728", **source}
    return stage(usecase={"rain": {"module": "rain_usecase", "sources": {"daily": daily}}})


def test_a_use_cases_own_source_kind_passes_the_check(rain_package: Any) -> None:
    # Given a use case outside the platform whose source is of a kind it declares itself
    settings = rain()

    # When the run is checked, then the kind is known (and its keys were validated)
    assert check_run(settings, ["rain"], train=False) == []


def test_a_use_cases_own_kind_validates_its_keys(rain_package: Any) -> None:
    [problem] = check_run(rain(station=None), ["rain"], train=False)

    assert problem.key == "usecase.rain.sources.daily.station"
    assert "kind 'station_days'" in problem.fix


def test_a_kind_that_would_replace_another_is_refused_naming_both(rain_package: Any) -> None:
    text = RAIN_USECASE.replace('"station_days": "rain_kinds:KIND"', '"sql": "rain_kinds:KIND"')
    (rain_package / "rain_usecase.py").write_text(text, encoding="utf-8")

    problems = check_run(rain(kind="sql"), ["rain"], train=False)

    assert problems[0].key == "usecase.rain.module"
    assert "brings source kind 'sql' (rain_kinds:KIND)" in problems[0].reason
    assert "already headwater.data.sources.sql:KIND" in problems[0].reason


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


def test_check_training_rows_counts_the_published_clean_rows_of_the_range(
    make_stage: Any,
) -> None:
    import pyarrow as pa

    from headwater.core import layout
    from headwater.data.pipeline import CLEAN, lake_for
    from headwater.ops.checks import NotEnoughData, check_training_rows

    # Given two of three clean days of the minimal use case published, 2 rows each
    settings = make_stage(usecase__meters__min_training_rows="5")
    table = pa.table({"n": pa.array([1, 2], pa.int64())})
    for key in ("date=2013-01-01", "date=2013-01-02"):
        lake_for(settings).publish(
            CLEAN, layout.dataset("meters", "readings"), key, [table],
            schema=table.schema, source="test", run_id="r0",
        )  # fmt: skip

    # When / then 4 rows are too few for 5, and enough for 4
    with pytest.raises(
        NotEnoughData, match=r"'meters' has 4 clean rows in 2013-01-01\.\.2013-01-03"
    ):
        check_training_rows(settings, "meters", date(2013, 1, 1), date(2013, 1, 3))
    enough = make_stage(usecase__meters__min_training_rows="4")
    assert check_training_rows(enough, "meters", date(2013, 1, 1), date(2013, 1, 3)) == 4
