"""Up-front configuration checks: every problem a run would hit later, named by key and value."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from headwater.core.config import Settings, load_settings
from headwater.ops.checks import Problem, check_run
from headwater.registry.gate import GATE_METRICS


def stage(name: str = "local", **overrides: Any) -> Settings:
    """A shipped stage file with ``overrides`` (nested mappings), no environment."""
    return load_settings(name, overrides=overrides, environ={})


@pytest.mark.parametrize("name", ["local", "prod"])
def test_the_shipped_stages_have_no_problem(name: str) -> None:
    settings = stage(name)

    ranges = {name: (date(2013, 1, 1), date(2013, 12, 31)) for name in settings.usecases}
    assert settings.usecases
    assert check_run(settings, settings.usecases, ranges) == []


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
