"""End to end with real Luigi: local scheduler, in-process functions, two use cases in one graph.

The stage (``make_stage``) enables a shipped use case beside the minimal test-only one
(tests/usecases/minimal); each reads its own demo sources, and this file names only the
test-only one (a shipped one's own end-to-end figures are in its test folder). Each run
writes its lake, run records and outbox under tmp_path.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog

import functions.clean
import functions.extract
from headwater.core import layout
from headwater.core.config import Settings
from headwater.core.logs import configure_logging
from headwater.core.partitions import Partition
from headwater.data.pipeline import lake_for, usecase_of
from luigi_tasks import context
from luigi_tasks.pipeline import Backfill
from luigi_tasks.runner import (
    RunOptions,
    configure_luigi,
    model_summary,
    new_run_id,
    reused_model_summary,
    run_pipeline,
)
from luigi_tasks.training import RunAll

pytestmark = pytest.mark.slow

FIRST, LAST = date(2013, 1, 1), date(2013, 1, 3)
LABELS = ["2013-01-01", "2013-01-02", "2013-01-03"]
STATIONS = 3  # EWR, JFK, LGA: one weather row per station and local hour
METERS = 3  # readings per hour in the minimal use case
CRASH_ENV = "HW_TEST_CRASH"  # read by the patched functions, so forked workers see it too


# --- helpers -----------------------------------------------------------------------------------


def sqlite_count(url: str, query: str, *args: Any) -> int:
    with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
        return conn.execute(query, args).fetchone()[0]


def readings_rows(meters_url: str, first: date, last: date) -> int:
    """The minimal use case's readings of first..last, straight from its source database."""
    query = "SELECT COUNT(*) FROM readings WHERE day BETWEEN ? AND ?"
    return sqlite_count(meters_url, query, first.isoformat(), last.isoformat())


def notifications(settings: Settings) -> list[dict[str, Any]]:
    """Every notification in the outbox (one JSON file per run)."""
    outbox = Path(settings.notify.outbox)
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(outbox.iterdir())]


def records(settings: Settings, run_id: str, kind: str) -> set[str]:
    """The task ids a run recorded as done or failed."""
    return {p.stem for p in (Path(settings.run.state_dir) / run_id / kind).glob("*.json")}


def clean_keys(settings: Settings, usecase: str, dataset: str) -> list[str]:
    return lake_for(settings).partitions(layout.CLEAN, layout.dataset(usecase, dataset))


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def keys(parts: list[Partition]) -> list[str]:
    return [p.key for p in parts]


@pytest.fixture
def crash(monkeypatch: pytest.MonkeyPatch) -> Callable[[str | None], None]:
    """Make the functions raise for the step in $HW_TEST_CRASH, e.g. ``clean:meters:2013-01-02``.

    The handlers bound the step functions at import, so those names are patched; an environment
    variable (not a closure) says what to break, so forked Luigi workers obey it too.
    """
    real_clean = functions.clean.clean_partition
    real_extract = functions.extract.extract_partition

    def clean_or_crash(
        settings: Settings, usecase: str, partition: Partition, run_id: str, **kw: Any
    ) -> Any:
        if os.environ.get(CRASH_ENV) == f"clean:{usecase}:{partition.label}":
            raise RuntimeError(f"simulated crash cleaning {usecase} {partition.label}")
        return real_clean(settings, usecase, partition, run_id, **kw)

    def extract_or_crash(
        settings: Settings, usecase: str, source: str, partition: Partition, run_id: str, **kw: Any
    ) -> Any:
        if os.environ.get(CRASH_ENV) == f"extract:{usecase}:{source}:{partition.label}":
            raise RuntimeError(f"simulated crash extracting {source} {partition.label}")
        return real_extract(settings, usecase, source, partition, run_id, **kw)

    monkeypatch.setattr(functions.clean, "clean_partition", clean_or_crash)
    monkeypatch.setattr(functions.extract, "extract_partition", extract_or_crash)

    def arm(step: str | None) -> None:
        if step is None:
            monkeypatch.delenv(CRASH_ENV, raising=False)
        else:
            monkeypatch.setenv(CRASH_ENV, step)

    return arm


@pytest.fixture
def json_log(tmp_path: Path) -> Iterator[Path]:
    """Configure Headwater's JSON logging into a file; undo it afterwards."""
    saved = structlog.get_config()
    level = logging.getLogger().level
    path = tmp_path / "logs" / "run.log"
    configure_logging(log_file=path, console=False)
    yield path
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_headwater", False)]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)
    structlog.configure(**saved)


def test_a_use_case_without_a_range_fails_the_run_naming_it(
    make_stage: Callable[..., Settings],
) -> None:
    # Given options that give only the other use case a range
    settings = make_stage()
    [other] = [name for name in settings.usecases if name != "meters"]
    options = RunOptions(until="clean", ranges={other: (FIRST, FIRST)})

    # When both use cases run, the run refuses before any task, and still notifies once
    with pytest.raises(ValueError, match="use case 'meters' has no date range"):
        run_pipeline(settings, options)
    [note] = notifications(settings)
    assert note["succeeded"] is False
    assert not Path(settings.lake.uri.removeprefix("file://"), "raw").exists()


def test_the_run_is_one_graph_under_one_wrapper_task(
    make_stage: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a stage with two use cases, and luigi.build recording what it is given
    settings = make_stage()
    built: list[list[Any]] = []
    import luigi

    real_build = luigi.build

    def build(tasks: list[Any], **kwargs: Any) -> Any:
        built.append(list(tasks))
        return real_build(tasks, **kwargs)

    monkeypatch.setattr(luigi, "build", build)

    # When one day runs up to extraction
    report = run_pipeline(settings, RunOptions(FIRST, FIRST, until="extract", run_id="one"))

    # Then Luigi was called once, with one wrapper over both use cases' backfills
    assert report.succeeded, report.body()
    [[wrapper]] = built
    assert isinstance(wrapper, RunAll)
    assert len(settings.usecases) == 2
    assert (wrapper.usecases, wrapper.until, wrapper.run_id) == (
        tuple(settings.usecases),
        "extract",
        "one",
    )
    backfills = wrapper.requires()
    assert [(b.usecase, b.until) for b in backfills] == [
        (name, "extract") for name in settings.usecases
    ]
    assert all(isinstance(b, Backfill) for b in backfills)


def test_usecase_option_runs_only_the_named_use_case(make_stage: Callable[..., Settings]) -> None:
    settings = make_stage()

    report = run_pipeline(settings, RunOptions(FIRST, FIRST, usecases=("meters",)))

    assert report.succeeded, report.body()
    assert report.usecases == ["meters"]
    assert clean_keys(settings, "meters", "readings") == ["date=2013-01-01"]
    [other] = [name for name in settings.usecases if name != "meters"]
    assert clean_keys(settings, other, usecase_of(settings, other).clean_dataset) == []
    [note] = notifications(settings)
    assert [s["usecase"] for s in note["sections"]] == ["meters"]


def test_the_notification_says_where_each_monitoring_report_is(
    make_stage: Callable[..., Settings],
) -> None:
    # Given a lake where meters has a monitoring report and the other use case none
    settings = make_stage()
    lake = lake_for(settings)
    lake.write_bytes(b"<!doctype html>", *layout.monitoring_report_parts("meters"))

    # When a run over both ends
    report = run_pipeline(settings, RunOptions(FIRST, FIRST))

    # Then its summary lists the one report's lake URI, on a line naming its use case
    assert report.succeeded, report.body()
    uri = lake.uri_of(*layout.monitoring_report_parts("meters"))
    (line,) = [x for x in report.body().splitlines() if "monitoring.html" in x]
    assert "meters" in line and line.endswith(uri)
    [note] = notifications(settings)
    assert uri in note["extra"].values()


def test_an_unknown_use_case_fails_the_run_and_still_notifies_once(
    make_stage: Callable[..., Settings],
) -> None:
    settings = make_stage()

    with pytest.raises(ValueError, match="use case 'tides' is not configured"):
        run_pipeline(settings, RunOptions(FIRST, FIRST, usecases=("tides",)))

    [note] = notifications(settings)
    assert note["succeeded"] is False
    assert note["failures"][0]["task"] == "run"


@pytest.mark.parametrize(
    ("sig", "why"), [(signal.SIGTERM, "terminated (SIGTERM)"), (signal.SIGINT, "interrupted")]
)
def test_a_run_stopped_by_a_signal_still_notifies_once_saying_so(
    make_stage: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch, sig: int, why: str
) -> None:
    from luigi_tasks import runner
    from luigi_tasks.runner import RunStopped

    settings = make_stage(usecases=("meters",))

    class Fallback(Exception):
        """What a signal raises where the run installs no handler (instead of killing pytest)."""

    def fallback(signum: int, frame: Any) -> None:
        raise Fallback

    def stopped_during_the_run(*args: Any, **kwargs: Any) -> None:
        os.kill(os.getpid(), sig)
        time.sleep(5)

    monkeypatch.setattr(runner, "warm_up", stopped_during_the_run)
    previous = {s: signal.signal(s, fallback) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        # When the run is stopped (a container stopped: SIGTERM; Ctrl-C: SIGINT)
        with pytest.raises(RunStopped):
            run_pipeline(settings, RunOptions(FIRST, FIRST, usecases=("meters",)))
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)

    # Then the run still ends with its one notification, saying it was stopped and how to finish
    [note] = notifications(settings)
    assert note["succeeded"] is False
    assert note["failures"][0]["task"] == "run"
    assert why in note["failures"][0]["error"]
    assert "run the same command again" in note["failures"][0]["error"]


def test_a_stopped_run_ends_its_forked_workers_without_recording_them_as_failed(
    make_stage: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    from luigi_tasks.runner import RunStopped

    settings = make_stage(usecases=("meters",))

    def stop_the_run_while_cleaning(*args: Any, **kwargs: Any) -> Any:
        os.kill(os.getppid(), signal.SIGTERM)  # runs in a forked worker: stop its parent
        time.sleep(30)

    monkeypatch.setattr(functions.clean, "clean_partition", stop_the_run_while_cleaning)

    # When the run is stopped while a forked worker cleans
    started = time.monotonic()
    with pytest.raises(RunStopped):
        run_pipeline(settings, RunOptions(FIRST, FIRST, usecases=("meters",), workers=2))

    # Then the worker ended with the run (not after its 30 s), recorded as nothing but stopped
    while multiprocessing.active_children() and time.monotonic() - started < 20:
        time.sleep(0.05)
    assert time.monotonic() - started < 20
    [note] = notifications(settings)
    assert [f["task"] for f in note["failures"]] == ["run"]
    assert not list(Path(settings.run.state_dir).glob("*/failed/*.json"))


def test_an_unknown_source_kind_fails_the_run_before_any_task(
    make_stage: Callable[..., Settings],
) -> None:
    # Given a source of the minimal use case whose kind nobody registered
    settings = make_stage(usecase__meters__sources__readings__kind="homing_pigeon")

    # When a run starts, then the warm-up refuses it naming the known kinds
    with pytest.raises(ValueError, match="unknown source kind 'homing_pigeon' \\(known kinds: "):
        run_pipeline(settings, RunOptions(FIRST, FIRST, run_id="kindless"))

    # and no task ran, and the one notification says why
    assert not (Path(settings.run.state_dir) / "kindless").exists()
    [note] = notifications(settings)
    assert "unknown source kind 'homing_pigeon'" in note["failures"][0]["error"]


# --- settings read once per run ----------------------------------------------------------------


def count_loads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the run context's reads of the stage's settings."""
    calls: list[int] = []
    real = context.load_settings

    def load(*args: Any, **kwargs: Any) -> Settings:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(context, "load_settings", load)
    return calls


def test_a_run_never_reloads_the_settings_it_was_given(
    make_stage: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the run's settings, and the run context's reads of the stage counted
    settings = make_stage()
    loads = count_loads(monkeypatch)

    # When a one-worker run (every task in this process) goes through both use cases
    report = run_pipeline(settings, RunOptions(FIRST, FIRST, workers=1))

    # Then no task read the settings again (the functions read theirs, as on Lambda)
    assert report.succeeded, report.body()
    assert loads == []
    for name in settings.usecases:
        dataset = usecase_of(settings, name).clean_dataset
        assert clean_keys(settings, name, dataset) == ["date=2013-01-01"], name


def test_tasks_of_an_unregistered_run_load_the_settings_once(
    make_stage: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given tasks built by hand (no runner registered their run)
    settings = make_stage()
    loads = count_loads(monkeypatch)
    usecases = tuple(settings.usecases)
    wrapper = RunAll(usecases=usecases, start=FIRST, end=LAST, until="clean")

    # When the graph is walked and every target checked, as Luigi's scheduling does
    tasks = [t for backfill in wrapper.requires() for t in backfill.requires()]
    tasks += [e for t in tasks for e in t.requires()]
    checked = [t.complete() for t in tasks]

    # Then the stage was read once for all of them
    # one clean task per use case and day, one extraction per source of it and day
    sources = sum(len(usecase_of(settings, name).sources) for name in usecases)
    assert len(tasks) == len(usecases) * 3 + sources * 3 and sources > len(usecases)
    assert not any(checked)
    assert loads == [1]


# --- JSON logs ---------------------------------------------------------------------------------


def test_every_headwater_log_line_is_json_with_run_id_and_use_case(
    make_stage: Callable[..., Settings], json_log: Path
) -> None:
    settings = make_stage()

    report = run_pipeline(settings, RunOptions(FIRST, FIRST, workers=2))

    assert report.succeeded, report.body()
    parsed = [json.loads(line) for line in json_log.read_text(encoding="utf-8").splitlines()]
    ours = [r for r in parsed if r["logger"].startswith("headwater")]
    assert {r["run_id"] for r in ours} == {report.run_id}
    task_lines = [r for r in ours if "task" in r]
    assert {r.get("partition") for r in task_lines} == {"2013-01-01"}
    assert {r.get("usecase") for r in task_lines} == set(settings.usecases)
    assert {"extract done", "clean done"} <= {r["event"] for r in task_lines}
    assert {"run started", "run finished"} <= {r["event"] for r in ours}


def test_a_rerun_says_its_partitions_were_already_published_and_skipped(
    make_stage: Callable[..., Settings], meters_db: str, json_log: Path
) -> None:
    # Given two days of the minimal use case already published
    settings = make_stage(usecases=("meters",))
    first = run_pipeline(settings, RunOptions(FIRST, FIRST.replace(day=2), workers=1))
    assert first.succeeded and first.section("meters").skipped == 0

    # When the same range runs again
    report = run_pipeline(settings, RunOptions(FIRST, FIRST.replace(day=2), workers=1))

    # Then the summary says both were skipped, and so did the plan the console shows first
    assert report.succeeded, report.body()
    assert "Partitions:  2 of 2 clean (2 already published, skipped)" in report.body()
    parsed = [json.loads(line) for line in json_log.read_text(encoding="utf-8").splitlines()]
    planned = [r for r in parsed if r["event"] == "planned"]
    assert [
        (r["run_id"], r["partitions"], r["published"], r["steps"], r["steps_done"]) for r in planned
    ] == [(first.run_id, 2, 0, 2, 0), (report.run_id, 2, 2, 2, 4)]
    assert not [
        r for r in parsed if r.get("run_id") == report.run_id and r["event"] == "clean done"
    ]


def test_the_model_summary_quotes_the_gates_interval(make_stage: Callable[..., Settings]) -> None:
    from headwater.registry.registry import Registry

    settings = make_stage()
    registry = Registry(lake_for(settings), "meters")
    registry.write_json("v1", layout.METRICS, {"holdout": {"auc_roc": 0.7023}})
    registry.mark_complete("v1")
    numbers = {
        "metric": "auc_roc",
        "gain": 0.0023,
        "lower_gain": -0.0051,
        "upper_gain": 0.0097,
        "margin": 0.002,
        "interval": {"confidence": 0.95, "blocks": 5},
    }
    registry.reject("v1", "noisy", numbers)

    model = model_summary(settings, "meters", "v1")

    assert model.interval == (
        "AUC gain +0.0023, 95% interval [-0.0051, +0.0097] over 5 blocks (margin 0.002)"
    )
    assert ("Interval", model.interval) in model.lines("meters")


def _promoted_meters(settings: Settings, version: str) -> Any:
    from headwater.registry.registry import Registry

    registry = Registry(lake_for(settings), "meters")
    registry.write_json(version, layout.METRICS, {"holdout": {"auc_roc": 0.7}})
    registry.mark_complete(version)
    registry.promote(version, "no production model yet: promoted", expected=None)
    return registry


def test_a_rerun_that_reused_the_production_version_says_it_promoted_nothing(
    make_stage: Callable[..., Settings],
) -> None:
    # Given v1 promoted by an earlier run, then a run (started after) that reused v1
    settings = make_stage()
    _promoted_meters(settings, "v1")
    started = datetime.now(UTC)

    # When the notification's model lines are made (before: "yes: no production model yet")
    model = reused_model_summary(settings, "meters", "v1", started)

    # Then they say nothing was promoted in this run, and why, in the outbox JSON too
    assert ("Promoted", "no: v1 already in production, training reused") in model.lines("meters")
    assert model.skipped == "training skipped: unchanged inputs (version v1)"
    assert (model.decision, model.reason) == (
        "unchanged",
        "v1 already in production, training reused",
    )


def test_a_rerun_whose_gate_promoted_the_reused_version_says_yes(
    make_stage: Callable[..., Settings],
) -> None:
    # Given a run that started, then promoted the version it reused (a held one, say)
    settings = make_stage()
    started = datetime.now(UTC)
    _promoted_meters(settings, "v1")

    # When its model lines are made, then they report this run's promotion
    model = reused_model_summary(settings, "meters", "v1", started)
    assert ("Promoted", "yes: no production model yet: promoted") in model.lines("meters")


# --- the runner's parts ------------------------------------------------------------------------


def test_configure_luigi_sets_the_budgets_from_settings(
    make_stage: Callable[..., Settings],
) -> None:
    from luigi.configuration import get_config

    configure_luigi(make_stage(run__api_concurrency=3))
    assert get_config().getint("resources", "http_api") == 3
    assert get_config().getint("resources", "training") == 1  # local Spark: one at a time

    configure_luigi(make_stage(training__runner="emr"))
    assert get_config().getint("resources", "training") > 1


def test_run_ids_sort_by_time_and_are_unique() -> None:
    early = new_run_id(datetime(2013, 1, 1, 2, 15, tzinfo=UTC))
    late = new_run_id(datetime(2013, 1, 1, 2, 16, tzinfo=UTC))

    assert early.startswith("20130101T021500Z-")
    assert early < late
    assert len({new_run_id() for _ in range(50)}) == 50


def manifests(settings: Settings, zone: str, usecase: str, dataset: str) -> dict[str, str]:
    """The run id of each published partition of a dataset, by key."""
    lake = lake_for(settings)
    name = layout.dataset(usecase, dataset)
    return {key: lake.manifest(zone, name, key).run_id for key in lake.partitions(zone, name)}


@pytest.mark.parametrize(
    ("rerun", "replaced"), [("clean", {layout.CLEAN}), ("extract", {layout.RAW, layout.CLEAN})]
)
def test_rerun_replaces_the_ranges_partitions_from_its_step_on_and_nothing_else(
    make_stage: Callable[..., Settings], rerun: str, replaced: set[str]
) -> None:
    # Given three settled days published by a first run
    settings = make_stage(usecases=("meters",))
    first = run_pipeline(settings, RunOptions(FIRST, LAST, until="clean"))
    assert first.succeeded, first.body()
    before = {z: manifests(settings, z, "meters", "readings") for z in (layout.RAW, layout.CLEAN)}

    # When a second run redoes two of them from ``rerun`` on
    second = run_pipeline(settings, RunOptions(FIRST, date(2013, 1, 2), until="clean", rerun=rerun))

    # Then those partitions of the replaced zones carry the second run's id, all else is as it was
    assert second.succeeded, second.body()
    for zone in (layout.RAW, layout.CLEAN):
        after = manifests(settings, zone, "meters", "readings")
        expected = dict(before[zone])
        if zone in replaced:
            expected.update({"date=2013-01-01": second.run_id, "date=2013-01-02": second.run_id})
        assert after == expected, zone
    # and without --rerun, settled partitions are left alone
    third = run_pipeline(settings, RunOptions(FIRST, LAST, until="clean"))
    assert third.succeeded
    assert third.run_id not in manifests(settings, layout.CLEAN, "meters", "readings").values()


def test_a_range_with_no_data_is_refused_before_training_in_one_line(
    make_stage: Callable[..., Settings],
) -> None:
    # Given the minimal use case over days its source has no rows for (as a shipped use case
    # over a year before its data: before, the training job failed inside build_lookups)
    settings = make_stage(usecases=("meters",))
    first, last = date(2020, 1, 1), date(2020, 1, 3)

    # When a run is to train on them
    report = run_pipeline(settings, RunOptions(first, last, until="model", workers=1))

    # Then the training task fails in one line naming the use case, the range and the rows
    assert not report.succeeded
    [failure] = report.failures
    assert failure.task.startswith("TrainModel meters")
    assert failure.error.splitlines()[0] == (
        "NotEnoughData: use case 'meters' has 0 clean rows in 2020-01-01..2020-01-03, fewer "
        "than the 100 needed to train (usecase.meters.min_training_rows)"
    )


def test_the_model_summary_reads_the_versions_metrics(make_stage: Callable[..., Settings]) -> None:
    from headwater.registry.registry import Registry

    settings = make_stage()
    registry = Registry(lake_for(settings), "meters")
    metrics = {"holdout": {"auc_roc": 0.7023, "rows": 90}, "regression": {"rmse": 4.5}}
    registry.write_json("v1", layout.METRICS, metrics)
    registry.mark_complete("v1")

    model = model_summary(settings, "meters", "v1")

    assert (model.holdout, model.regression) == (metrics["holdout"], metrics["regression"])
    assert (model.decision, model.interval) == ("", "")


def test_the_model_summary_refuses_a_malformed_metrics_file_naming_it(
    make_stage: Callable[..., Settings],
) -> None:
    from headwater.registry.registry import Registry, RegistryError

    settings = make_stage()
    registry = Registry(lake_for(settings), "meters")
    registry.write_json("v1", layout.METRICS, {"holdout": {"auc_roc": "0.70"}})
    registry.mark_complete("v1")

    with pytest.raises(RegistryError, match=r"v1/metrics.json: holdout.auc_roc is '0.70', not a"):
        model_summary(settings, "meters", "v1")
