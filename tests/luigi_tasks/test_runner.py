"""End to end with real Luigi: local scheduler, in-process functions, two use cases in one graph.

The flights use case reads the demo SQLite source and the weather server on loopback; the
minimal test-only use case (tests/usecases/minimal) reads its own SQLite source. Each run
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
import requests
import structlog

import functions.clean
import functions.extract
from headwater.core import layout
from headwater.core.config import Settings, load_settings
from headwater.core.logs import configure_logging
from headwater.core.partitions import Partition, partitions_between
from headwater.data.pipeline import lake_for
from luigi_tasks import context
from luigi_tasks.pipeline import Backfill, CleanPartition
from luigi_tasks.runner import (
    RunOptions,
    configure_luigi,
    embedded_services,
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


def flights_rows(db_url: str, first: date, last: date) -> int:
    """The flights of first..last, straight from the source database."""
    query = "SELECT COUNT(*) FROM flights WHERE flight_date BETWEEN ? AND ?"
    return sqlite_count(db_url, query, first.isoformat(), last.isoformat())


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
    """Make the functions raise for the step in $HW_TEST_CRASH, e.g. ``clean:flights:2013-01-02``.

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


# --- two use cases, one graph, one notification ------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_a_run_over_two_use_cases_publishes_both_and_notifies_once_with_a_section_each(
    make_stage: Callable[..., Settings], demo_db: str, meters_db: str, workers: int
) -> None:
    # Given an empty lake and a stage enabling flights and the minimal use case
    settings = make_stage()
    parts = partitions_between(FIRST, LAST, "day")

    # When the pipeline runs for three days (every enabled use case: none named)
    report = run_pipeline(settings, RunOptions(FIRST, LAST, workers=workers))

    # Then every task succeeded and the lake holds each use case's days under its own name
    assert report.succeeded, report.body()
    assert (report.failures, report.not_run) == ([], [])
    assert clean_keys(settings, "flights", "flights") == keys(parts)
    assert clean_keys(settings, "meters", "readings") == keys(parts)
    # 3 days x (2 extractions + 1 clean) for flights, 3 x (1 + 1) for the minimal use case
    assert len(records(settings, report.run_id, "done")) == 3 * 3 + 3 * 2
    # And exactly one notification has a section per use case, in the configured order
    [note] = notifications(settings)
    assert note["run_id"] == report.run_id and note["succeeded"] is True
    flights, meters = note["sections"]
    flights_in = flights_rows(demo_db, FIRST, LAST)
    assert flights["usecase"] == "flights"
    assert (flights["partitions"], flights["complete"]) == (3, 3)
    assert flights["rows"]["raw flights"] == flights_in
    assert flights["rows"]["raw weather"] == STATIONS * 24 * 3
    assert flights["rows"]["clean"] + flights["quarantined"] == flights_in
    readings_in = readings_rows(meters_db, FIRST, LAST)
    assert meters["usecase"] == "meters"
    assert meters["title"] == "Meter overload (test-only use case)"
    assert meters["rows"] == {"raw readings": readings_in, "clean": METERS * 24 * 3}
    assert meters["quarantined"] == readings_in - METERS * 24 * 3 == 1  # the row without a load
    assert meters["quarantined_by_source"] == {"readings": 1}
    assert sum(flights["quarantined_by_source"].values()) == flights["quarantined"]
    assert set(flights["quarantined_by_source"]) == {"flights", "weather"}
    assert "succeeded: 6 partitions of flights, meters, 2013-01-01..2013-01-03" in note["subject"]
    body = report.body()
    assert body.index("== flights") < body.index("== meters: Meter overload") < body.index("Logs:")


def test_each_use_case_runs_over_its_own_range_in_one_graph_with_one_notification(
    make_stage: Callable[..., Settings],
) -> None:
    # Given flights over two days and the minimal use case over a third, later day
    settings = make_stage()
    ranges = {"flights": (FIRST, date(2013, 1, 2)), "meters": (LAST, LAST)}

    # When one run covers both
    report = run_pipeline(settings, RunOptions(until="clean", workers=2, ranges=ranges))

    # Then each use case published exactly its own days
    assert report.succeeded, report.body()
    assert clean_keys(settings, "flights", "flights") == ["date=2013-01-01", "date=2013-01-02"]
    assert clean_keys(settings, "meters", "readings") == ["date=2013-01-03"]
    # And the one notification gives each section its own dates and partition count
    [note] = notifications(settings)
    flights, meters = note["sections"]
    assert (flights["date_range"], flights["partitions"]) == ("2013-01-01..2013-01-02", 2)
    assert (meters["date_range"], meters["partitions"]) == ("2013-01-03..2013-01-03", 1)
    assert note["date_range"] == "flights 2013-01-01..2013-01-02, meters 2013-01-03..2013-01-03"
    body = report.body()
    assert "Dates:       2013-01-01..2013-01-02\nPartitions:  2 of 2 clean" in body
    assert "Dates:       2013-01-03..2013-01-03\nPartitions:  1 of 1 clean" in body


def test_a_use_case_without_a_range_fails_the_run_naming_it(
    make_stage: Callable[..., Settings],
) -> None:
    # Given options that give only flights a range
    settings = make_stage()
    options = RunOptions(until="clean", ranges={"flights": (FIRST, FIRST)})

    # When both use cases run, the run refuses before any task, and still notifies once
    with pytest.raises(ValueError, match="use case 'meters' has no date range"):
        run_pipeline(settings, options)
    [note] = notifications(settings)
    assert note["succeeded"] is False
    assert not Path(settings.lake.uri.removeprefix("file://"), "raw").exists()


@pytest.fixture(scope="module")
def bikeshare_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The bike-share demo source, built once from the vendored data."""
    from headwater.core.config import SourceConfig
    from headwater.core.usecase import get_usecase

    url = f"sqlite:///{tmp_path_factory.mktemp('bikeshare')}/bikeshare.sqlite"
    source = SourceConfig(kind="sql", url=url, table="rentals", date_column="dteday")
    get_usecase("bikeshare").build_demo_data({"rentals": source}, True)
    return url


def test_the_shipped_use_cases_run_together_with_their_embedded_servers(
    make_stage: Callable[..., Settings], bikeshare_db: str
) -> None:
    # Given flights and bike share over days at the turn of 2013 (bike-share data ends with
    # 2012, flights data starts in 2013), bike share's weather API started by the run itself
    port = closed_port()
    prefix = "usecase__bikeshare__sources__"
    settings = make_stage(
        usecases=("flights", "bikeshare"),
        **{
            f"{prefix}rentals__kind": "sql",
            f"{prefix}rentals__url": bikeshare_db,
            f"{prefix}rentals__table": "rentals",
            f"{prefix}rentals__date_column": "dteday",
            f"{prefix}weather__kind": "json_pages",
            f"{prefix}weather__items_field": "observations",
            f"{prefix}weather__base_url": f"http://127.0.0.1:{port}/v1/observations",
            f"{prefix}weather__embedded_server": "true",
            f"{prefix}weather__rate_limit_per_second": "200",
        },
    )
    first, last = date(2012, 12, 31), date(2013, 1, 1)

    # When one run covers both
    report = run_pipeline(settings, RunOptions(first, last, workers=2))

    # Then each use case published both days, empty where it has no data, in one notification
    assert report.succeeded, report.body()
    assert report.usecases == ["flights", "bikeshare"]
    days = ["date=2012-12-31", "date=2013-01-01"]
    assert clean_keys(settings, "flights", "flights") == days
    assert clean_keys(settings, "bikeshare", "rentals") == days
    lake = lake_for(settings)
    rows = {
        (usecase, key): lake.manifest(layout.CLEAN, layout.dataset(usecase, dataset), key).rows
        for usecase, dataset in (("flights", "flights"), ("bikeshare", "rentals"))
        for key in days
    }
    assert rows[("flights", days[0])] == 0 < rows[("flights", days[1])]
    assert rows[("bikeshare", days[1])] == 0 < rows[("bikeshare", days[0])] <= 24
    assert report.section("bikeshare").rows["raw weather"] > 0
    [note] = notifications(settings)
    assert [s["usecase"] for s in note["sections"]] == ["flights", "bikeshare"]


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
    assert (wrapper.usecases, wrapper.until, wrapper.run_id) == (
        ("flights", "meters"),
        "extract",
        "one",
    )
    backfills = wrapper.requires()
    assert [(b.usecase, b.until) for b in backfills] == [
        ("flights", "extract"),
        ("meters", "extract"),
    ]
    assert all(isinstance(b, Backfill) for b in backfills)


def test_usecase_option_runs_only_the_named_use_case(make_stage: Callable[..., Settings]) -> None:
    settings = make_stage()

    report = run_pipeline(settings, RunOptions(FIRST, FIRST, usecases=("meters",)))

    assert report.succeeded, report.body()
    assert report.usecases == ["meters"]
    assert clean_keys(settings, "meters", "readings") == ["date=2013-01-01"]
    assert clean_keys(settings, "flights", "flights") == []
    [note] = notifications(settings)
    assert [s["usecase"] for s in note["sections"]] == ["meters"]


def test_the_notification_says_where_each_monitoring_report_is(
    make_stage: Callable[..., Settings],
) -> None:
    # Given a lake where meters has a monitoring report and flights none
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
    assert clean_keys(settings, "meters", "readings") == ["date=2013-01-01"]
    assert clean_keys(settings, "flights", "flights") == ["date=2013-01-01"]


def test_tasks_of_an_unregistered_run_load_the_settings_once(
    make_stage: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given tasks built by hand (no runner registered their run)
    make_stage()
    loads = count_loads(monkeypatch)
    wrapper = RunAll(usecases=("flights", "meters"), start=FIRST, end=LAST, until="clean")

    # When the graph is walked and every target checked, as Luigi's scheduling does
    tasks = [t for backfill in wrapper.requires() for t in backfill.requires()]
    tasks += [e for t in tasks for e in t.requires()]
    checked = [t.complete() for t in tasks]

    # Then the stage was read once for all of them
    assert len(tasks) == 2 * 3 + 3 * 3 and not any(checked)
    assert loads == [1]


# --- failures ----------------------------------------------------------------------------------


def test_a_failure_in_one_use_case_leaves_the_other_done_and_is_reported_once(
    make_stage: Callable[..., Settings], crash: Callable[[str | None], None]
) -> None:
    # Given a run in which cleaning flights on 2013-01-02 crashes
    settings = make_stage()
    crash("clean:flights:2013-01-02")
    first = run_pipeline(settings, RunOptions(FIRST, LAST, workers=2))

    # Then the run failed naming that task; the minimal use case is complete regardless
    assert not first.succeeded
    failed_task = CleanPartition(usecase="flights", partition="2013-01-02")
    [failure] = first.failures
    assert failure.task == "CleanPartition flights 2013-01-02"
    assert "RuntimeError: simulated crash cleaning flights 2013-01-02" in failure.error
    assert clean_keys(settings, "meters", "readings") == keys(
        partitions_between(FIRST, LAST, "day")
    )
    assert clean_keys(settings, "flights", "flights") == ["date=2013-01-01", "date=2013-01-03"]
    # (named as people read them: family, then the significant parameters)
    assert first.not_run == [
        "Backfill flights 2013-01-01 2013-01-03 clean",
        "RunAll flights,meters clean",
    ]
    [note] = notifications(settings)
    assert (note["succeeded"], note["failures"]) == (
        False,
        [{"task": failure.task, "error": failure.error}],
    )
    assert "FAILED: 1 task(s) failed, flights, meters" in note["subject"]

    # When the cause is gone and the same dates run again
    crash(None)
    second = run_pipeline(settings, RunOptions(FIRST, LAST, workers=2))

    # Then only what had not completed runs
    assert second.succeeded, second.body()
    assert records(settings, second.run_id, "done") == {failed_task.task_id}
    assert [n["run_id"] for n in notifications(settings)] == sorted([first.run_id, second.run_id])


def test_an_unreachable_http_source_fails_only_its_extractions(
    make_stage: Callable[..., Settings],
) -> None:
    # Given a weather API that refuses connections, and no retries
    port = closed_port()
    settings = make_stage(
        usecase__flights__sources__weather__base_url=f"http://127.0.0.1:{port}/v1/archive",
        usecase__flights__sources__weather__max_retries=0,
    )

    # When a day runs
    report = run_pipeline(settings, RunOptions(FIRST, FIRST, workers=2))

    # Then the report names the weather extraction and the HTTP error
    assert not report.succeeded
    assert [f.task for f in report.failures] == ["ExtractPartition flights weather 2013-01-01"]
    assert f"GET http://127.0.0.1:{port}/v1/archive" in report.failures[0].error
    # ... while the flights were still extracted and the other use case finished
    assert clean_keys(settings, "flights", "flights") == []
    assert clean_keys(settings, "meters", "readings") == ["date=2013-01-01"]
    assert report.section("meters").complete == 1


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
    assert {r.get("usecase") for r in task_lines} == {"flights", "meters"}
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


def test_embedded_services_come_from_the_use_cases_only_during_the_run(
    make_stage: Callable[..., Settings],
) -> None:
    # Given the flights weather source asking for its embedded server
    settings = make_stage(
        usecase__flights__sources__weather__base_url=f"http://127.0.0.1:{closed_port()}/v1/archive",
        usecase__flights__sources__weather__embedded_server="true",
    )

    with embedded_services(settings, ["flights", "meters"]) as urls:
        [(variable, served)] = urls.items()
        url = served.removesuffix("/v1/archive")
        assert requests.get(f"{url}/health", timeout=5).json() == {"status": "ok"}
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/health", timeout=5)
    # and a use case whose sources ask for none starts none (meters would raise if asked)
    with embedded_services(settings, ["meters"]):
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{url}/health", timeout=5)


def test_an_embedded_server_whose_port_is_taken_binds_a_free_one_for_the_extraction(
    make_stage: Callable[..., Settings],
) -> None:
    # Given the configured port of the flights weather server already taken (another run)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = make_stage(
            usecase__flights__sources__weather__base_url=f"http://127.0.0.1:{port}/v1/archive",
            usecase__flights__sources__weather__embedded_server="true",
        )
        variable = "HEADWATER_USECASE__FLIGHTS__SOURCES__WEATHER__BASE_URL"
        configured = os.environ[variable]

        # When the run starts its servers (before: OSError: [Errno 98] Address already in use)
        with embedded_services(settings, ["flights"]) as urls:
            # Then the server listens on another port, the one the extraction is handed
            served = urls[variable]
            assert os.environ[variable] == served != configured
            assert served.endswith("/v1/archive") and f":{port}/" not in served
            health = served.removesuffix("/v1/archive") + "/health"
            assert requests.get(health, timeout=5).json() == {"status": "ok"}
            assert load_settings().source("flights", "weather").base_url == served  # type: ignore[union-attr]
        # and the configuration is the stage's again after the run
        assert os.environ[variable] == configured

        # When a whole run goes through that server
        report = run_pipeline(settings, RunOptions(FIRST, FIRST, workers=1))

        # Then it succeeds with the weather extracted
        assert report.succeeded, report.body()
        assert report.section("flights").rows["raw weather"] > 0


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
    # Given the minimal use case over days its source has no rows for (as bike share over
    # 2013: before, the training job failed inside the use case's build_lookups)
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
