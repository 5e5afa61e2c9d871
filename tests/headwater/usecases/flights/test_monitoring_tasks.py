"""The live shadow comparison of the flights use case through the monitoring tasks: a month of
paired answers, their outcomes, MonitorPartition and the report (the tasks on any use case:
tests/luigi_tasks/test_monitoring_tasks.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import luigi
import numpy as np
import pyarrow as pa
import pytest

from headwater.core import layout
from headwater.core.config import Settings, load_settings
from headwater.data.lake import open_lake
from headwater.model.comparison import signed
from headwater.monitoring.monitor import summary_lines
from headwater.monitoring.published import latest_comparison, read_monitoring
from headwater.monitoring.shadow import ShadowComparison, ShadowVerdict
from headwater.serving.capture import CaptureRecord
from luigi_tasks.monitoring import MonitoringReport, MonitorPartition
from tests.luigi_tasks.test_monitoring_tasks import line as monitoring_line
from tests.luigi_tasks.test_monitoring_tasks import spool as monitoring_spool
from tests.luigi_tasks.test_monitoring_tasks import stage as monitoring_stage


def stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capture: bool) -> Settings:
    return monitoring_stage(tmp_path, monkeypatch, capture, "flights", module=None)


def line(i: int, served_at: str) -> str:
    return monitoring_line(i, served_at, "flights", {"carrier": "UA"})


def spool(root: Path, day: str, hour: str, name: str, lines: list[str]) -> None:
    monitoring_spool(root, day, hour, name, lines, "flights")


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
            utc = departure + timedelta(hours=5)  # the now-cast window's order (EST)
            rows.append(("UA", flight, "EWR", departure, utc, delayed, 30.0 if delayed else -5.0))
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
                (
                    "carrier",
                    "flight",
                    "origin",
                    "sched_dep_local",
                    "sched_dep_utc",
                    "dep_delayed_15",
                    "arr_delay",
                ),
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
