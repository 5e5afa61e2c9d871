"""CollectPredictions and MonitorPartition: through Luigi, idempotently, atomically, verified."""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import luigi
import numpy as np
import pyarrow as pa
import pytest

from headwater.core import layout
from headwater.core.config import Settings, load_settings
from headwater.core.partitions import parse_partition
from headwater.data.lake import LakeError, open_lake
from headwater.model.comparison import signed
from headwater.monitoring.collect import read_predictions
from headwater.monitoring.monitor import PartitionMonitoring, ServedMonitoring, summary_lines
from headwater.monitoring.published import latest_comparison, publish_monitoring, read_monitoring
from headwater.monitoring.shadow import ShadowComparison, ShadowVerdict
from headwater.registry.registry import Registry
from headwater.serving.capture import CaptureRecord
from headwater.serving.store import ProductionPointer
from luigi_tasks.monitoring import (
    CollectCaptured,
    CollectPredictions,
    MonitoringReport,
    MonitorPartition,
)
from luigi_tasks.runner import RunOptions, live_summary
from luigi_tasks.training import RunAll


def stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capture: bool) -> Settings:
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    (config / "test.toml").write_text(
        f"""
usecases = ["flights"]
[lake]
uri = "file://{tmp_path}/lake"
[partitioning]
grain = "day"
[api.capture]
enabled = {"true" if capture else "false"}
[usecase.flights]
""",
        encoding="utf-8",
    )
    monkeypatch.setenv("HEADWATER_CONFIG_DIR", str(config))
    monkeypatch.setenv("HEADWATER_STAGE", "test")
    return load_settings()


def line(i: int, served_at: str) -> str:
    return CaptureRecord(
        request_id=f"r{i}",
        instance=0,
        usecase="flights",
        model_version="v1",
        served_at=served_at,
        features={"carrier": "UA"},
        probability=0.2,
        decision=False,
        estimate=1.0,
        threshold=0.5,
    ).to_json()


def spool(root: Path, day: str, hour: str, name: str, lines: list[str]) -> None:
    folder = root.joinpath(*layout.capture_parts("flights", day, hour))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(x + "\n" for x in lines))


def test_collect_captured_publishes_each_captured_partition_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given capture on two (New York) days, one line delivered twice
    settings = stage(tmp_path, monkeypatch, capture=True)
    root = tmp_path / "lake"
    spool(root, "2013-03-01", "15", "a.jsonl", [line(1, "2013-03-01T15:00:00.000000+00:00")] * 2)
    spool(root, "2013-03-02", "15", "a.jsonl", [line(2, "2013-03-02T15:00:00.000000+00:00")])
    # When the wrapper runs, twice
    for run_id in ("run1", "run2"):
        task = CollectCaptured(usecase="flights", run_id=run_id, state_dir=str(tmp_path / "runs"))
        assert luigi.build([task], local_scheduler=True, workers=1)
    # Then the days with records hold them once each, and only those days are collected
    # (records without an event in their echo are filed by the local day they were served)
    lake = open_lake(settings.lake.uri)
    published = lake.partitions(layout.PREDICTIONS, "flights")
    assert published == ["date=2013-03-01", "date=2013-03-02"]
    assert [r.request_id for r in read_predictions(lake, "flights", "date=2013-03-01")] == ["r1"]
    assert [r.request_id for r in read_predictions(lake, "flights", "date=2013-03-02")] == ["r2"]
    # and a settled partition is not collected again (published after its day ended)
    assert CollectPredictions(usecase="flights", partition="2013-03-01").complete()
    # until a capture file changes after it was collected (a replay of a past day)
    later = root.joinpath(*layout.capture_parts("flights", "2013-03-01", "15"), "a.jsonl")
    os.utime(later, (time.time() + 5, time.time() + 5))
    assert not CollectPredictions(usecase="flights", partition="2013-03-01").complete()


@pytest.mark.parametrize("capture", [True, False])
def test_a_full_run_collects_only_when_capture_is_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capture: bool
) -> None:
    stage(tmp_path, monkeypatch, capture=capture)
    wrapper = RunAll(usecases=("flights",), start=date(2013, 1, 1), end=date(2013, 1, 31))
    families = [t.task_family for t in wrapper.requires()]
    assert ("CollectCaptured" in families) is capture
    assert "CollectCaptured" not in [
        t.task_family
        for t in RunAll(
            usecases=("flights",), start=date(2013, 1, 1), end=date(2013, 1, 31), until="clean"
        ).requires()
    ]


def served(i: int, flight: int, served_at: str) -> str:
    """A captured flights answer whose echo names the flight (the outcome's key)."""
    body = CaptureRecord.from_dict(json.loads(line(i, served_at)))
    echo = {"carrier": "UA", "flight": flight, "origin": "EWR", "dest": "IAH",
            "scheduled_departure": "2013-03-01T17:15"}  # fmt: skip
    return replace(body, echo=echo).to_json()


def test_monitor_partition_publishes_once_atomically_and_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a clean day holding one flight's outcome, published by this run, and two answers
    settings = stage(tmp_path, monkeypatch, capture=True)
    lake = open_lake(settings.lake.uri)
    clean = pa.table(
        {
            "carrier": ["UA"],
            "flight": [1545],
            "origin": ["EWR"],
            "sched_dep_local": [datetime(2013, 3, 1, 17, 15)],
            "dep_delayed_15": [True],
            "arr_delay": [33.0],
        }
    )
    lake.publish(layout.CLEAN, "flights/flights", "date=2013-03-01", [clean],
                 schema=clean.schema, source="test", run_id="run1")  # fmt: skip
    at = "2013-03-01T15:00:00.000000+00:00"
    spool(tmp_path / "lake", "2013-03-01", "15", "a.jsonl", [served(1, 1545, at), served(2, 9, at)])
    runs = str(tmp_path / "runs")
    # When the task runs, and again in a later run
    task = MonitorPartition(
        usecase="flights", partition="2013-03-01", run_id="run1", state_dir=runs
    )
    assert luigi.build([task], local_scheduler=True, workers=1)
    first = lake.manifest(layout.MONITORING, "flights", "date=2013-03-01")
    again = MonitorPartition(
        usecase="flights", partition="2013-03-01", run_id="run2", state_dir=runs
    )
    assert luigi.build([again], local_scheduler=True, workers=1)
    # Then one record, met with its outcome, published once (the settled partition is final)
    monitoring = read_monitoring(lake, "flights", "date=2013-03-01")
    (production,) = monitoring.served
    assert production.predictions == 2
    assert (production.outcomes["matched"], production.outcomes["missing"]) == (1, 1)
    assert lake.manifest(layout.MONITORING, "flights", "date=2013-03-01") == first
    files = [n for n in lake.list_dir(layout.MONITORING, "flights", "date=2013-03-01")]
    assert sorted(files) == sorted([first.file, "_manifest.json"])
    # A capture file written after the collection (a late replay): collected and monitored again
    time.sleep(1.1)  # manifests keep whole seconds
    late = "2013-03-01T16:00:00.000000+00:00"
    spool(tmp_path / "lake", "2013-03-01", "16", "b.jsonl", [served(3, 1545, late)])
    third = MonitorPartition(
        usecase="flights", partition="2013-03-01", run_id="run3", state_dir=runs
    )
    assert not third.complete()
    assert luigi.build([third], local_scheduler=True, workers=1)
    (recounted,) = read_monitoring(lake, "flights", "date=2013-03-01").served
    assert recounted.predictions == 3
    first = lake.manifest(layout.MONITORING, "flights", "date=2013-03-01")
    monitoring = read_monitoring(lake, "flights", "date=2013-03-01")
    # A re-run replaces it whole (same record, one data file)
    task.run()
    assert read_monitoring(lake, "flights", "date=2013-03-01").served == monitoring.served
    assert len(lake.list_dir(layout.MONITORING, "flights", "date=2013-03-01")) == 2
    # and a damaged file is refused when read
    manifest = lake.manifest(layout.MONITORING, "flights", "date=2013-03-01")
    path = tmp_path / "lake" / "monitoring" / "flights" / "date=2013-03-01" / manifest.file
    path.write_bytes(path.read_bytes()[:-8] + b"XXXXXXXX")
    with pytest.raises(LakeError, match="checksum mismatch"):
        read_monitoring(lake, "flights", "date=2013-03-01")


def test_a_run_monitors_its_range_once_production_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stage(tmp_path, monkeypatch, capture=True)
    wrapper = RunAll(
        usecases=("flights",), start=date(2013, 1, 1), end=date(2013, 1, 3), until="clean"
    )
    assert "MonitorPartition" not in [t.task_family for t in wrapper.requires()]
    pointer = ProductionPointer(
        version="v1", promoted_at="2013-01-01T00:00:00+00:00", reason="test"
    )
    monkeypatch.setattr(Registry, "production", lambda self: pointer)
    monitored = [t.partition for t in wrapper.requires() if t.task_family == "MonitorPartition"]
    assert monitored == ["2013-01-01", "2013-01-02", "2013-01-03"]


def test_the_live_summary_alerts_on_the_partitions_this_run_monitored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given 2013-03-01 monitored with two answers, then 2013-03-02 with none, by this run
    settings = stage(tmp_path, monkeypatch, capture=True)
    lake = open_lake(settings.lake.uri)
    before = PartitionMonitoring(
        "flights", "2013-03-01", "2013-03-05T00:00:00", "v1", 10, None,
        served=(ServedMonitoring("v1", "production", 2, {"matched": 2}),),
    )  # fmt: skip
    after = replace(before, partition="2013-03-02", served=())
    publish_monitoring(lake, before, parse_partition("2013-03-01", "day"), "earlier")
    publish_monitoring(lake, after, parse_partition("2013-03-02", "day"), "run2")
    options = RunOptions(start=date(2013, 3, 2), end=date(2013, 3, 2))
    # When the run sums up the day it ran
    lines, alerts = live_summary(settings, "flights", options, "run2")
    # Then the Live section shows that day, and capture stopping is an alert
    assert lines[0] == "2013-03-02: 0 predictions served, production v1"
    assert [a.kind for a in alerts] == ["capture"]
    assert "where 2013-03-01 had 2" in alerts[0].message
    # and a later run that monitored nothing raises none again
    assert live_summary(settings, "flights", options, "run3")[1] == []


def test_a_run_renders_the_monitoring_report_once_after_its_partitions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a use case in production, and a run over three days
    settings = stage(tmp_path, monkeypatch, capture=False)
    pointer = ProductionPointer(
        version="v1", promoted_at="2013-01-01T00:00:00+00:00", reason="test"
    )
    monkeypatch.setattr(Registry, "production", lambda self: pointer)
    wrapper = RunAll(
        usecases=("flights",), start=date(2013, 1, 1), end=date(2013, 1, 3), until="clean"
    )
    # The run's report requires the very partitions the run monitors
    (report,) = [t for t in wrapper.requires() if isinstance(t, MonitoringReport)]
    monitored = [t for t in wrapper.requires() if t.task_family == "MonitorPartition"]
    assert report.requires() == monitored
    # When the report runs, over a monitored partition (published as MonitorPartition would)
    lake = open_lake(settings.lake.uri)
    record = PartitionMonitoring(
        "flights", "2013-01-02", "2013-01-05T00:00:00", "v1", 10, None,
        served=(ServedMonitoring("v1", "production", 2, {"matched": 2}),),
    )  # fmt: skip
    publish_monitoring(lake, record, parse_partition("2013-01-02", "day"), "run1")
    runs = str(tmp_path / "runs")
    first = MonitoringReport(
        usecase="flights", partitions=["2013-01-02"], run_id="run1", state_dir=runs
    )
    assert not first.complete()
    first.run()
    # Then the page is in the lake where the layout says, and the run counts it done
    page = lake.read_bytes(*layout.monitoring_report_parts("flights")).decode("utf-8")
    assert "2013-01-02 to 2013-01-02 (1)" in page
    assert first.complete()
    # and the next run renders it afresh
    again = MonitoringReport(
        usecase="flights", partitions=["2013-01-02"], run_id="run2", state_dir=runs
    )
    assert not again.complete()


# -- shadow against production, from served answers to the report ------------------------------
SHADOW_DAYS, SHADOW_FLIGHTS = 20, 30


def shadow_month(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, str]:
    """A month of answers served by production v1 and shadow v2 (the better one) on the same
    requests, their outcomes in the clean data; monitored and reported through the tasks.
    The settings and the report's page."""
    settings = stage(tmp_path, monkeypatch, capture=True)
    config = tmp_path / "config" / "test.toml"
    text = config.read_text().replace('grain = "day"', 'grain = "month"')
    text += "[usecase.flights.gate]\nmin_holdout_days = 10\nmin_holdout_rows = 100\n"
    config.write_text(text)
    settings = load_settings()
    rng = np.random.default_rng(7)
    rows, lines = [], {}
    for day in range(1, SHADOW_DAYS + 1):
        departure = datetime(2013, 3, day, 17, 15)
        for flight in range(1, SHADOW_FLIGHTS + 1):
            delayed = bool(rng.random() < 0.3)
            rows.append(("UA", flight, "EWR", departure, delayed, 30.0 if delayed else -5.0))
            echo = {"carrier": "UA", "flight": flight, "origin": "EWR", "dest": "IAH",
                    "scheduled_departure": departure.isoformat(timespec="minutes")}  # fmt: skip
            # production is barely informed, the shadow well: a clear paired gain
            noise = rng.normal(0.0, 0.15)
            scores = {"v1": 0.3 + noise + 0.05 * delayed, "v2": 0.3 + noise + 0.3 * delayed}
            served_at = f"2013-03-{day:02d}T15:00:00.000000+00:00"
            for version, role in (("v1", "production"), ("v2", "shadow")):
                record = CaptureRecord.from_dict(json.loads(line(len(rows), served_at)))
                record = replace(
                    record, model_version=version, role=role, echo=echo,
                    probability=float(np.clip(scores[version], 0.01, 0.99)),
                )  # fmt: skip
                lines.setdefault(served_at[:10], []).append(record.to_json())
    clean = pa.table(
        dict(
            zip(
                ("carrier", "flight", "origin", "sched_dep_local", "dep_delayed_15", "arr_delay"),
                map(list, zip(*rows, strict=True)),
                strict=True,
            )
        )
    )
    lake = open_lake(settings.lake.uri)
    lake.publish(layout.CLEAN, "flights/flights", "month=2013-03", [clean],
                 schema=clean.schema, source="test", run_id="run1")  # fmt: skip
    for day, day_lines in lines.items():
        spool(tmp_path / "lake", day, "15", "a.jsonl", day_lines)
    runs = str(tmp_path / "runs")
    task = MonitorPartition(usecase="flights", partition="2013-03", run_id="run1", state_dir=runs)
    assert luigi.build([task], local_scheduler=True, workers=1)
    report = MonitoringReport(
        usecase="flights", partitions=["2013-03"], run_id="run1", state_dir=runs
    )
    report.run()
    return settings, lake.read_bytes(*layout.monitoring_report_parts("flights")).decode("utf-8")


def test_a_shadow_is_compared_live_and_its_comparison_reaches_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a month where a shadow answered every request beside production, outcomes in
    # When the month is monitored and the report rendered (setup)
    settings, page = shadow_month(tmp_path, monkeypatch)
    lake = open_lake(settings.lake.uri)
    # Then the partition's record holds the paired comparison, where `models show` finds it
    record = read_monitoring(lake, "flights", "month=2013-03")
    found = latest_comparison(lake, "flights", "v2")
    assert found is not None and record.shadow is not None
    assert ShadowComparison.from_dict(record.shadow) == found
    assert (found.production_version, found.shadow_version) == ("v1", "v2")
    assert (found.days, found.pairs, found.without_outcome) == (SHADOW_DAYS, 600, 0)
    assert found.lower is not None and found.upper is not None
    assert found.lower <= found.gain <= found.upper and found.lower > 0
    assert found.verdict == ShadowVerdict.BETTER
    # and the run's Live section says it (the record's text line)
    assert any("shadow vs production: shadow v2" in x for x in summary_lines(record))
    # and the report's shadow section shows the paired gain and its interval
    assert "No shadow model served" not in page
    interval = f"95% [{signed(found.lower)}, {signed(found.upper)}]"
    assert f"{signed(found.gain)}, {interval}</td>" in page


def test_the_published_shadow_comparison_renders_in_a_browser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    settings, page = shadow_month(tmp_path, monkeypatch)
    found = latest_comparison(open_lake(settings.lake.uri), "flights", "v2")
    assert found is not None

    driver = browser.open(page)

    (row,) = driver.find_elements(By.CSS_SELECTOR, "#shadow table.shadow tr.shadow")
    cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
    assert cells[0] == "2013-03" and cells[1] == "v2 vs v1"
    assert f"[{signed(found.lower)}, {signed(found.upper)}]" in " ".join(cells)
    assert row.is_displayed() and row.size["height"] > 0
    assert "better" in row.get_attribute("class").split()
