"""The model report: it opens with a verdict, uses human names, and shows the gate's decision."""

from __future__ import annotations

import dataclasses
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from headwater.core.layout import REPORT, model_parts
from headwater.core.records import DateRange, Lineage, ProductionScore, TrainingMetrics
from headwater.data.lake import open_lake
from headwater.model.report import render_report, with_decision
from headwater.registry.registry import Registry
from tests.conftest import minimal_usecase

TRAINING = minimal_usecase().TRAINING  # the test-only use case's spec: its human names
METRICS = TrainingMetrics.from_dict(
    {
        "holdout_from": "2013-11-01",
        "holdout": {"rows": 54145, "auc_roc": 0.7114, "log_loss": 0.4906, "accuracy_at_0_5": 0.78},
        "regression": {"rmse": 38.96, "mae": 23.29, "r2": 0.057},
        "baselines": {
            "base_rate": {"auc_roc": 0.5, "log_loss": 0.5247, "positive_rate": 0.218},
            "meter_rate": {"auc_roc": 0.6659, "log_loss": 0.4959},
            "mean_load_kw": {"rmse": 40.12, "mae": 24.69},
        },
        "production_on_holdout": {"version": "v0", "auc_roc": 0.7091, "log_loss": 0.4921},
        "comparison": {
            "version": "v0",
            "intervals": {
                "auc_roc": {
                    "metric": "auc_roc",
                    "difference": 0.0023,
                    "lower": -0.0051,
                    "upper": 0.0097,
                    "confidence": 0.95,
                    "blocks": 61,
                }
            },
        },
    }
)
LINEAGE = Lineage.from_dict({"date_range": "2013-01-01..2013-12-31", "holdout_from": "2013-11-01"})
# Where the gate's verdict is rendered in a page.
DECISION = re.compile(r"<!-- decision -->(.*?)<!-- /decision -->", re.S)


def render(**changes: Any) -> str:
    fields: dict[str, Any] = {
        "title": "Meter overload: model meters v1",
        "spec": TRAINING,
        "metrics": METRICS,
        "roc_points": [(0.0, 0.0), (0.5, 0.7), (1.0, 1.0)],
        "calibration": [{"bin": 0, "count": 10, "mean_probability": 0.1, "observed_rate": 0.12}],
        "top_coefficients": [("hour_of_day_ohe_06", -0.384), ("meter_ohe_m1", 0.232)],
        "lineage": LINEAGE,
        **changes,
    }
    return render_report(**fields)


def text_of(page: str) -> str:
    """The page's visible text (tags dropped)."""
    return re.sub(r"<[^>]+>", " ", page)


def test_the_report_opens_with_the_verdict_model_beside_production_and_baselines() -> None:
    page = render()

    # The verdict comes first, before the detailed metrics
    assert page.index("Verdict") < page.index("Holdout metrics")
    verdict = page[page.index("Verdict") : page.index("Holdout metrics")]
    # Side by side: this model, production on the same holdout, each baseline
    header = re.findall(r"<th>([^<]*)</th>", verdict)[:6]
    assert header == [
        "metric",
        "this model",
        "production v0",
        "baseline: base rate",
        "baseline: meter rate",
        "baseline: mean load",
    ]
    auc_row = re.search(r"<tr><th>AUC</th>(.*?)</tr>", verdict)
    assert auc_row is not None
    assert re.findall(r"<td>([^<]*)</td>", auc_row.group(1)) == [
        "0.7114",
        "0.7091",
        "0.5000",
        "0.6659",
        "–",
    ]
    # The gain over production, with its interval, and the gate's part (not decided yet)
    assert "AUC: difference +0.0023, 95% interval [-0.0051, +0.0097]" in verdict
    assert "Gate: not decided yet" in DECISION.search(page).group(1)  # type: ignore[union-attr]


def test_the_report_uses_human_names_everywhere() -> None:
    text = text_of(render())

    assert "hour of day = 06" in text and "meter = m1" in text
    for raw in ("hour_of_day_ohe_06", "meter_ohe", "auc_roc", "accuracy_at_0_5", "date_range"):
        assert raw not in text, raw
    assert "base_rate" not in text and "positive_rate" not in text and "load_kw" not in text


def test_the_decision_part_is_rewritten_and_the_rest_kept() -> None:
    page = render()

    decided = with_decision(page, {"decision": "rejected", "reason": "noisy <gain>"})

    assert "Gate: rejected" in decided and "noisy &lt;gain&gt;" in decided
    assert "not decided yet" not in decided
    assert DECISION.sub("", decided) == DECISION.sub("", page)


def test_every_decision_recorded_by_the_registry_shows_in_the_report(tmp_path: Path) -> None:
    # Given a version whose report the training job wrote (before any decision)
    lake = open_lake(f"file://{tmp_path}/lake")
    registry = Registry(lake, "meters")
    lake.write_bytes(render().encode(), *model_parts("meters", "v1", REPORT))
    registry.mark_complete("v1")
    numbers = {
        "metric": "auc_roc",
        "gain": 0.0023,
        "lower_gain": -0.0051,
        "upper_gain": 0.0097,
        "margin": 0.002,
        "interval": {"confidence": 0.95, "blocks": 61},
    }

    # When the gate rejects it, then it is promoted by hand
    registry.reject("v1", "its lower bound does not clear margin 0.002", numbers)
    rejected = lake.read_bytes(*model_parts("meters", "v1", REPORT)).decode()
    registry.promote("v1", "promoted by hand")
    promoted = lake.read_bytes(*model_parts("meters", "v1", REPORT)).decode()

    # Then the report said each decision in turn, with the gate's numbers
    gate = DECISION.search(rejected).group(1)  # type: ignore[union-attr]
    assert "Gate: rejected" in gate and "does not clear margin 0.002" in gate
    assert "AUC gain +0.0023, 95% interval [-0.0051, +0.0097] over 61 blocks" in gate
    assert "Gate: promoted" in DECISION.search(promoted).group(1)  # type: ignore[union-attr]
    assert "Verdict" in promoted


def test_a_version_without_a_report_is_decided_all_the_same(tmp_path: Path) -> None:
    registry = Registry(open_lake(f"file://{tmp_path}/lake"), "meters")
    registry.mark_complete("v1")

    registry.reject("v1", "worse")

    assert registry.info("v1").status == "rejected"
    assert not registry.lake.exists(*model_parts("meters", "v1", REPORT))


@pytest.mark.parametrize(
    "lineage",
    [
        LINEAGE,  # an old version's: the range as one string
        Lineage(range=DateRange(date(2013, 1, 1), date(2013, 12, 31)), run_id="r1"),
    ],
    ids=["old", "new"],
)
def test_the_lineage_table_shows_the_range_whatever_its_form(lineage: Lineage) -> None:
    page = render(lineage=lineage)

    lineage_html = page[page.index("<h2>Lineage</h2>") :]
    assert "<th>date range</th><td>2013-01-01..2013-12-31</td>" in lineage_html
    assert "start" not in text_of(lineage_html)


def test_a_production_that_could_not_score_the_holdout_is_no_column() -> None:
    failed = ProductionScore("v0", error="AnalysisException: no column x")

    page = render(metrics=dataclasses.replace(METRICS, production_on_holdout=failed))

    verdict = page[page.index("Verdict") : page.index("Holdout metrics")]
    assert "production v0" not in verdict and "this model" in verdict


# -- in a real browser ---------------------------------------------------------------------------
def test_the_report_renders_in_a_browser(browser: Any) -> None:
    from selenium.webdriver.common.by import By

    # Given a decision whose reason carries markup (it is written by people: `promote --reason`)
    reason = "<b>by hand</b> & 'checked' \"twice\""
    page = render(decision={"decision": "promote", "reason": reason})

    # When the page is opened in headless Chromium
    driver = browser.open(page)

    # Then it loaded nothing and logged no error
    assert browser.fetched() == []
    assert browser.console_errors() == []
    # Its three charts are drawn with a size: ROC, calibration, coefficients
    charts = driver.find_elements(By.CSS_SELECTOR, "svg[role=img]")
    labels = [c.get_attribute("aria-label") for c in charts]
    assert labels == ["ROC curve (AUC 0.711)", "Calibration", "largest coefficients"]
    assert all(c.size["width"] >= 360 and c.size["height"] >= 80 for c in charts)
    roc = charts[0].find_elements(By.TAG_NAME, "polyline")[-1]
    assert len(roc.get_attribute("points").split()) == 3  # the three ROC points given
    # The verdict's columns, read from the DOM, and the reason shown as text, not markup
    verdict = driver.find_element(By.ID, "verdict")
    header = [th.text for th in verdict.find_elements(By.CSS_SELECTOR, "table tr:first-child th")]
    assert header[:3] == ["metric", "this model", "production v0"]
    assert reason in verdict.text
    assert not verdict.find_elements(By.TAG_NAME, "b")
