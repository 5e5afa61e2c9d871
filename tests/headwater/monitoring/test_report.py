"""The monitoring report: rendered from published monitoring records, checked as text and in a
real browser (headless Chromium: the DOM after rendering, not the HTML string)."""

from __future__ import annotations

import ast
import html
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from headwater.core import layout
from headwater.core.partitions import parse_partition
from headwater.core.usecase import get_usecase
from headwater.data.lake import open_lake
from headwater.monitoring.drift import DriftReport, FeatureDrift, Thresholds
from headwater.monitoring.estimate import Estimate
from headwater.monitoring.live import AgainstHoldout, Interval, LiveMetrics
from headwater.monitoring.monitor import Alert, PartitionMonitoring, ServedMonitoring
from headwater.monitoring.published import publish_monitoring
from headwater.monitoring.report import (
    ESTIMATED,
    REALIZED,
    Holdout,
    metric_points,
    publish_monitoring_report,
    render_monitoring_report,
)
from headwater.monitoring.shadow import ShadowComparison, ShadowVerdict
from tests.conftest import MODEL, minimal_usecase

#: A feature name that must be escaped everywhere it is written: unescaped, a browser would
#: draw an element and decode the entity, and the name would not read back as itself.
NASTY = "<i>temp</i>&amp;'\"x"
LIVE_CALIBRATION = (
    {"bin": 1, "count": 40, "mean_probability": 0.15, "observed_rate": 0.25},
    {"bin": 4, "count": 60, "mean_probability": 0.45, "observed_rate": 0.55},
)
HOLDOUT_CALIBRATION = (
    {"bin": 1, "count": 400, "mean_probability": 0.14, "observed_rate": 0.16},
    {"bin": 4, "count": 600, "mean_probability": 0.44, "observed_rate": 0.46},
)
#: The version's recorded holdout: the AUC differs from the record's to tell them apart.
HOLDOUT = Holdout({"auc_roc": 0.709, "brier": 0.16}, HOLDOUT_CALIBRATION)


def drift(feature: str, value: float, threshold: float, measure: str = "psi") -> FeatureDrift:
    kind = "numeric" if measure == "psi" else "categorical"
    return FeatureDrift(feature, kind, measure, value, threshold, 100, 0, 0.0, 0.0)


def realized_partition() -> PartitionMonitoring:
    """2013-03: 100 answers, every outcome arrived, AUC significantly below holdout; the
    clean data's NASTY feature past its threshold; a shadow compared."""
    live = LiveMetrics(
        kind="classification",
        metrics={"auc_roc": 0.652, "brier": 0.18},
        intervals={"auc_roc": Interval(0.630, 0.671, 0.95, 20, 1000)},
        predictions=100,
        with_outcome=100,
        days=20,
        calibration=LIVE_CALIBRATION,
    )
    served = ServedMonitoring(
        version="v1",
        role="production",
        predictions=100,
        outcomes={"matched": 100},
        classification=live,
        holdout=(AgainstHoldout("auc_roc", 0.652, 0.711, 0.630, 0.671),),
        out_of_range=7,
    )
    shadow = ShadowComparison(
        production_version="v1", shadow_version="v2", metric="auc_roc", production=0.652,
        shadow=0.671, gain=0.019, lower=0.004, upper=0.033, confidence=0.95, margin=0.0,
        days=20, pairs=100, without_outcome=0, verdict=ShadowVerdict.BETTER,
        reason="shadow AUC 0.671 vs production 0.652",
    )  # fmt: skip
    return PartitionMonitoring(
        usecase=MODEL,
        partition="2013-03",
        as_of="2013-04-10T00:00:00",
        production="v1",
        clean_rows=1000,
        clean_drift=DriftReport(
            features=(drift(NASTY, 0.41, 0.20), drift("meter", 0.02, 0.10, "js")),
            rows=1000,
            rows_out_of_range=30,
        ),
        served=(served, replace(served, role="shadow", version="v2", holdout=())),
        thresholds=Thresholds(),
        shadow=shadow.to_dict(),
    )


def estimated_partition() -> PartitionMonitoring:
    """2013-04: 80 answers, no outcome yet: only the CBPE estimate; nothing drifted."""
    served = ServedMonitoring(
        version="v1",
        role="production",
        predictions=80,
        outcomes={"pending": 80},
        estimate=Estimate({"auc_roc": 0.702, "brier": 0.15}, 0.5, 80, "isotonic"),
    )
    return PartitionMonitoring(
        usecase=MODEL,
        partition="2013-04",
        as_of="2013-04-10T00:00:00",
        production="v1",
        clean_rows=900,
        clean_drift=DriftReport(
            features=(drift(NASTY, 0.05, 0.20), drift("meter", 0.03, 0.10, "js")), rows=900
        ),
        served=(served,),
        notes=("a <note> & more",),
    )


RECORDS = (realized_partition(), estimated_partition())
ALERTS = (Alert(MODEL, "2013-03", "drift", f"{MODEL} 2013-03: {NASTY} PSI 0.41 > 0.20."),)


def render(**changes: Any) -> str:
    fields: dict[str, Any] = {
        "title": "Monitoring: <use case>",
        "alerts": ALERTS,
        "holdouts": {"v1": HOLDOUT},
        **changes,
    }
    return render_monitoring_report(RECORDS, **fields)


def test_points_tell_the_realized_figure_from_the_estimate() -> None:
    points = metric_points(RECORDS, "auc_roc", {"v1": HOLDOUT})

    assert [(p.partition, p.kind, p.value) for p in points] == [
        ("2013-03", REALIZED, 0.652),
        ("2013-04", ESTIMATED, 0.702),
    ]
    realized, estimated = points
    # The realized figure carries its interval and is significantly below the holdout's;
    # an estimate has no interval and is never called significant
    assert (realized.lower, realized.upper, realized.holdout) == (0.630, 0.671, 0.711)
    assert realized.significantly_worse and realized.predictions == 100
    assert (estimated.lower, estimated.upper, estimated.significantly_worse) == (None, None, False)
    assert estimated.predictions == 80
    # The record's holdout figure first; the version's recorded one where the record has none
    assert (realized.holdout, estimated.holdout) == (0.711, 0.709)
    assert metric_points(RECORDS, "auc_roc")[1].holdout is None
    # The shadow's figures are not production's (it answered nobody)
    assert all(p.version == "v1" for p in points)


def test_everything_from_data_is_escaped() -> None:
    page = render()

    for raw in (NASTY, "<use case>", "<note>"):
        assert raw not in page
    assert html.escape(NASTY, quote=True) in page
    assert "Monitoring: &lt;use case&gt;" in page


def test_names_come_from_the_use_case() -> None:
    usecase = get_usecase("meters", minimal_usecase().__name__)  # the test-only use case
    record = replace(
        RECORDS[0],
        clean_drift=DriftReport(features=(drift("hour_of_day", 0.41, 0.20),), rows=10),
    )

    page = render_monitoring_report([record], title="t", usecase=usecase)

    assert f">{html.escape(usecase.training.human('hour_of_day'))}</th>" in page
    assert usecase.training.human("hour_of_day") != "hour_of_day"


def test_the_report_is_published_where_the_layout_says(
    lake_uri: str, publish: Callable[..., str], model_documents: dict[str, Any]
) -> None:
    # Given two monitored partitions of version v1, in the registry, published in a lake
    publish(lake_uri, "v1")
    lake = open_lake(lake_uri)
    for record in RECORDS:
        publish_monitoring(lake, record, parse_partition(record.partition, "month"), "run1")

    # When the report is published
    uri = publish_monitoring_report(lake, get_usecase(MODEL), min_predictions=50)

    # Then it is at the one path of the layout, and holds both partitions and their alerts
    parts = layout.monitoring_report_parts(MODEL)
    assert uri == lake.uri_of(*parts)
    page = lake.read_bytes(*parts).decode("utf-8")
    assert "2013-03 to 2013-04 (2)" in page
    # alerts_of raised these from the records: live AUC below holdout, drift of the clean data
    assert 'data-kind="performance"' in page and 'data-kind="drift"' in page
    assert not [n for n in lake.list_dir(layout.MONITORING, MODEL) if n.endswith(".html")]
    # and v1's metrics.json gave the estimate its holdout figure and the holdout's calibration
    recorded = model_documents["metrics.json"]
    assert f"<td>{recorded['holdout']['auc_roc']:.3f}</td><td>80</td>" in page
    holdout_bins = {row["bin"]: row for row in recorded["calibration"]}
    for row in LIVE_CALIBRATION:
        assert f"<td>{holdout_bins[row['bin']]['observed_rate']:.3f}</td></tr>" in page


def test_an_undecided_shadow_says_why_and_a_decided_one_only_its_verdict() -> None:
    decided = ShadowComparison.from_dict(RECORDS[0].shadow or {})
    undecided = replace(
        decided, verdict=ShadowVerdict.UNDECIDED, lower=None, upper=None, days=3,
        refusals=["3 days of paired outcomes, fewer than the 28 <the gate> requires"],
    )  # fmt: skip
    records = [replace(RECORDS[0], shadow=c.to_dict()) for c in (decided, undecided)]

    decided_page, undecided_page = (
        render_monitoring_report([r], title="t").split('id="shadow"')[1] for r in records
    )

    assert '<td class="verdict"><strong>better</strong></td>' in decided_page
    assert "3 days of paired outcomes, fewer than the 28 &lt;the gate&gt; requires" in (
        undecided_page
    )
    assert '<td class="gain">+0.0190</td>' in undecided_page  # no interval to show


def test_the_report_borrows_no_private_helper() -> None:
    # The chart primitives and the human names are public where they live (one definition)
    import headwater.monitoring.report as report

    tree = ast.parse(Path(report.__file__).read_text(encoding="utf-8"))
    borrowed = [
        f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.name.startswith("_")
    ]
    assert borrowed == []


# -- in a real browser ---------------------------------------------------------------------------
def test_the_report_renders_in_a_browser_with_its_charts(browser: Any) -> None:
    from selenium.webdriver.common.by import By

    driver = browser.open(render())

    # The page loaded nothing (self-contained) and logged no error
    assert browser.fetched() == []
    assert browser.console_errors() == []
    # The AUC chart is drawn, with a visible size, a realized dot and an estimated diamond
    chart = driver.find_element(By.CSS_SELECTOR, 'svg.metric-chart[data-metric="auc_roc"]')
    assert chart.size["width"] > 300 and chart.size["height"] > 100
    realized = chart.find_elements(By.CSS_SELECTOR, "circle.realized")
    estimated = chart.find_elements(By.CSS_SELECTOR, "polygon.estimated")
    assert [e.get_attribute("data-partition") for e in realized] == ["2013-03"]
    assert [e.get_attribute("data-partition") for e in estimated] == ["2013-04"]
    assert len(chart.find_elements(By.CSS_SELECTOR, "line.interval")) == 1
    # the holdout drawn at both partitions (the estimate's from the version's metrics.json)
    holdouts = chart.find_elements(By.CSS_SELECTOR, "line.holdout")
    assert [h.get_attribute("data-partition") for h in holdouts] == ["2013-03", "2013-04"]
    # Told apart in words too: the table's figure column
    table = driver.find_element(By.CSS_SELECTOR, 'table.metric-table[data-metric="auc_roc"]')
    kinds = [td.text for td in table.find_elements(By.CSS_SELECTOR, "td.kind")]
    # (an estimate covers predictions pending and those whose outcome never comes: no "yet")
    assert kinds == ["realized", "estimated (CBPE, without outcome)"]


def test_the_drift_alarm_cell_is_marked_and_names_survive_escaping(browser: Any) -> None:
    from selenium.webdriver.common.by import By

    driver = browser.open(render())

    clean = driver.find_elements(By.CSS_SELECTOR, "table.drift-table")[0]
    alarms = clean.find_elements(By.CSS_SELECTOR, "td.alarm")
    # One alarm: the nasty feature in 2013-03, its name read back intact from the DOM
    assert [
        (a.get_attribute("data-feature"), a.get_attribute("data-partition")) for a in alarms
    ] == [(NASTY, "2013-03")]
    assert "▲" in alarms[0].text
    assert alarms[0].value_of_css_property("font-weight") == "700"
    # The row header shows the name as text, not as markup
    headers = [th.text for th in clean.find_elements(By.CSS_SELECTOR, "th[scope=row]")]
    assert headers == [NASTY, "meter"]
    assert not driver.find_elements(By.CSS_SELECTOR, "#drift i")
    calm = clean.find_elements(By.CSS_SELECTOR, 'td.drift:not(.alarm)[data-partition="2013-04"]')
    assert len(calm) == 2


def test_calibration_shadow_and_alerts_in_a_browser(browser: Any) -> None:
    from selenium.webdriver.common.by import By

    driver = browser.open(render())

    section = driver.find_element(By.ID, "calibration")
    svg = section.find_element(By.TAG_NAME, "svg")
    assert len(svg.find_elements(By.CSS_SELECTOR, "circle.live")) == len(LIVE_CALIBRATION)
    assert len(svg.find_elements(By.CSS_SELECTOR, "circle.holdout")) == len(HOLDOUT_CALIBRATION)
    shadow = driver.find_element(By.CSS_SELECTOR, "#shadow table.shadow")
    assert "v2 vs v1" in shadow.text and "better" in shadow.text
    # the gain signed as the gate prints it, the verdict short (its numbers are in the row)
    gain = shadow.find_element(By.CSS_SELECTOR, "td.gain").text
    assert gain == "+0.0190, 95% [+0.0040, +0.0330]"
    assert shadow.find_element(By.CSS_SELECTOR, "td.verdict").text == "better"
    alerts = driver.find_elements(By.CSS_SELECTOR, "#alerts li.alert")
    assert [a.text for a in alerts] == [f"drift: {ALERTS[0].message}"]


def test_two_years_of_drift_fit_the_page_latest_month_in_view(browser: Any) -> None:
    from selenium.webdriver.common.by import By

    # Given 24 monthly partitions of three features (a demo's two years)
    months = [f"{year}-{month:02d}" for year in (2011, 2012) for month in range(1, 13)]
    report = DriftReport(
        features=(drift(NASTY, 0.41, 0.20), drift("meter", 0.02, 0.10, "js"),
                  drift("a feature with a long human name", 8.51, 9.61)),
        rows=100,
    )  # fmt: skip
    records = [replace(RECORDS[1], partition=m, clean_drift=report) for m in months]

    driver = browser.open(render_monitoring_report(records, title="t"))

    # Then the heat map needs no scrolling: every month's column, the latest too, is in view
    table = driver.find_element(By.CSS_SELECTOR, "table.drift-table")
    assert driver.execute_script("return arguments[0].scrollWidth", table) <= table.size["width"]
    page = driver.execute_script("return document.documentElement.clientWidth")
    latest = table.find_element(By.CSS_SELECTOR, f'td[data-partition="{months[-1]}"]')
    assert latest.location["x"] + latest.size["width"] <= page
    # and each month is still named in its column's head
    heads = [th.text for th in table.find_elements(By.CSS_SELECTOR, "th.partition")]
    assert heads == months


def test_the_live_chart_starts_at_the_first_partition_with_a_figure(browser: Any) -> None:
    from selenium.webdriver.common.by import By

    # Given ten monitored months before any traffic, then the two months of RECORDS
    quiet = [
        replace(RECORDS[1], partition=f"2012-{month:02d}", served=(), shadow=None)
        for month in range(3, 13)
    ]
    records = [*quiet, *RECORDS]

    driver = browser.open(render_monitoring_report(records, title="t"))

    # Then the chart's axis names only the months from the first figure on, and the two
    # figures spread over the chart instead of crowding its right edge
    chart = driver.find_element(By.CSS_SELECTOR, 'svg.metric-chart[data-metric="auc_roc"]')
    labels = [t.text for t in chart.find_elements(By.CSS_SELECTOR, "text.partition")]
    assert labels == ["2013-03", "2013-04"]
    dots = chart.find_elements(By.CSS_SELECTOR, "circle.realized, polygon.estimated")
    xs = sorted(d.location["x"] - chart.location["x"] for d in dots)
    assert xs[0] < chart.size["width"] / 2 < xs[-1]
