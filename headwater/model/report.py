"""A self-contained HTML report of a model version: verdict, metrics, ROC, calibration, weights.

Plots are inline SVG drawn here (no plotting library, no JavaScript), so the report
opens anywhere, from S3 or from disk.

The report opens with a verdict: the model beside its baselines (and production, on the same
holdout), then the gate's decision. The training job writes the report before the gate
decides; every decision recorded afterwards (the gate, a promotion or a rollback by hand)
rewrites the decision part, between :data:`DECISION_START` and :data:`DECISION_END`, from
``decision.json`` (:func:`refresh_report`).
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from headwater.core.layout import REPORT, model_parts
from headwater.core.logs import get_logger
from headwater.core.records import Lineage, TrainingMetrics
from headwater.model.comparison import comparison_text, signed
from headwater.model.evaluation import (
    HEADLINE_METRICS,
    METRIC_NAMES,
    SMALLER_IS_BETTER,
    mean_target_baseline,
)

if TYPE_CHECKING:
    from headwater.core.usecase import Quantity, TrainingSpec
    from headwater.data.lake import Lake

log = get_logger(__name__)
#: The markers around the gate's part of the verdict (rewritten after each decision).
DECISION_START, DECISION_END = "<!-- decision -->", "<!-- /decision -->"

WIDTH, HEIGHT, PAD = 360, 300, 40


def chart_xy(x: float, y: float) -> tuple[float, float]:
    """The SVG position of the unit-square point ``(x, y)`` in a :func:`chart_axes` chart."""
    return PAD + x * (WIDTH - 2 * PAD), HEIGHT - PAD - y * (HEIGHT - 2 * PAD)


def chart_axes(title: str, xlabel: str, ylabel: str) -> list[str]:
    """An open ``<svg>`` with a unit-square frame, titles, ticks and the diagonal (the
    caller appends its marks and closes it)."""
    x0, y0 = chart_xy(0, 0)
    x1, y1 = chart_xy(1, 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{html.escape(title)}">',
        f'<text x="{WIDTH / 2}" y="16" text-anchor="middle" font-size="13">'
        f"{html.escape(title)}</text>",
        f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" fill="none" stroke="#999"/>',
        f'<text x="{WIDTH / 2}" y="{HEIGHT - 8}" text-anchor="middle" font-size="11">'
        f"{html.escape(xlabel)}</text>",
        f'<text x="12" y="{HEIGHT / 2}" font-size="11" transform="rotate(-90 12 {HEIGHT / 2})" '
        f'text-anchor="middle">{html.escape(ylabel)}</text>',
    ]
    for tick in (0.0, 0.5, 1.0):
        tx, _ = chart_xy(tick, 0)
        _, ty = chart_xy(0, tick)
        parts.append(
            f'<text x="{tx}" y="{y0 + 14}" font-size="10" text-anchor="middle">{tick:g}</text>'
        )
        parts.append(
            f'<text x="{x0 - 6}" y="{ty + 3}" font-size="10" text-anchor="end">{tick:g}</text>'
        )
    diag = f"{x0},{y0} {x1},{y1}"
    parts.append(f'<polyline points="{diag}" fill="none" stroke="#ccc" stroke-dasharray="4"/>')
    return parts


def chart_polyline(points: Sequence[tuple[float, float]], colour: str, css_class: str = "") -> str:
    """A line through unit-square ``points`` in a :func:`chart_axes` chart."""
    coords = " ".join("{:.1f},{:.1f}".format(*chart_xy(x, y)) for x, y in points)
    named = f' class="{html.escape(css_class)}"' if css_class else ""
    return f'<polyline{named} points="{coords}" fill="none" stroke="{colour}" stroke-width="2"/>'


def roc_svg(points: Sequence[tuple[float, float]], auc: float) -> str:
    """ROC curve (false positive rate, true positive rate) as SVG."""
    parts = chart_axes(f"ROC curve (AUC {auc:.3f})", "false positive rate", "true positive rate")
    parts.append(chart_polyline(points, "#1f6feb"))
    return "".join(parts) + "</svg>"


def calibration_svg(rows: Sequence[Mapping[str, float]], observed: str = "observed rate") -> str:
    """Reliability diagram: mean predicted probability against observed rate per bin."""
    parts = chart_axes("Calibration", "mean predicted probability", observed)
    points = [(float(r["mean_probability"]), float(r["observed_rate"])) for r in rows]
    parts.append(chart_polyline(points, "#d1242f"))
    for x, y in points:
        cx, cy = chart_xy(x, y)
        parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3" fill="#d1242f"/>')
    return "".join(parts) + "</svg>"


def coefficients_svg(weights: Sequence[tuple[str, float]]) -> str:
    """Horizontal bars of the largest coefficients by magnitude (on scaled features)."""
    height = 20 * len(weights) + 40
    scale = max((abs(w) for _, w in weights), default=1.0) or 1.0
    mid = 230
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="460" height="{height}" role="img" '
        'aria-label="largest coefficients">',
        '<text x="230" y="16" text-anchor="middle" font-size="13">Largest coefficients</text>',
        f'<line x1="{mid}" y1="24" x2="{mid}" y2="{height - 10}" stroke="#999"/>',
    ]
    for i, (name, weight) in enumerate(weights):
        y = 30 + 20 * i
        length = abs(weight) / scale * 110
        x = mid if weight >= 0 else mid - length
        colour = "#d1242f" if weight > 0 else "#1f6feb"
        parts.append(
            f'<rect x="{x:.1f}" y="{y}" width="{length:.1f}" height="14" fill="{colour}"/>'
        )
        anchor, tx = ("end", mid - 4) if weight >= 0 else ("start", mid + 4)
        parts.append(
            f'<text x="{tx}" y="{y + 11}" font-size="10" text-anchor="{anchor}">'
            f"{html.escape(name)} ({weight:+.3f})</text>"
        )
    return "".join(parts) + "</svg>"


def human_key(key: str) -> str:
    """The human name of a metric or field (``auc_roc``: ``AUC``; ``holdout_from``: spaced)."""
    return METRIC_NAMES.get(key, key.replace("_", " "))


def _table(rows: Mapping[str, Any]) -> str:
    cells = "".join(
        f"<tr><th>{html.escape(human_key(str(k)))}</th><td>{_fmt(v)}</td></tr>"
        for k, v in rows.items()
    )
    return f"<table>{cells}</table>"


def baseline_name(name: str, spec: TrainingSpec | None) -> str:
    """A baseline's human name (the mean-target one after the target's human name, when the
    use case's ``spec`` is known)."""

    if spec is not None and name == mean_target_baseline(spec.target.column):
        return f"mean {spec.target.name}"
    return name.replace("_", " ")


def verdict_table(metrics: TrainingMetrics, spec: TrainingSpec) -> str:
    """The model beside production (same holdout, when measured) and each baseline."""
    model = {**metrics.holdout, **metrics.regression}
    columns: list[tuple[str, Mapping[str, Any]]] = [("this model", model)]
    production = metrics.production_on_holdout
    if production is not None and production.error is None:
        columns.append((f"production {production.version}", production.metrics))
    for name, values in metrics.baselines.items():
        columns.append((f"baseline: {baseline_name(name, spec)}", values))
    rows = [m for m in HEADLINE_METRICS if any(m in values for _, values in columns)]
    head = "".join(f"<th>{html.escape(title)}</th>" for title, _ in columns)
    body = "".join(
        f"<tr><th>{html.escape(human_key(m))}</th>"
        + "".join(
            f"<td>{_fmt(values[m])}</td>" if m in values else "<td>–</td>" for _, values in columns
        )
        + "</tr>"
        for m in rows
    )
    smaller = ", ".join(
        human_key(m) for m in HEADLINE_METRICS if m in SMALLER_IS_BETTER and m in rows
    )
    note = f"<p>Higher is better, except {html.escape(smaller)}.</p>" if smaller else ""
    return f"<table><tr><th>metric</th>{head}</tr>{body}</table>{note}"


def decision_html(decision: Mapping[str, Any] | None) -> str:
    """The gate's part of the verdict: the decision, why, and its numbers (or: not yet)."""
    if not decision:
        text = (
            "<p><strong>Gate: not decided yet.</strong> The gate compares this model with "
            "production on the same holdout after training; its decision appears here.</p>"
        )
    else:
        kind = str(decision.get("decision", "undecided"))
        when = decision.get("decided_at", "")
        text = (
            f"<p><strong>Gate: {html.escape(kind)}</strong>"
            + (f" ({html.escape(str(when))})" if when else "")
            + f": {html.escape(str(decision.get('reason', '')))}</p>"
        )
        numbers = comparison_text(decision.get("comparison") or {})
        if numbers:
            text += f"<p>{html.escape(numbers)}</p>"
    return f"{DECISION_START}{text}{DECISION_END}"


def with_decision(page: str, decision: Mapping[str, Any] | None) -> str:
    """``page`` with its decision part rewritten (unchanged when it has none)."""
    pattern = re.compile(re.escape(DECISION_START) + ".*?" + re.escape(DECISION_END), re.S)
    return pattern.sub(lambda _: decision_html(decision), page, count=1)


def refresh_report(lake: Lake, model: str, version: str, decision: Mapping[str, Any]) -> bool:
    """Rewrite the decision part of a version's report.html; False when it has no report.

    A report that cannot be rewritten is logged, never raised: the decision stands.
    """

    parts = model_parts(model, version, REPORT)
    try:
        if not lake.exists(*parts):
            return False
        page = lake.read_bytes(*parts).decode("utf-8")
        lake.write_bytes(with_decision(page, decision).encode("utf-8"), *parts)
    except Exception as exc:  # the report is a view of decision.json, which is written
        log.warning("report not refreshed", model=model, version=version, error=str(exc))
        return False
    return True


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return html.escape(str(value))


def _quantity(quantity: Quantity) -> str:
    unit = f", {quantity.unit}" if quantity.unit else ""
    return f"{quantity.name}{unit}"


def lineage_table(lineage: Lineage) -> dict[str, Any]:
    """The lineage's scalar facts for the report's table (the range as ``start..end``)."""
    rows: dict[str, Any] = {}
    for key, value in lineage.to_dict().items():
        if key in ("range", "date_range"):
            rows["date_range"] = str(lineage.range)
        elif not isinstance(value, list | dict):
            rows[key] = value
    return rows


def render_report(
    *,
    title: str,
    spec: TrainingSpec,
    metrics: TrainingMetrics,
    roc_points: Sequence[tuple[float, float]],
    calibration: Sequence[Mapping[str, float]],
    top_coefficients: Sequence[tuple[str, float]],
    lineage: Lineage,
    decision: Mapping[str, Any] | None = None,
) -> str:
    """Render the whole report as one HTML page (names and units from the use case's spec).

    It opens with the verdict: the model beside production and the baselines, the interval
    on the gain over production (when measured), and ``decision`` (None: not decided yet).
    """
    holdout, baselines, regression = metrics.holdout, metrics.baselines, metrics.regression
    descriptions = {b.name: b.description for b in spec.baselines}
    baseline_html = "".join(
        f"<h3>{html.escape(baseline_name(name, spec))}</h3>"
        + (f"<p>{html.escape(descriptions[name])}</p>" if name in descriptions else "")
        + _table(values)
        for name, values in baselines.items()
    )
    named = [(spec.human(name), weight) for name, weight in top_coefficients]
    calibration_rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{_fmt(row[k])}</td>"
            for k in ("bin", "count", "mean_probability", "observed_rate")
        )
        + "</tr>"
        for row in calibration
    )
    lineage_rows = lineage_table(lineage)
    intervals = (metrics.comparison or {}).get("intervals") or {}
    interval_rows = "".join(
        f"<li>{html.escape(human_key(m))}: difference {signed(i['difference'])}, "
        f"{float(i['confidence']) * 100:g}% interval "
        f"[{signed(i['lower'])}, {signed(i['upper'])}]</li>"
        for m, i in intervals.items()
        if isinstance(i, Mapping) and {"difference", "lower", "upper", "confidence"} <= set(i)
    )
    interval_html = (
        f"<p>This model minus production, on the same holdout days:</p><ul>{interval_rows}</ul>"
        if interval_rows
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse;margin:.5em 0}}td,th{{border:1px solid #ddd;padding:3px 8px;
text-align:left}}.plots{{display:flex;flex-wrap:wrap;gap:1em}}</style></head><body>
<h1>{html.escape(title)}</h1>
<section id="verdict"><h2>Verdict</h2>
<p>On the holdout ({html.escape(str(metrics.holdout_from or ""))} on), predicting
{html.escape(spec.label.name)} and {html.escape(_quantity(spec.target))}:</p>
{verdict_table(metrics, spec)}{interval_html}
{decision_html(decision)}
</section>
<h2>Holdout metrics (classifier: {html.escape(spec.label.name)})</h2>{_table(holdout)}
<h2>Baselines on the same holdout</h2>{baseline_html}
<h2>Regression ({html.escape(_quantity(spec.target))})</h2>{_table(regression)}
<div class="plots">{roc_svg(roc_points, float(holdout.get("auc_roc", 0.0)))}
{calibration_svg(calibration, f"observed rate: {spec.label.name}")}</div>
<h2>Calibration table</h2><table><tr><th>bin</th><th>rows</th><th>mean predicted</th>
<th>observed</th></tr>{calibration_rows}</table>
<h2>Largest coefficients</h2>{coefficients_svg(named)}
<h2>Lineage</h2>{_table(lineage_rows)}
</body></html>
"""
