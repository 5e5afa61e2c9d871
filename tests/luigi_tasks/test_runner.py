"""End to end with real Luigi: local scheduler, in-process functions, the demo SQLite source and
the weather server on loopback. Each run writes its lake, run records and outbox under tmp_path."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import structlog

import functions.clean
import functions.extract
from headwater.config import Settings
from headwater.logs import configure_logging
from headwater.partitions import Partition, partitions_between
from headwater.pipeline import CLEAN, QUARANTINE, RAW, lake_for
from luigi_tasks.pipeline import Backfill, CleanPartition, ExtractPartition
from luigi_tasks.runner import (
    RunOptions,
    configure_luigi,
    embedded_services,
    new_run_id,
    run_pipeline,
)

pytestmark = pytest.mark.slow

FIRST, LAST = date(2013, 1, 1), date(2013, 1, 4)
LABELS = ["2013-01-01", "2013-01-02", "2013-01-03", "2013-01-04"]
STATIONS = 3  # EWR, JFK, LGA: one weather row per station and local hour
DIRTY = {"2013-01-02": 3, "2013-01-04": 2}  # rows the dirty_db fixture breaks, per day
CRASH_ENV = "HW_TEST_CRASH"  # read by the patched functions, so forked workers see it too


# --- helpers -----------------------------------------------------------------------------------


def source_rows(db_url: str, first: date, last: date) -> int:
    """Count the flights of first..last straight from the source database."""
    with closing(sqlite3.connect(db_url.removeprefix("sqlite:///"))) as conn:
        query = "SELECT COUNT(*) FROM flights WHERE flight_date BETWEEN ? AND ?"
        return conn.execute(query, (first.isoformat(), last.isoformat())).fetchone()[0]


def notifications(settings: Settings) -> list[dict[str, Any]]:
    """Every notification in the outbox (one JSON file per run)."""
    outbox = Path(settings.notify.outbox)
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(outbox.iterdir())]


def records(settings: Settings, run_id: str, kind: str) -> set[str]:
    """The task ids a run recorded as done or failed."""
    return {p.stem for p in (Path(settings.run.state_dir) / run_id / kind).glob("*.json")}


def manifests(settings: Settings) -> dict[tuple[str, str, str], tuple[str, str, str]]:
    """(zone, dataset, partition) -> (data file, created_at, run_id) for every published one."""
    lake = lake_for(settings)
    out = {}
    for zone, dataset in [
        (RAW, "flights"),
        (RAW, "weather"),
        (QUARANTINE, "flights"),
        (QUARANTINE, "weather"),
        (CLEAN, "flights"),
    ]:
        for key in lake.partitions(zone, dataset):
            m = lake.manifest(zone, dataset, key)
            assert m is not None
            out[(zone, dataset, key)] = (m.file, m.created_at, m.run_id)
    return out


def assert_clean_matches_source(
    settings: Settings, db_url: str, parts: list[Partition]
) -> tuple[int, int]:
    """Each clean partition holds the source's flights minus the quarantined ones, in one file.

    Returns the total clean and quarantined rows.
    """
    lake = lake_for(settings)
    assert lake.partitions(CLEAN, "flights") == [p.key for p in parts]
    clean_total = quarantined_total = 0
    for part in parts:
        table, manifest = lake.read(CLEAN, "flights", part.key)
        quarantine = lake.manifest(QUARANTINE, "flights", part.key)
        assert quarantine is not None
        expected = source_rows(db_url, part.start, part.end - timedelta(days=1))
        assert table.num_rows == expected - quarantine.rows, part.key
        assert manifest.extra["reconciliation"]["flights"]["in"] == expected
        data_files = [
            n for n in lake.list_dir(CLEAN, "flights", part.key) if n.endswith(".parquet")
        ]
        assert data_files == [manifest.file]
        clean_total += table.num_rows
        quarantined_total += quarantine.rows
    return clean_total, quarantined_total


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def task_ids(*tasks: Any) -> list[str]:
    return sorted(t.task_id for t in tasks)


BACKFILL_ID = Backfill(start=FIRST, end=LAST).task_id


@pytest.fixture
def dirty_db(demo_db: str, tmp_path: Path) -> str:
    """A copy of the demo source with a few flights that break the raw contract."""
    path = tmp_path / "dirty.sqlite"
    shutil.copyfile(demo_db.removeprefix("sqlite:///"), path)
    breakages = {"origin = 'XXX'": "2013-01-02", "distance = -1": "2013-01-04"}
    with closing(sqlite3.connect(path)) as conn, conn:
        for change, day in breakages.items():
            rows = DIRTY[day]
            conn.execute(
                f"UPDATE flights SET {change} WHERE rowid IN "
                "(SELECT rowid FROM flights WHERE flight_date = ? LIMIT ?)",
                (day, rows),
            )
    return f"sqlite:///{path}"


@pytest.fixture
def settings(make_settings: Callable[..., Settings], dirty_db: str) -> Settings:
    return make_settings(SOURCES__FLIGHTS__URL=dirty_db)


@pytest.fixture
def crash(monkeypatch: pytest.MonkeyPatch) -> Callable[[str | None], None]:
    """Make the functions raise for the step named in $HW_TEST_CRASH, e.g. ``clean:2013-01-03``.

    The handlers bound the step functions at import, so those names are patched; an environment
    variable (not a closure) says what to break, so forked Luigi workers obey it too.
    """
    real_clean = functions.clean.clean_partition
    real_extract = functions.extract.extract_partition

    def clean_or_crash(settings: Settings, partition: Partition, run_id: str, **kw: Any) -> Any:
        if os.environ.get(CRASH_ENV) == f"clean:{partition.label}":
            raise RuntimeError(f"simulated crash cleaning {partition.label}")
        return real_clean(settings, partition, run_id, **kw)

    def extract_or_crash(
        settings: Settings, source: str, partition: Partition, run_id: str, **kw: Any
    ) -> Any:
        if os.environ.get(CRASH_ENV) == f"extract:{source}:{partition.label}":
            raise RuntimeError(f"simulated crash extracting {source} {partition.label}")
        return real_extract(settings, source, partition, run_id, **kw)

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


# --- a clean run -------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_backfill_publishes_every_partition_and_notifies_once(
    settings: Settings, dirty_db: str, workers: int
) -> None:
    # Given an empty lake and four days of flights in the source, a few of them broken
    parts = partitions_between(FIRST, LAST, "day")

    # When the pipeline runs for those days
    report = run_pipeline(settings, RunOptions(FIRST, LAST, workers=workers))

    # Then every task succeeded and the lake holds each day's flights, less the quarantined
    assert report.succeeded, report.body()
    assert (report.failures, report.not_run, report.partitions) == ([], [], 4)
    clean, quarantined = assert_clean_matches_source(settings, dirty_db, parts)
    assert quarantined == sum(DIRTY.values())
    assert clean + quarantined == source_rows(dirty_db, FIRST, LAST)
    assert records(settings, report.run_id, "failed") == set()
    assert len(records(settings, report.run_id, "done")) == 4 * 3  # 2 extractions + 1 clean a day
    # And exactly one notification tells the same story
    [note] = notifications(settings)
    assert note["run_id"] == report.run_id
    assert note["succeeded"] is True
    assert note["rows"] == {
        "clean": clean,
        "raw flights": source_rows(dirty_db, FIRST, LAST),
        "raw weather": STATIONS * 24 * 4,
    }
    assert note["quarantined"] == quarantined
    assert note["failures"] == [] and note["not_run"] == []
    assert "succeeded: 4 partitions, 2013-01-01..2013-01-04" in note["subject"]


def test_month_grain_publishes_the_whole_month(
    make_settings: Callable[..., Settings], demo_db: str
) -> None:
    # Given month partitions, and a range inside January
    settings = make_settings(grain="month")

    # When the pipeline runs
    report = run_pipeline(settings, RunOptions(date(2013, 1, 10), date(2013, 1, 20)))

    # Then the one partition holds all of January
    assert report.succeeded, report.body()
    assert report.partitions == 1
    [part] = partitions_between(date(2013, 1, 10), date(2013, 1, 20), "month")
    clean, quarantined = assert_clean_matches_source(settings, demo_db, [part])
    assert clean + quarantined == source_rows(demo_db, date(2013, 1, 1), date(2013, 1, 31))
    assert report.rows["raw weather"] == STATIONS * 24 * 31
    [note] = notifications(settings)
    assert (note["run_id"], note["rows"]["clean"]) == (report.run_id, clean)


def test_an_open_month_is_replaced_whole_by_each_run_and_the_runs_succeed(
    make_settings: Callable[..., Settings], demo_db: str
) -> None:
    # Given a stage that waits 20 years for late data, so January 2013 is still "open"
    settings = make_settings(grain="month", partitioning__settle_hours=24 * 365 * 20)
    options = RunOptions(date(2013, 1, 10), date(2013, 1, 20))
    [part] = partitions_between(date(2013, 1, 10), date(2013, 1, 20), "month")

    # When the daily run runs twice
    first = run_pipeline(settings, options)
    manifest = lake_for(settings).manifest(CLEAN, "flights", part.key)
    second = run_pipeline(settings, options)

    # Then both succeed, the second extracts and cleans the partition again (not skipped),
    # and the lake holds it once: replaced whole, no duplicates
    assert first.succeeded and second.succeeded, second.body()
    assert len(records(settings, second.run_id, "done")) == 3  # 2 extractions + 1 clean
    assert lake_for(settings).manifest(CLEAN, "flights", part.key).run_id == second.run_id
    assert manifest.run_id == first.run_id
    clean, quarantined = assert_clean_matches_source(settings, demo_db, [part])
    assert clean + quarantined == source_rows(demo_db, date(2013, 1, 1), date(2013, 1, 31))


def test_extract_only_run_leaves_the_clean_zone_empty(settings: Settings, dirty_db: str) -> None:
    report = run_pipeline(settings, RunOptions(FIRST, FIRST, until="extract"))

    assert report.succeeded, report.body()
    lake = lake_for(settings)
    assert lake.partitions(RAW, "flights") == lake.partitions(RAW, "weather") == ["date=2013-01-01"]
    assert lake.partitions(CLEAN, "flights") == []
    assert report.rows == {"raw flights": source_rows(dirty_db, FIRST, FIRST), "raw weather": 72}


# --- JSON logs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("crash_step", [None, "clean:2013-01-01"], ids=["success", "failure"])
def test_every_headwater_log_line_is_json_with_run_id_and_partition(
    settings: Settings,
    json_log: Path,
    crash: Callable[[str | None], None],
    crash_step: str | None,
) -> None:
    # Given JSON logging into a file (and, for one case, a clean step that fails)
    crash(crash_step)

    # When a one-day run goes through forked workers
    report = run_pipeline(settings, RunOptions(FIRST, FIRST, workers=2))

    # Then every line is JSON; Headwater's carry the run id, and task lines the partition
    assert report.succeeded is (crash_step is None)
    lines = json_log.read_text(encoding="utf-8").splitlines()
    parsed = [json.loads(line) for line in lines]
    ours = [r for r in parsed if r["logger"].startswith("headwater")]
    assert {r["run_id"] for r in ours} == {report.run_id}
    task_lines = [r for r in ours if "task" in r]
    assert {r.get("partition") for r in task_lines} == {"2013-01-01"}
    events = {r["event"] for r in task_lines}
    assert {"extract done", "extracted"} <= events
    if crash_step is None:
        assert {"clean done", "cleaned"} <= events
    else:
        [failed] = [r for r in task_lines if r["event"] == "task failed"]
        assert "simulated crash cleaning 2013-01-01" in failed["error"]
    assert {"run started", "run finished"} <= {r["event"] for r in ours}


# --- failures, reruns and idempotency ----------------------------------------------------------


@pytest.mark.parametrize(
    ("crash_step", "failed_task", "not_run", "rerun"),
    [
        (
            "clean:2013-01-03",
            CleanPartition(partition="2013-01-03"),
            [BACKFILL_ID],
            task_ids(CleanPartition(partition="2013-01-03")),
        ),
        (
            "extract:flights:2013-01-03",
            ExtractPartition(source="flights", partition="2013-01-03"),
            sorted([BACKFILL_ID, CleanPartition(partition="2013-01-03").task_id]),
            task_ids(
                CleanPartition(partition="2013-01-03"),
                ExtractPartition(source="flights", partition="2013-01-03"),
            ),
        ),
    ],
    ids=["clean-crash", "extract-crash"],
)
def test_a_failed_run_is_reported_once_and_a_rerun_finishes_without_duplicates(
    settings: Settings,
    dirty_db: str,
    crash: Callable[[str | None], None],
    crash_step: str,
    failed_task: CleanPartition | ExtractPartition,
    not_run: list[str],
    rerun: list[str],
) -> None:
    parts = partitions_between(FIRST, LAST, "day")
    # Given a run in which one step of 2013-01-03 crashes
    crash(crash_step)
    first = run_pipeline(settings, RunOptions(FIRST, LAST, workers=2))

    # Then it is reported failed, naming that task, its error and the tasks it held back
    assert not first.succeeded
    [failure] = first.failures
    assert failure.task == failed_task.task_id
    assert "RuntimeError: simulated crash" in failure.error
    assert first.not_run == not_run
    [note] = notifications(settings)
    assert (note["run_id"], note["succeeded"]) == (first.run_id, False)
    assert note["failures"] == [{"task": failure.task, "error": failure.error}]
    assert note["not_run"] == not_run
    assert "FAILED: 1 task(s) failed" in note["subject"]
    # ... and the other three days were published
    lake = lake_for(settings)
    assert lake.partitions(CLEAN, "flights") == [
        "date=2013-01-01",
        "date=2013-01-02",
        "date=2013-01-04",
    ]
    before = manifests(settings)

    # When the cause is gone and the same dates run again
    crash(None)
    second = run_pipeline(settings, RunOptions(FIRST, LAST, workers=2))

    # Then it succeeds, running only what had not completed
    assert second.succeeded, second.body()
    assert sorted(records(settings, second.run_id, "done")) == rerun
    after = manifests(settings)
    assert {k: after[k] for k in before} == before  # published partitions were left alone
    assert {after[k][2] for k in after.keys() - before.keys()} == {second.run_id}
    assert all(k[2] == "date=2013-01-03" for k in after.keys() - before.keys())
    # ... and the lake holds every flight once
    clean, quarantined = assert_clean_matches_source(settings, dirty_db, parts)
    assert quarantined == sum(DIRTY.values())
    assert clean + quarantined == source_rows(dirty_db, FIRST, LAST)
    assert (second.rows["clean"], second.quarantined) == (clean, quarantined)
    # ... with one notification per run
    assert [n["run_id"] for n in notifications(settings)] == sorted([first.run_id, second.run_id])


def test_an_unreachable_weather_api_fails_the_weather_extractions(
    make_settings: Callable[..., Settings],
) -> None:
    # Given a weather API that refuses connections, and no retries
    port = closed_port()
    settings = make_settings(
        SOURCES__WEATHER__BASE_URL=f"http://127.0.0.1:{port}/v1/archive",
        SOURCES__WEATHER__MAX_RETRIES=0,
    )
    last = FIRST + timedelta(days=1)

    # When two days run
    report = run_pipeline(settings, RunOptions(FIRST, last, workers=2))

    # Then the report names both weather extractions and the HTTP error
    assert not report.succeeded
    weather = [ExtractPartition(source="weather", partition=d) for d in LABELS[:2]]
    assert sorted(f.task for f in report.failures) == task_ids(*weather)
    for failure in report.failures:
        assert f"GET http://127.0.0.1:{port}/v1/archive" in failure.error
        assert "failed after 1 attempt(s)" in failure.error
    assert report.not_run == sorted(
        [Backfill(start=FIRST, end=last).task_id]
        + task_ids(*(CleanPartition(partition=d) for d in LABELS[:2]))
    )
    # ... while the flights were still extracted, and nothing was cleaned
    lake = lake_for(settings)
    assert lake.partitions(RAW, "flights") == ["date=2013-01-01", "date=2013-01-02"]
    assert lake.partitions(RAW, "weather") == lake.partitions(CLEAN, "flights") == []
    [note] = notifications(settings)
    assert note["succeeded"] is False
    assert {f["task"] for f in note["failures"]} == set(task_ids(*weather))


# --- the runner's parts ------------------------------------------------------------------------


def test_configure_luigi_sets_the_api_budget_from_settings(
    make_settings: Callable[..., Settings],
) -> None:
    from luigi.configuration import get_config

    settings = make_settings(RUN__API_CONCURRENCY=3)

    configure_luigi(settings)

    assert get_config().getint("resources", "http_api") == 3


def test_embedded_services_serve_the_weather_api_only_during_the_run(
    make_settings: Callable[..., Settings],
) -> None:
    port = closed_port()
    url = f"http://127.0.0.1:{port}"
    settings = make_settings(
        SOURCES__WEATHER__BASE_URL=f"{url}/v1/archive", SOURCES__WEATHER__EMBEDDED_SERVER="true"
    )

    with embedded_services(settings):
        assert requests.get(f"{url}/health", timeout=5).json() == {"status": "ok"}
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/health", timeout=5)


def test_run_ids_sort_by_time_and_are_unique() -> None:
    from datetime import UTC, datetime

    early = new_run_id(datetime(2013, 1, 1, 2, 15, tzinfo=UTC))
    late = new_run_id(datetime(2013, 1, 1, 2, 16, tzinfo=UTC))

    assert early.startswith("20130101T021500Z-")
    assert early < late
    assert len({new_run_id() for _ in range(50)}) == 50
