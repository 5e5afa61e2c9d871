"""Collecting captured predictions into lake partitions, deduplicated and verified."""

from __future__ import annotations

import json
import os
import time
from dataclasses import fields, replace
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from headwater.core import layout
from headwater.core.partitions import Partition
from headwater.core.usecase import OutcomeSpec
from headwater.data.lake import LakeError, open_lake
from headwater.monitoring.collect import (
    SCHEMA,
    captured_partitions,
    collect_predictions,
    read_predictions,
)
from headwater.serving.capture import CaptureRecord

DAY = Partition(date(2013, 3, 1), date(2013, 3, 2), "day")
TZ = "America/New_York"  # 2013-03-01 local = 05:00 UTC on the 1st to 05:00 UTC on the 2nd


def record(
    i: int, served_at: str = "2013-03-01T12:00:00.000000+00:00", **kw: object
) -> CaptureRecord:
    body = dict(
        request_id=f"r{i}",
        instance=0,
        usecase="meters",
        model_version="v1",
        served_at=served_at,
        features={"meter": "m1", "distance": float(i)},
        probability=0.1 * (i % 10),
        decision=False,
        estimate=3.5,
        threshold=0.5,
        defaulted=["weather"],
        unseen=[],
        out_of_range=[],
        latency_ms=0.4,
    )
    body.update(kw)
    return CaptureRecord(**body)


def write(root: Path, source: str, day: str, hour: str, name: str, lines: list[str]) -> Path:
    folder = root.joinpath(*layout.capture_parts(source, day, hour))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("".join(line + "\n" for line in lines))
    return path


@pytest.fixture
def lake(tmp_path: Path):  # noqa: ANN201
    return open_lake(f"file://{tmp_path}/lake")


def root_of(lake) -> Path:  # noqa: ANN001
    return Path(lake.root)


def test_the_schema_has_a_column_per_record_field() -> None:
    assert SCHEMA.names == [f.name for f in fields(CaptureRecord)]


def test_collection_keeps_the_partitions_records_once_and_round_trips_them(lake) -> None:  # noqa: ANN001
    root = root_of(lake)
    inside = [record(i) for i in range(5)]
    # Given two closed spool files (one repeating a record), a Firehose object with another
    # use case's line, and records outside the local day
    write(root, "meters", "2013-03-01", "12", "a.jsonl", [r.to_json() for r in inside[:3]])
    write(root, "meters", "2013-03-01", "12", "b.jsonl", [r.to_json() for r in inside[2:]])
    other = replace(record(9), usecase="other")
    write(root, "_stream", "2013-03-01", "13", "obj-1", [other.to_json()])
    early = record(7, served_at="2013-03-01T04:59:59.000000+00:00")  # 23:59 local, Feb 28
    late = record(8, served_at="2013-03-02T04:59:59.000000+00:00")  # 23:59 local, Mar 1
    write(root, "meters", "2013-03-01", "04", "c.jsonl", [early.to_json()])
    write(root, "meters", "2013-03-02", "04", "d.jsonl", [late.to_json()])
    # When the day is collected
    collected = collect_predictions(lake, "meters", DAY, TZ, run_id="run1")
    # Then every record of the day, once, comes back exactly through the manifest
    assert collected.duplicates == 1 and collected.kept == 6
    back = read_predictions(lake, "meters", DAY.key)
    assert sorted(r.request_id for r in back) == sorted([*(r.request_id for r in inside), "r8"])
    assert {r.request_id: r for r in back}["r3"] == inside[3]
    manifest = lake.manifest(layout.PREDICTIONS, "meters", DAY.key)
    assert manifest.rows == 6 and manifest.checksum.startswith("sha256:")
    assert manifest.extra["duplicates"] == 1


def test_a_rerun_publishes_the_same_rows_and_no_duplicates(lake) -> None:  # noqa: ANN001
    root = root_of(lake)
    write(root, "meters", "2013-03-01", "12", "a.jsonl", [record(i).to_json() for i in range(4)])
    first = collect_predictions(lake, "meters", DAY, TZ, run_id="run1")
    # a crash after the data file, before the manifest: a stray part file
    stray = Path(lake.partition_dir(layout.PREDICTIONS, "meters", DAY.key)) / "part-x.parquet"
    stray.write_bytes(b"half")
    again = collect_predictions(lake, "meters", DAY, TZ, run_id="run2")
    assert again.kept == first.kept == 4
    assert len(read_predictions(lake, "meters", DAY.key)) == 4
    files = os.listdir(stray.parent)
    assert "part-x.parquet" not in files and sum(f.endswith(".parquet") for f in files) == 1


def test_the_role_keeps_a_shadow_record_beside_production(lake) -> None:  # noqa: ANN001
    root = root_of(lake)
    production, shadow = record(1), replace(record(1), role="shadow", model_version="v2")
    write(root, "meters", "2013-03-01", "12", "a.jsonl", [production.to_json(), shadow.to_json()])
    assert collect_predictions(lake, "meters", DAY, TZ, run_id="r").kept == 2


def test_a_file_being_written_waits_and_a_killed_writers_file_is_read(lake) -> None:  # noqa: ANN001
    root = root_of(lake)
    lines = [record(i).to_json() for i in range(3)]
    # Given a file still open (being written) whose last line is torn
    path = write(root, "meters", "2013-03-01", "12", "w.jsonl.open", [*lines, '{"capture": "head'])
    # Then it is not read while fresh
    fresh = collect_predictions(lake, "meters", DAY, TZ, run_id="r1")
    assert fresh.kept == 0 and fresh.skipped_open == 1
    # And once stale (its writer is gone), its whole lines are, the torn one counted
    old = time.time() - 7200
    os.utime(path, (old, old))
    stale = collect_predictions(lake, "meters", DAY, TZ, run_id="r2")
    assert stale.kept == 3 and stale.torn == 1 and stale.skipped_open == 0


def test_reading_verifies_the_checksum(lake) -> None:  # noqa: ANN001
    write(root_of(lake), "meters", "2013-03-01", "12", "a.jsonl", [record(1).to_json()])
    manifest = collect_predictions(lake, "meters", DAY, TZ, run_id="r").manifest
    data = Path(lake.partition_dir(layout.PREDICTIONS, "meters", DAY.key)) / manifest.file
    data.write_bytes(data.read_bytes()[:-1] + b"X")
    with pytest.raises(LakeError, match="checksum mismatch"):
        read_predictions(lake, "meters", DAY.key)


def test_an_empty_period_publishes_an_empty_partition(lake) -> None:  # noqa: ANN001
    collected = collect_predictions(lake, "meters", DAY, TZ, run_id="r")
    assert collected.kept == 0 and collected.manifest.rows == 0
    assert read_predictions(lake, "meters", DAY.key) == []
    assert json.loads(json.dumps(collected.to_dict()))["files"] == 0


def hour_of(echo: dict) -> datetime:
    return datetime.fromisoformat(echo["hour"])


OUTCOME = OutcomeSpec(
    key_columns=("hour",),
    key_of_request=lambda echo: {"hour": hour_of(echo)},
    event_time=hour_of,
    known_after=timedelta(hours=1),
)
NOVEMBER = Partition(date(2013, 11, 1), date(2013, 12, 1), "month")
TODAY = Partition(date(2026, 12, 1), date(2027, 1, 1), "month")


def test_a_record_served_today_for_an_event_of_2013_11_lands_in_2013_11(lake) -> None:  # noqa: ANN001
    # Given a record served in 2026-12 for an hour of 2013-11, and one whose echo names no event
    root = root_of(lake)
    served = "2026-12-07T04:00:00.000000+00:00"
    event = record(1, served_at=served, echo={"hour": "2013-11-05T08:00:00"})
    no_event = record(2, served_at=served)
    write(root, "meters", "2026-12-07", "04", "a.jsonl", [event.to_json(), no_event.to_json()])
    # When the use case's event partitions are found and collected
    parts = captured_partitions(lake, "meters", "month", TZ, OUTCOME)
    november = collect_predictions(lake, "meters", NOVEMBER, TZ, run_id="r", outcome=OUTCOME)
    today = collect_predictions(lake, "meters", TODAY, TZ, run_id="r", outcome=OUTCOME)
    # Then the event's record is in 2013-11, the other where it was served
    assert [p.label for p in parts] == ["2013-11", "2026-12"]
    assert read_predictions(lake, "meters", "month=2013-11") == [event]
    assert read_predictions(lake, "meters", "month=2026-12") == [no_event]
    assert (november.files, november.kept, today.kept) == (1, 1, 1)
    # and without an outcome both are filed by the time they were served
    assert [p.label for p in captured_partitions(lake, "meters", "month")] == ["2026-12"]
    served_only = collect_predictions(lake, "meters", NOVEMBER, TZ, run_id="r2")
    assert served_only.kept == 0
