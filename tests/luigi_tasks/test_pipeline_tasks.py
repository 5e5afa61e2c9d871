"""The Luigi task graph per use case: dependencies, resources, targets, identity (nothing runs)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from headwater.core import layout
from headwater.core.config import Settings
from headwater.core.partitions import parse_partition, partition_of
from headwater.data.lake import MANIFEST
from headwater.data.pipeline import lake_for, usecase_of
from luigi_tasks import context
from luigi_tasks.pipeline import (
    HTTP_RESOURCE,
    Backfill,
    CleanPartition,
    ExtractPartition,
    LakeTarget,
)

SOURCES = {"meters": {"readings"}}  # the test-only use case's one source


@pytest.fixture
def settings(make_minimal_stage: Callable[..., Settings]) -> Settings:
    return make_minimal_stage()


def publish_rows(
    settings: Settings, zone: str, usecase: str, dataset: str, label: str, run_id: str = "r1"
) -> None:
    """Publish a tiny partition through the lake, as the functions do."""
    table = pa.table({"n": pa.array(range(3), pa.int64())})
    key = parse_partition(label, settings.partitioning.grain).key
    lake_for(settings).publish(
        zone,
        layout.dataset(usecase, dataset),
        key,
        [table],
        schema=table.schema,
        source="test",
        run_id=run_id,
    )


def test_clean_partition_requires_one_extraction_per_source_of_its_use_case(
    make_every_stage: Callable[..., Settings],
) -> None:
    # Given every use case enabled, some with several sources
    settings = make_every_stage()
    assert any(len(usecase_of(settings, name).sources) > 1 for name in settings.usecases)
    for usecase in settings.usecases:
        # Given a clean task of a use case carrying its run's id and state directory
        task = CleanPartition(
            usecase=usecase, partition="2013-01-01", run_id="run-7", state_dir="/tmp/state-7"
        )

        # When its dependencies are listed
        required = task.requires()

        # Then there is one extraction per source the use case declares, same partition and run
        assert all(isinstance(t, ExtractPartition) for t in required)
        assert {t.source for t in required} == set(usecase_of(settings, usecase).sources)
        assert {(t.usecase, t.partition, t.run_id, t.state_dir) for t in required} == {
            (usecase, "2013-01-01", "run-7", "/tmp/state-7")
        }


@pytest.mark.parametrize(
    ("source", "resources"),
    [
        ("sky", {HTTP_RESOURCE: 1}),  # kind openmeteo: HTTP
        ("readings", {}),  # kind sql
    ],
)
def test_only_extractions_from_http_kinds_use_the_http_budget(
    make_minimal_stage: Callable[..., Settings], source: str, resources: dict[str, int]
) -> None:
    # Given the minimal use case with an Open-Meteo source beside its SQL one
    make_minimal_stage(
        usecase__meters__sources__sky__kind="openmeteo",
        usecase__meters__sources__sky__base_url="http://127.0.0.1:1/v1/archive",
    )
    task = ExtractPartition(usecase="meters", source=source, partition="2013-01-01")

    assert task.resources == resources


def test_a_new_http_kind_shares_the_budget_without_a_branch_for_it(
    make_minimal_stage: Callable[..., Settings],
) -> None:
    # Given the paginated JSON kind configured as a source of the minimal use case
    make_minimal_stage(
        usecase__meters__sources__feed__kind="json_pages",
        usecase__meters__sources__feed__base_url="http://127.0.0.1:1/v1/feed",
    )

    task = ExtractPartition(usecase="meters", source="feed", partition="2013-01-01")

    assert task.resources == {HTTP_RESOURCE: 1}


def test_extraction_of_an_unconfigured_source_names_the_known_ones(settings: Settings) -> None:
    task = ExtractPartition(usecase="meters", source="tides", partition="2013-01-01")

    message = "source 'tides' of use case 'meters' is not configured (known: readings)"
    with pytest.raises(ValueError, match=re.escape(message)):
        _ = task.resources


@pytest.mark.parametrize(
    ("task", "zone", "usecase", "dataset"),
    [
        (
            ExtractPartition(usecase="meters", source="readings", partition="2013-01-02"),
            layout.RAW,
            "meters",
            "readings",
        ),
        (
            CleanPartition(usecase="meters", partition="2013-01-02"),
            layout.CLEAN,
            "meters",
            "readings",
        ),
    ],
    ids=["extract", "clean"],
)
def test_task_is_complete_once_its_use_cases_partition_is_published(
    settings: Settings,
    task: ExtractPartition | CleanPartition,
    zone: str,
    usecase: str,
    dataset: str,
) -> None:
    # Given nothing in the lake
    target = task.output()
    assert (target.zone, target.usecase, target.dataset) == (zone, usecase, dataset)
    assert target.partition.key == "date=2013-01-02"
    assert not task.complete()

    # When the same dataset of the OTHER use case is published, nothing changes
    other = "other"
    publish_rows(settings, zone, other, dataset, "2013-01-02")
    assert not task.complete()

    # When the partition is published under this use case
    publish_rows(settings, zone, usecase, dataset, "2013-01-02")

    # Then the target exists and the task is complete; neighbours are not
    assert target.exists()
    assert task.complete()
    neighbour = LakeTarget(settings, usecase, zone, dataset, parse_partition("2013-01-03", "day"))
    assert not neighbour.exists()


def test_a_data_file_without_a_manifest_is_not_a_published_partition(settings: Settings) -> None:
    # Given a crashed publish: a data file was written but no manifest
    lake = lake_for(settings)
    dataset = layout.dataset("meters", "readings")
    directory = lake.path(layout.RAW, dataset, "date=2013-01-05")
    lake.filesystem.create_dir(directory, recursive=True)
    pq.write_table(pa.table({"n": [1, 2]}), f"{directory}/part-crashed.parquet")
    target = LakeTarget(
        settings, "meters", layout.RAW, "readings", parse_partition("2013-01-05", "day")
    )

    # Then the target does not exist until the manifest is written
    assert not target.exists()
    publish_rows(settings, layout.RAW, "meters", "readings", "2013-01-05")
    assert target.exists()
    assert MANIFEST in lake.list_dir(layout.RAW, dataset, "date=2013-01-05")


def test_a_partition_published_before_its_period_ended_is_run_again(
    make_minimal_stage: Callable[..., Settings],
) -> None:
    # Given month partitions: this month's (published today, while the month runs) and an old one
    settings = make_minimal_stage(grain="month")
    this_month = partition_of(datetime.now(UTC).date() + timedelta(days=2), "month")
    publish_rows(settings, layout.CLEAN, "meters", "readings", this_month.label)
    publish_rows(settings, layout.CLEAN, "meters", "readings", "2013-01")

    # Then this month's is not complete (the next run replaces it whole), the old one is
    assert not CleanPartition(usecase="meters", partition=this_month.label).complete()
    assert CleanPartition(usecase="meters", partition="2013-01").complete()
    # except within the run that published it ("r1"): its dependants may run
    assert CleanPartition(usecase="meters", partition=this_month.label, run_id="r1").complete()


@pytest.mark.parametrize(("settle_days", "complete"), [(400, False), (0, True)])
def test_settle_hours_hold_a_recent_partition_open_for_late_data(
    make_minimal_stage: Callable[..., Settings], settle_days: int, complete: bool
) -> None:
    # Given a month that ended weeks ago in any time zone, published now
    settings = make_minimal_stage(grain="month", partitioning__settle_hours=24 * settle_days)
    last_month = partition_of(datetime.now(UTC).date() - timedelta(days=35), "month")
    publish_rows(settings, layout.CLEAN, "meters", "readings", last_month.label)

    # Then it is re-run while data may still arrive late; with no settle time it is done
    assert CleanPartition(usecase="meters", partition=last_month.label).complete() is complete


def test_the_run_context_settings_are_used_not_the_stage_file(
    make_minimal_stage: Callable[..., Settings],
) -> None:
    # Given a run registered with month-grain settings while the stage file says day
    month = make_minimal_stage(grain="month")
    make_minimal_stage(grain="day")
    context.register("r-month", month)

    # Then the run's tasks target month partitions; a task of another run reads the stage
    assert (
        CleanPartition(usecase="meters", partition="2013-01", run_id="r-month")
        .output()
        .partition.key
        == "month=2013-01"
    )
    day = CleanPartition(usecase="meters", partition="2013-01-02", run_id="other").output()
    assert day.partition.key == "date=2013-01-02"


@pytest.mark.parametrize(
    ("until", "usecase", "expected"),
    [
        (
            "extract",
            "meters",
            {
                ("ExtractPartition", label, source)
                for label in ("2013-01-30", "2013-01-31", "2013-02-01")
                for source in SOURCES["meters"]
            },
        ),
        (
            "clean",
            "meters",
            {
                ("CleanPartition", label, None)
                for label in ("2013-01-30", "2013-01-31", "2013-02-01")
            },
        ),
    ],
)
def test_backfill_requires_each_partition_of_its_use_case_up_to_the_given_step(
    settings: Settings, until: str, usecase: str, expected: set[tuple[str, str, str | None]]
) -> None:
    # Given a backfill across a month boundary
    backfill = Backfill(
        usecase=usecase,
        start=date(2013, 1, 30),
        end=date(2013, 2, 1),
        until=until,
        run_id="r9",
        state_dir="s9",
    )

    # When its requirements are listed
    required = backfill.requires()

    # Then they are exactly the tasks of that step, one per partition (and source)
    found = {(t.task_family, t.partition, getattr(t, "source", None)) for t in required}
    assert len(required) == len(expected)
    assert found == expected
    assert {(t.usecase, t.run_id, t.state_dir) for t in required} == {(usecase, "r9", "s9")}


def test_backfill_in_month_grain_requires_each_month_touched(
    make_minimal_stage: Callable[..., Settings],
) -> None:
    make_minimal_stage(grain="month")

    required = Backfill(usecase="meters", start=date(2013, 1, 15), end=date(2013, 3, 1)).requires()

    assert [t.partition for t in required] == ["2013-01", "2013-02", "2013-03"]


@pytest.mark.parametrize(
    "make_task",
    [
        lambda run_id, state: ExtractPartition(
            usecase="meters",
            source="readings",
            partition="2013-01-01",
            run_id=run_id,
            state_dir=state,
        ),
        lambda run_id, state: CleanPartition(
            usecase="meters", partition="2013-01-01", run_id=run_id, state_dir=state
        ),
        lambda run_id, state: Backfill(
            usecase="meters",
            start=date(2013, 1, 1),
            end=date(2013, 1, 4),
            run_id=run_id,
            state_dir=state,
        ),
    ],
    ids=["extract", "clean", "backfill"],
)
def test_run_id_and_state_dir_are_not_part_of_a_tasks_identity(
    make_task: Callable[[str, str], ExtractPartition | CleanPartition | Backfill],
) -> None:
    first = make_task("20130101T000000Z-aaaaaa", "var/runs")
    second = make_task("20130102T000000Z-bbbbbb", "/elsewhere/runs")

    assert first.task_id == second.task_id
    assert "aaaaaa" not in first.task_id


def test_use_case_partition_and_source_are_part_of_a_tasks_identity() -> None:
    ids = {
        ExtractPartition(usecase="meters", source="weather", partition="2013-01-01").task_id,
        ExtractPartition(usecase="other", source="weather", partition="2013-01-01").task_id,
        ExtractPartition(usecase="meters", source="readings", partition="2013-01-01").task_id,
        ExtractPartition(usecase="meters", source="weather", partition="2013-01-02").task_id,
        CleanPartition(usecase="meters", partition="2013-01-01").task_id,
        CleanPartition(usecase="other", partition="2013-01-01").task_id,
    }

    assert len(ids) == 6


@pytest.mark.parametrize(
    ("rerun", "extract", "clean"),
    [("", False, False), ("clean", False, True), ("extract", True, True)],
)
def test_a_rerun_makes_its_steps_settled_partitions_missing_until_it_publishes_them(
    settings: Settings, rerun: str, extract: bool, clean: bool
) -> None:
    # Given a settled partition, raw and clean, published by an earlier run
    publish_rows(settings, layout.RAW, "meters", "readings", "2013-01-01", run_id="r1")
    publish_rows(settings, layout.CLEAN, "meters", "readings", "2013-01-01", run_id="r1")

    # When run r2 redoes from ``rerun`` on
    common = {"usecase": "meters", "partition": "2013-01-01", "run_id": "r2", "rerun": rerun}
    extraction = ExtractPartition(source="readings", **common)
    cleaning = CleanPartition(**common)

    # Then its steps from ``rerun`` on are to do again, the earlier ones done
    assert extraction.complete() is not extract
    assert cleaning.complete() is not clean
    assert all(t.rerun == rerun for t in cleaning.requires())
    # and once r2 publishes them, they exist for the rest of the run
    publish_rows(settings, layout.RAW, "meters", "readings", "2013-01-01", run_id="r2")
    publish_rows(settings, layout.CLEAN, "meters", "readings", "2013-01-01", run_id="r2")
    assert extraction.complete() and cleaning.complete()


def test_backfill_passes_the_rerun_step_to_every_partition(settings: Settings) -> None:
    backfill = Backfill(
        usecase="meters", start=date(2013, 1, 1), end=date(2013, 1, 2), rerun="clean"
    )

    assert {t.rerun for t in backfill.requires()} == {"clean"}


def test_a_task_label_is_its_family_then_its_significant_values() -> None:
    import luigi

    from luigi_tasks.pipeline import task_label

    class Sample(luigi.Task):
        usecase = luigi.Parameter()
        count = luigi.IntParameter()
        names = luigi.ListParameter()
        forced = luigi.BoolParameter(default=False)
        dry = luigi.BoolParameter(default=False)
        note = luigi.Parameter(default="")
        hidden = luigi.Parameter(default="x", significant=False)
        ranges = luigi.DictParameter(default={})

    task = Sample(usecase="meters", count=0, names=["a", "b"], forced=True, ranges={"a": 1})

    assert task_label(task) == "Sample meters 0 a,b forced"
