"""The Luigi task graph: dependencies, resources, targets and task identity (nothing is run)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from headwater.config import Settings
from headwater.lake import MANIFEST
from headwater.partitions import parse_partition, partition_of
from headwater.pipeline import CLEAN, RAW, lake_for
from luigi_tasks.pipeline import (
    WEATHER_RESOURCE,
    Backfill,
    CleanPartition,
    ExtractPartition,
    LakeTarget,
)

SOURCES = {"flights", "weather"}


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


def publish_rows(settings: Settings, zone: str, dataset: str, label: str, rows: int = 3) -> None:
    """Publish a tiny partition through the lake, as the functions do."""
    table = pa.table({"n": pa.array(range(rows), pa.int64())})
    key = parse_partition(label, settings.partitioning.grain).key
    lake_for(settings).publish(
        zone, dataset, key, [table], schema=table.schema, source="test", run_id="r1"
    )


@pytest.mark.parametrize("label", ["2013-01-01", "2013-02-28"])
def test_clean_partition_requires_one_extraction_per_source(settings: Settings, label: str) -> None:
    # Given a clean task carrying its run's id and state directory
    task = CleanPartition(partition=label, run_id="run-7", state_dir="/tmp/state-7")

    # When its dependencies are listed
    required = task.requires()

    # Then there is one extraction per source, of the same partition, in the same run
    assert all(isinstance(t, ExtractPartition) for t in required)
    assert sorted(t.source for t in required) == sorted(SOURCES)
    assert {(t.partition, t.run_id, t.state_dir) for t in required} == {
        (label, "run-7", "/tmp/state-7")
    }


@pytest.mark.parametrize(
    ("source", "resources"), [("weather", {WEATHER_RESOURCE: 1}), ("flights", {})]
)
def test_only_the_http_extraction_uses_the_api_budget(
    settings: Settings, source: str, resources: dict[str, int]
) -> None:
    task = ExtractPartition(source=source, partition="2013-01-01")

    assert task.resources == resources


def test_extraction_of_an_unconfigured_source_names_the_known_ones(settings: Settings) -> None:
    task = ExtractPartition(source="tides", partition="2013-01-01")

    known = ", ".join(sorted(settings.sources))
    assert {"flights", "weather"} <= set(settings.sources)
    with pytest.raises(ValueError, match=re.escape(f"'tides' is not configured (known: {known})")):
        _ = task.resources


@pytest.mark.parametrize(
    ("task", "zone", "dataset"),
    [
        (ExtractPartition(source="flights", partition="2013-01-02"), RAW, "flights"),
        (ExtractPartition(source="weather", partition="2013-01-02"), RAW, "weather"),
        (CleanPartition(partition="2013-01-02"), CLEAN, "flights"),
    ],
    ids=["extract-flights", "extract-weather", "clean"],
)
def test_task_is_complete_once_its_manifest_is_published(
    settings: Settings, task: ExtractPartition | CleanPartition, zone: str, dataset: str
) -> None:
    # Given nothing in the lake
    target = task.output()
    assert (target.zone, target.dataset, target.partition.key) == (zone, dataset, "date=2013-01-02")
    assert not target.exists()
    assert not task.complete()

    # When the partition is published
    publish_rows(settings, zone, dataset, "2013-01-02")

    # Then the target exists and the task is complete; neighbours are not
    assert target.exists()
    assert task.complete()
    assert not LakeTarget(zone, dataset, parse_partition("2013-01-03", "day")).exists()


def test_a_data_file_without_a_manifest_is_not_a_published_partition(settings: Settings) -> None:
    # Given a crashed publish: a data file was written but no manifest
    lake = lake_for(settings)
    directory = lake.path(RAW, "flights", "date=2013-01-05")
    lake.filesystem.create_dir(directory, recursive=True)
    pq.write_table(pa.table({"n": [1, 2]}), f"{directory}/part-crashed.parquet")
    target = LakeTarget(RAW, "flights", parse_partition("2013-01-05", "day"))

    # Then the target does not exist until the manifest is written
    assert lake.list_dir(RAW, "flights", "date=2013-01-05") == ["part-crashed.parquet"]
    assert not target.exists()

    publish_rows(settings, RAW, "flights", "2013-01-05")

    assert target.exists()
    assert MANIFEST in lake.list_dir(RAW, "flights", "date=2013-01-05")


def test_a_partition_published_before_its_period_ended_is_run_again(
    make_settings: Callable[..., Settings],
) -> None:
    # Given month partitions: this month's (published today, while the month runs) and an old one
    settings = make_settings(grain="month")
    this_month = partition_of(datetime.now(UTC).date() + timedelta(days=2), "month")
    publish_rows(settings, CLEAN, "flights", this_month.label)
    publish_rows(settings, CLEAN, "flights", "2013-01")

    # Then this month's is not complete (the next run replaces it whole), the old one is
    assert not CleanPartition(partition=this_month.label).complete()
    assert CleanPartition(partition="2013-01").complete()
    # except within the run that published it ("r1"): its dependants may run
    assert CleanPartition(partition=this_month.label, run_id="r1").complete()


def test_settle_hours_hold_a_recent_partition_open_for_late_data(
    make_settings: Callable[..., Settings],
) -> None:
    # Given a month that ended weeks ago in any time zone, published now, and a stage
    # expecting data 400 days late
    settings = make_settings(grain="month", partitioning__settle_hours=24 * 400)
    last_month = partition_of(datetime.now(UTC).date() - timedelta(days=35), "month")
    publish_rows(settings, CLEAN, "flights", last_month.label)

    # Then it is re-run until then; with no settle time it is done
    assert not CleanPartition(partition=last_month.label).complete()
    make_settings(grain="month", partitioning__settle_hours=0)
    assert CleanPartition(partition=last_month.label).complete()


def test_month_grain_targets_month_partitions(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(grain="month")
    task = CleanPartition(partition="2013-01")

    assert task.output().partition.key == "month=2013-01"
    assert not task.complete()
    publish_rows(settings, CLEAN, "flights", "2013-01")
    assert task.complete()


@pytest.mark.parametrize(
    ("until", "expected"),
    [
        (
            "extract",
            {
                ("ExtractPartition", label, source)
                for label in ("2013-01-30", "2013-01-31", "2013-02-01")
                for source in sorted(SOURCES)
            },
        ),
        (
            "clean",
            {
                ("CleanPartition", label, None)
                for label in ("2013-01-30", "2013-01-31", "2013-02-01")
            },
        ),
    ],
)
def test_backfill_requires_each_partition_up_to_the_given_step(
    settings: Settings, until: str, expected: set[tuple[str, str, str | None]]
) -> None:
    # Given a backfill across a month boundary
    backfill = Backfill(
        start=date(2013, 1, 30), end=date(2013, 2, 1), until=until, run_id="r9", state_dir="s9"
    )

    # When its requirements are listed
    required = backfill.requires()

    # Then they are exactly the tasks of that step, one per partition (and source)
    found = {(t.task_family, t.partition, getattr(t, "source", None)) for t in required}
    assert len(required) == len(expected)
    assert found == expected
    assert {(t.run_id, t.state_dir) for t in required} == {("r9", "s9")}


def test_backfill_in_month_grain_requires_each_month_touched(
    make_settings: Callable[..., Settings],
) -> None:
    make_settings(grain="month")

    required = Backfill(start=date(2013, 1, 15), end=date(2013, 3, 1)).requires()

    assert [t.partition for t in required] == ["2013-01", "2013-02", "2013-03"]


@pytest.mark.parametrize(
    "make_task",
    [
        lambda run_id, state: ExtractPartition(
            source="weather", partition="2013-01-01", run_id=run_id, state_dir=state
        ),
        lambda run_id, state: CleanPartition(
            partition="2013-01-01", run_id=run_id, state_dir=state
        ),
        lambda run_id, state: Backfill(
            start=date(2013, 1, 1), end=date(2013, 1, 4), run_id=run_id, state_dir=state
        ),
    ],
    ids=["extract", "clean", "backfill"],
)
def test_run_id_and_state_dir_are_not_part_of_a_tasks_identity(
    make_task: Callable[[str, str], ExtractPartition | CleanPartition | Backfill],
) -> None:
    first = make_task("20130101T000000Z-aaaaaa", "var/runs")
    second = make_task("20130102T000000Z-bbbbbb", "/elsewhere/runs")

    assert first.run_id != second.run_id
    assert first.task_id == second.task_id
    assert "aaaaaa" not in first.task_id


def test_partition_and_source_are_part_of_a_tasks_identity() -> None:
    ids = {
        ExtractPartition(source="weather", partition="2013-01-01").task_id,
        ExtractPartition(source="flights", partition="2013-01-01").task_id,
        ExtractPartition(source="weather", partition="2013-01-02").task_id,
        CleanPartition(partition="2013-01-01").task_id,
    }

    assert len(ids) == 4
