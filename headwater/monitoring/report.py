"""A self-contained HTML monitoring report of a use case, from its published monitoring records.

One page per use case (``reports/<usecase>/monitoring.html``, :func:`headwater.core.layout.
monitoring_report_parts`), rendered from the ``monitoring/<usecase>/<partition>/`` records
(:class:`~headwater.monitoring.monitor.PartitionMonitoring`) and, per production version, the
holdout's calibration table (``metrics.json``):

- the live metric per partition against the holdout figure: **realized** (outcomes arrived:
  a filled dot with its day-block interval) and **estimated** (CBPE of the predictions still
  without an outcome: a hollow diamond, no interval), told apart by shape, legend and table;
- drift per feature per partition, of the clean data and of the served inputs (a heat map
  table: the cell's shade is the measure over its threshold; cells past it are marked alarm);
- the share of inputs outside the training range;
- live calibration (predicted against observed by bin) beside the holdout's;
- shadow against production (the paired comparison), where a shadow served;
- the alerts (:func:`~headwater.monitoring.monitor.alerts_of`) and each partition's notes.

Like the model report (:mod:`headwater.model.report`, whose axes it draws with), the charts are
inline SVG drawn here: no script, no network, so the page opens anywhere, from S3 or from
disk. Every text from data (feature names, labels, versions, notes) is escaped.
:func:`render_monitoring_report` is pure; :func:`monitoring_report` reads the lake and
:func:`publish_monitoring_report` writes the page atomically.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from headwater.core import layout
from headwater.core.records import TrainingMetrics
from headwater.data.lake import LakeError
from headwater.model.comparison import signed
from headwater.model.evaluation import METRIC_NAMES, SMALLER_IS_BETTER
from headwater.model.report import chart_axes, chart_polyline, chart_xy
from headwater.monitoring.drift import DriftReport, FeatureDrift
from headwater.monitoring.monitor import (
    Alert,
    PartitionMonitoring,
    ServedMonitoring,
    alerts_of,
    human_names,
)
from headwater.monitoring.published import monitored_partitions, read_monitoring
from headwater.monitoring.shadow import ShadowComparison
from headwater.registry.registry import Registry
from headwater.serving.capture import PRODUCTION

if TYPE_CHECKING:
    from headwater.core.usecase import UseCase
    from headwater.data.lake import Lake

REALIZED, ESTIMATED = "realized", "estimated"
#: The metrics charted over time, when the records hold them (classifier, then regression).
CHART_METRICS = ("auc_roc", "brier", "rmse")
CHART_WIDTH, CHART_HEIGHT, CHART_PAD = 720, 280, 50
REALIZED_COLOUR, ESTIMATED_COLOUR, HOLDOUT_COLOUR = "#1f6feb", "#9a6700", "#57606a"
LIVE_COLOUR = "#d1242f"
CLEAN_CAPTION = "Clean data against production's training data"
SERVED_CAPTION = "Served inputs and predictions against the serving version's training data"


@dataclass(frozen=True)
class Holdout:
    """What the report shows of a version's holdout (its ``metrics.json``)."""

    #: The classifier's and the regression's holdout metrics, by metric name.
    metrics: Mapping[str, float] = field(default_factory=dict)
    #: Mean predicted against observed rate per score decile.
    calibration: tuple[Mapping[str, float], ...] = ()

    @classmethod
    def of(cls, metrics: TrainingMetrics) -> Holdout:
        """The holdout figures of a version's recorded evaluation."""
        figures = {**metrics.holdout, **metrics.regression}
        return cls(
            metrics={k: float(v) for k, v in figures.items() if _finite(v)},
            calibration=tuple(metrics.calibration or ()),
        )


@dataclass(frozen=True)
class MetricPoint:
    """One live figure of a partition: realized (with its interval) or estimated (CBPE)."""

    partition: str
    version: str
    #: :data:`REALIZED` or :data:`ESTIMATED`.
    kind: str
    value: float
    #: The realized figure's day-block interval (None: too few days; an estimate has none).
    lower: float | None
    upper: float | None
    #: The version's holdout figure (None: the registry has none).
    holdout: float | None
    #: Predictions the figure covers (with an outcome, or without one for an estimate).
    predictions: int
    #: The whole live interval worse than the holdout figure (realized only).
    significantly_worse: bool = False


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _production(record: PartitionMonitoring) -> list[ServedMonitoring]:
    return [s for s in record.served if s.role == PRODUCTION]


def metric_points(
    records: Sequence[PartitionMonitoring],
    metric: str,
    holdouts: Mapping[str, Holdout] | None = None,
) -> list[MetricPoint]:
    """Each partition's realized and estimated ``metric`` of the production role, in order.

    The holdout figure is the record's (beside the realized one), else the version's in
    ``holdouts`` (an estimate has no realized figure for the record to compare).
    """
    points = []
    for record in records:
        for served in _production(record):
            against = {a.metric: a for a in (*served.holdout, *served.regression_holdout)}
            recorded = (holdouts or {}).get(served.version, Holdout()).metrics.get(metric)
            holdout = against[metric].holdout if metric in against else recorded
            for live in (served.classification, served.regression):
                value = live.metrics.get(metric) if live is not None else None
                if live is None or not _finite(value) or not live.with_outcome:
                    continue
                interval = live.intervals.get(metric)
                points.append(
                    MetricPoint(
                        partition=record.partition,
                        version=served.version,
                        kind=REALIZED,
                        value=float(value),
                        lower=interval.lower if interval else None,
                        upper=interval.upper if interval else None,
                        holdout=holdout,
                        predictions=live.with_outcome,
                        significantly_worse=(
                            against[metric].significantly_worse if metric in against else False
                        ),
                    )
                )
            estimate = served.estimate
            if estimate is not None and _finite(estimate.metrics.get(metric)):
                points.append(
                    MetricPoint(
                        partition=record.partition,
                        version=served.version,
                        kind=ESTIMATED,
                        value=float(estimate.metrics[metric]),
                        lower=None,
                        upper=None,
                        holdout=holdout,
                        predictions=estimate.predictions,
                    )
                )
    return points


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def charted_partitions(partitions: Sequence[str], points: Sequence[MetricPoint]) -> list[str]:
    """The chart's axis: from the first partition with a figure to the last monitored one
    (the months before any traffic would squeeze the figures into the chart's edge)."""
    shown = {p.partition for p in points}
    first = next((i for i, partition in enumerate(partitions) if partition in shown), 0)
    return list(partitions[first:])


def metric_chart_svg(metric: str, partitions: Sequence[str], points: Sequence[MetricPoint]) -> str:
    """``metric`` per partition: realized dots with intervals, estimated diamonds, holdout line."""
    name = METRIC_NAMES.get(metric, metric)
    values = [p.value for p in points]
    values += [v for p in points for v in (p.lower, p.upper, p.holdout) if v is not None]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    span = (high - low) or max(abs(high), 1.0) * 0.1
    low, high = low - span * 0.1, high + span * 0.1
    left, right = CHART_PAD + 10, CHART_WIDTH - 20
    top, bottom = 30, CHART_HEIGHT - CHART_PAD
    step = (right - left) / max(len(partitions), 1)
    slot = {p: i for i, p in enumerate(partitions)}

    def x(partition: str) -> float:
        return left + step * (slot[partition] + 0.5)

    def y(value: float) -> float:
        return bottom - (value - low) / (high - low) * (bottom - top)

    better = "lower is better" if metric in SMALLER_IS_BETTER else "higher is better"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="metric-chart" data-metric="{_esc(metric)}"'
        f' width="{CHART_WIDTH}" height="{CHART_HEIGHT}" role="img" '
        f'aria-label="{_esc(name)} per partition">',
        f'<text x="{CHART_WIDTH / 2}" y="16" text-anchor="middle" font-size="13">'
        f"{_esc(name)} per partition ({better})</text>",
        f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" '
        'fill="none" stroke="#999"/>',
    ]
    for tick in (low, (low + high) / 2, high):
        parts.append(
            f'<text x="{left - 6}" y="{y(tick) + 3:.1f}" font-size="10" text-anchor="end">'
            f"{tick:.3f}</text>"
        )
    every = max(1, math.ceil(len(partitions) / 12))  # at most a dozen labels on the axis
    for i, partition in enumerate(partitions):
        if i % every == 0:
            parts.append(
                f'<text class="partition" x="{x(partition):.1f}" y="{bottom + 14}" font-size="10" '
                f'text-anchor="middle">{_esc(partition)}</text>'
            )
    # The holdout figure of the version that served each partition (a version may change).
    seen = set()
    for p in points:
        if p.holdout is None or (p.partition, p.version) in seen:
            continue
        seen.add((p.partition, p.version))
        hy = y(p.holdout)
        parts.append(
            f'<line class="holdout" data-partition="{_esc(p.partition)}" '
            f'x1="{x(p.partition) - step / 2:.1f}" x2="{x(p.partition) + step / 2:.1f}" '
            f'y1="{hy:.1f}" y2="{hy:.1f}" stroke="{HOLDOUT_COLOUR}" stroke-width="2" '
            f'stroke-dasharray="5 3"><title>holdout {p.holdout:.3f} ({_esc(p.version)})'
            "</title></line>"
        )
    for p in points:
        px, py = x(p.partition), y(p.value)
        shift = -6 if p.kind == REALIZED else 6  # side by side when a partition has both
        px += shift if any(q.partition == p.partition and q.kind != p.kind for q in points) else 0
        tip = f"{p.partition} {p.kind} {name} {p.value:.3f}"
        if p.kind == REALIZED:
            if p.lower is not None and p.upper is not None:
                tip += f" [{p.lower:.3f}, {p.upper:.3f}]"
                parts.append(
                    f'<line class="interval" x1="{px:.1f}" x2="{px:.1f}" y1="{y(p.lower):.1f}" '
                    f'y2="{y(p.upper):.1f}" stroke="{REALIZED_COLOUR}" stroke-width="2"/>'
                )
            colour = LIVE_COLOUR if p.significantly_worse else REALIZED_COLOUR
            parts.append(
                f'<circle class="realized" data-partition="{_esc(p.partition)}" '
                f'data-value="{p.value:.6g}" cx="{px:.1f}" cy="{py:.1f}" r="4.5" '
                f'fill="{colour}"><title>{_esc(tip)}</title></circle>'
            )
        else:
            diamond = f"{px:.1f},{py - 6:.1f} {px + 6:.1f},{py:.1f} {px:.1f},{py + 6:.1f} "
            diamond += f"{px - 6:.1f},{py:.1f}"
            parts.append(
                f'<polygon class="estimated" data-partition="{_esc(p.partition)}" '
                f'data-value="{p.value:.6g}" points="{diamond}" fill="white" '
                f'stroke="{ESTIMATED_COLOUR}" stroke-width="2" stroke-dasharray="2 1.5">'
                f"<title>{_esc(tip)} (CBPE, predictions without their outcome)</title></polygon>"
            )
    legend_y = CHART_HEIGHT - 12
    parts += [
        f'<circle cx="{left}" cy="{legend_y - 4}" r="4.5" fill="{REALIZED_COLOUR}"/>',
        f'<text x="{left + 8}" y="{legend_y}" font-size="11">realized (outcomes arrived), '
        "95% interval</text>",
        f'<polygon points="{left + 250},{legend_y - 10} {left + 256},{legend_y - 4} '
        f'{left + 250},{legend_y + 2} {left + 244},{legend_y - 4}" fill="white" '
        f'stroke="{ESTIMATED_COLOUR}" stroke-width="2"/>',
        f'<text x="{left + 262}" y="{legend_y}" font-size="11">estimated (CBPE, without '
        "outcome)</text>",
        f'<line x1="{left + 470}" x2="{left + 495}" y1="{legend_y - 4}" y2="{legend_y - 4}" '
        f'stroke="{HOLDOUT_COLOUR}" stroke-width="2" stroke-dasharray="5 3"/>',
        f'<text x="{left + 500}" y="{legend_y}" font-size="11">holdout (at training)</text>',
    ]
    return "".join(parts) + "</svg>"


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def metric_table(metric: str, points: Sequence[MetricPoint]) -> str:
    """The chart's figures as a table: one row per partition and kind."""
    rows = []
    for p in points:
        kind = "realized" if p.kind == REALIZED else "estimated (CBPE, without outcome)"
        band = f"[{_num(p.lower)}, {_num(p.upper)}]" if p.lower is not None else "–"
        flag = " significantly worse" if p.significantly_worse else ""
        rows.append(
            f'<tr class="{p.kind}{flag.replace(" ", "-") if flag else ""}">'
            f"<td>{_esc(p.partition)}</td><td>{_esc(p.version)}</td>"
            f'<td class="kind">{kind}</td><td>{_num(p.value)}</td><td>{band}</td>'
            f"<td>{_num(p.holdout)}</td><td>{p.predictions:,}</td><td>{flag.strip()}</td></tr>"
        )
    name = _esc(METRIC_NAMES.get(metric, metric))
    return (
        f'<table class="metric-table" data-metric="{_esc(metric)}"><tr><th>partition</th>'
        f"<th>version</th><th>figure</th><th>{name}</th><th>95% interval</th><th>holdout</th>"
        f"<th>predictions</th><th></th></tr>{''.join(rows)}</table>"
    )


def _shade(drift: FeatureDrift) -> str:
    if drift.value is None or not drift.threshold:
        return ""
    ratio = min(drift.value / drift.threshold, 2.0) / 2.0
    return f' style="background:rgba(209,36,47,{0.08 + 0.72 * ratio:.2f})"'


def drift_table(
    drifts: Mapping[str, DriftReport], human: Callable[[str], str], caption: str
) -> str:
    """Drift per feature (rows) per partition (columns), each cell shaded by measure/threshold,
    ``alarm`` where the measure is past its threshold (``drifts``: partition -> report)."""
    partitions = list(drifts)
    rows: dict[str, dict[str, FeatureDrift]] = {}
    for partition, report in drifts.items():
        for d in (*report.features, *report.predictions):
            rows.setdefault(d.feature, {})[partition] = d
    head = "".join(f'<th class="partition">{_esc(p)}</th>' for p in partitions)
    body = []
    for feature, cells in rows.items():
        latest = cells[max(cells, key=partitions.index)]
        measure = f"{latest.measure.upper()} &gt; {latest.threshold:.2f}"
        tds = []
        for partition in partitions:
            d = cells.get(partition)
            if d is None:
                tds.append('<td class="drift none">–</td>')
                continue
            alarm = d.drifted
            title = (
                f"{human(feature)}: {d.measure.upper()} {_num(d.value)} "
                f"{'>' if alarm else '≤'} threshold {d.threshold:.3f}; {d.count:,} values, "
                f"nulls {d.null_share:.1%} (reference {d.reference_null_share:.1%})"
            )
            marker = '<span class="marker" aria-label="over threshold">▲</span>' if alarm else ""
            tds.append(
                f'<td class="drift{" alarm" if alarm else ""}" data-feature="{_esc(feature)}" '
                f'data-partition="{_esc(partition)}" title="{_esc(title)}"{_shade(d)}>'
                f"{_num(d.value, 2)}{marker}</td>"
            )
        body.append(
            f'<tr><th scope="row">{_esc(human(feature))}</th><td class="measure">{measure}</td>'
            f"{''.join(tds)}</tr>"
        )
    if not body:
        return f"<p>{_esc(caption)}: nothing measured yet.</p>"
    return (
        f'<table class="drift-table"><caption>{_esc(caption)}</caption><tr><th>feature</th>'
        f"<th>alarm past (latest)</th>{head}</tr>{''.join(body)}</table>"
    )


def out_of_range_table(records: Sequence[PartitionMonitoring]) -> str:
    """Per partition, the share of clean rows and of served answers outside the training range."""
    rows = []
    for r in records:
        drift = r.clean_drift
        clean = f"{drift.out_of_range_share:.1%}" if drift is not None else "–"
        served = _production(r)
        answers = sum(s.predictions for s in served)
        outside = sum(s.out_of_range for s in served)
        share = f"{outside / answers:.1%}" if answers else "–"
        rows.append(
            f"<tr><td>{_esc(r.partition)}</td><td>{r.clean_rows:,}</td><td>{clean}</td>"
            f"<td>{answers:,}</td><td>{share}</td></tr>"
        )
    return (
        '<table class="out-of-range"><tr><th>partition</th><th>clean rows</th>'
        "<th>rows out of range</th><th>answers served</th><th>answers out of range</th></tr>"
        f"{''.join(rows)}</table>"
    )


def calibration_chart_svg(
    live: Sequence[Mapping[str, float]], holdout: Sequence[Mapping[str, float]], observed: str
) -> str:
    """Reliability diagram: the live bins beside the holdout's (mean predicted, observed)."""
    parts = chart_axes("Calibration, live and holdout", "mean predicted probability", observed)
    for rows, colour, kind in ((holdout, HOLDOUT_COLOUR, "holdout"), (live, LIVE_COLOUR, "live")):
        points = [(float(r["mean_probability"]), float(r["observed_rate"])) for r in rows]
        if not points:
            continue
        parts.append(chart_polyline(points, colour, kind))
        for px, py in points:
            cx, cy = chart_xy(px, py)
            parts.append(
                f'<circle class="{kind}" cx="{cx:.1f}" cy="{cy:.1f}" r="3" fill="{colour}"/>'
            )
    parts.append(
        f'<text x="60" y="50" font-size="11" fill="{LIVE_COLOUR}">live</text>'
        f'<text x="60" y="64" font-size="11" fill="{HOLDOUT_COLOUR}">holdout</text>'
    )
    return "".join(parts) + "</svg>"


def calibration_section(
    records: Sequence[PartitionMonitoring],
    holdouts: Mapping[str, Holdout],
    observed: str,
) -> str:
    """The latest partition's live calibration (production, outcomes arrived) and the holdout's."""
    for record in reversed(records):
        for served in _production(record):
            live = served.classification
            if live is None or not live.calibration or not live.with_outcome:
                continue
            holdout = list(holdouts.get(served.version, Holdout()).calibration)
            by_bin = {int(r["bin"]): r for r in holdout}
            rows = "".join(
                f"<tr><td>{int(r['bin'])}</td><td>{int(r['count']):,}</td>"
                f"<td>{_num(r['mean_probability'])}</td><td>{_num(r['observed_rate'])}</td>"
                f"<td>{_num(by_bin[int(r['bin'])]['mean_probability'])}</td>"
                f"<td>{_num(by_bin[int(r['bin'])]['observed_rate'])}</td></tr>"
                if int(r["bin"]) in by_bin
                else f"<tr><td>{int(r['bin'])}</td><td>{int(r['count']):,}</td>"
                f"<td>{_num(r['mean_probability'])}</td><td>{_num(r['observed_rate'])}</td>"
                "<td>–</td><td>–</td></tr>"
                for r in live.calibration
            )
            return (
                f"<p>Partition {_esc(record.partition)}, version {_esc(served.version)}, "
                f"{live.with_outcome:,} predictions with their outcome.</p>"
                f'<div class="plots">{calibration_chart_svg(live.calibration, holdout, observed)}'
                '</div><table class="calibration"><tr><th>bin</th><th>live rows</th>'
                "<th>live mean predicted</th><th>live observed</th><th>holdout mean predicted"
                f"</th><th>holdout observed</th></tr>{rows}</table>"
            )
    return "<p>No partition has outcomes for its served predictions yet.</p>"


def shadow_section(records: Sequence[PartitionMonitoring]) -> str:
    """The paired comparison of shadow against production, per partition that has one."""
    rows = []
    for record in records:
        if not record.shadow:
            continue
        try:
            c = ShadowComparison.from_dict(record.shadow)
        except ValueError:
            text = record.shadow.get("text", "")
            rows.append(f'<tr><td>{_esc(record.partition)}</td><td colspan="8">{_esc(text)}</td>')
            continue
        gain = signed(c.gain) if c.gain is not None else "–"
        if c.lower is not None and c.upper is not None:
            gain += f", {c.confidence * 100:g}% [{signed(c.lower)}, {signed(c.upper)}]"
        waiting = f", {c.without_outcome:,} without outcome" if c.without_outcome else ""
        # the numbers are in the row: the verdict cell says why only when no verdict was put
        why = "".join(f"<br><small>{_esc(r)}</small>" for r in c.refusals)
        rows.append(
            f'<tr class="shadow {_esc(c.verdict)}" title="{_esc(c.reason)}">'
            f"<td>{_esc(record.partition)}</td>"
            f"<td>{_esc(c.shadow_version)} vs {_esc(c.production_version)}</td>"
            f"<td>{_esc(METRIC_NAMES.get(c.metric, c.metric))}</td><td>{_num(c.shadow, 4)}</td>"
            f'<td>{_num(c.production, 4)}</td><td class="gain">{gain}</td>'
            f"<td>{c.margin:g}</td><td>{c.days} days, {c.pairs:,} pairs{waiting}</td>"
            f'<td class="verdict"><strong>{_esc(str(c.verdict).replace("_", " "))}</strong>'
            f"{why}</td></tr>"
        )
    if not rows:
        return "<p>No shadow model served in these partitions.</p>"
    return (
        '<table class="shadow"><tr><th>partition</th><th>models</th><th>metric</th>'
        "<th>shadow</th><th>production</th><th>gain (shadow better: +), interval</th>"
        f"<th>margin</th><th>compared</th><th>verdict</th></tr>{''.join(rows)}</table>"
    )


def served_table(records: Sequence[PartitionMonitoring]) -> str:
    """Per partition, version and role: predictions and what became of their outcomes."""
    rows = []
    for r in records:
        for s in r.served:
            o = s.outcomes
            rows.append(
                f"<tr><td>{_esc(r.partition)}</td><td>{_esc(s.role)}</td>"
                f"<td>{_esc(s.version)}</td><td>{s.predictions:,}</td>"
                f"<td>{o.get('matched', 0):,}</td><td>{o.get('pending', 0):,}</td>"
                f"<td>{o.get('missing', 0) + o.get('no_key', 0):,}</td>"
                f"<td>{o.get('no_label', 0):,}</td></tr>"
            )
    if not rows:
        return "<p>No prediction was captured in these partitions.</p>"
    return (
        '<table class="served"><tr><th>partition</th><th>role</th><th>version</th>'
        "<th>predictions</th><th>with outcome</th><th>pending</th><th>never arrived</th>"
        f"<th>without label</th></tr>{''.join(rows)}</table>"
    )


def render_monitoring_report(
    records: Sequence[PartitionMonitoring],
    *,
    title: str,
    usecase: UseCase | None = None,
    alerts: Sequence[Alert] = (),
    holdouts: Mapping[str, Holdout] | None = None,
    generated_at: str = "",
    notes: Sequence[str] = (),
) -> str:
    """The whole report as one HTML page (names from the use case's spec when given).

    Args:
        records: the use case's monitored partitions, oldest first.
        title: the page's title.
        usecase: the use case (human names of features, label and target); None: raw names.
        alerts: the alerts the partitions raise.
        holdouts: per version, its holdout figures and calibration table (``metrics.json``).
        generated_at: when the page was rendered (shown as is).
        notes: what else to tell (a partition that could not be read).
    """
    human = human_names(usecase)
    observed = f"observed rate: {usecase.training.label.name}" if usecase else "observed rate"
    partitions = [r.partition for r in records]
    charts = []
    for metric in CHART_METRICS:
        points = metric_points(records, metric, holdouts)
        if points:
            charts.append(
                f'<h3>{_esc(METRIC_NAMES.get(metric, metric))}</h3><div class="plots">'
                f"{metric_chart_svg(metric, charted_partitions(partitions, points), points)}</div>"
                f"{metric_table(metric, points)}"
            )
    live = "".join(charts) or "<p>No live figure yet: no prediction served in production.</p>"
    clean = {r.partition: r.clean_drift for r in records if r.clean_drift is not None}
    skew = {r.partition: s.drift for r in records for s in _production(r) if s.drift is not None}
    alert_items = "".join(
        f'<li class="alert" data-kind="{_esc(a.kind)}"><strong>{_esc(a.kind)}</strong>: '
        f"{_esc(a.message)}</li>"
        for a in alerts
    )
    told = "".join(f"<li>{_esc(n)}</li>" for n in notes)
    told += "".join(f"<li>{_esc(r.partition)}: {_esc(n)}</li>" for r in records for n in r.notes)
    stamp = f" Rendered {_esc(generated_at)}." if generated_at else ""
    span = f"{_esc(partitions[0])} to {_esc(partitions[-1])}" if partitions else "none yet"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse;margin:.5em 0}}td,th{{border:1px solid #ddd;padding:3px 8px;
text-align:left}}caption{{text-align:left;font-weight:600;padding:.3em 0}}
.plots{{display:flex;flex-wrap:wrap;gap:1em}}td.alarm{{font-weight:700;outline:2px solid #d1242f}}
tr.estimated td.kind{{font-style:italic;color:#9a6700}}li.alert{{color:#a40e26}}
.drift-table{{overflow-x:auto;display:block}}.drift-table td,.drift-table th{{padding:2px 4px}}
.drift-table td.drift{{font-size:11px;text-align:right;font-variant-numeric:tabular-nums}}
th.partition{{writing-mode:vertical-rl;transform:rotate(180deg);white-space:nowrap;
font-weight:400;font-size:11px}}td.measure{{white-space:nowrap;font-size:11px}}
.drift-table th[scope=row]{{max-width:11em;font-size:13px;overflow-wrap:anywhere}}
td.drift{{position:relative;padding:7px 4px 2px}}
.marker{{font-size:8px;line-height:1;position:absolute;top:0;right:1px}}</style></head><body>
<h1>{_esc(title)}</h1>
<p>Monitored partitions: {span} ({len(records)}).{stamp}</p>
<section id="alerts"><h2>Alerts</h2>
{f"<ul>{alert_items}</ul>" if alert_items else '<p class="no-alert">No alert.</p>'}</section>
<section id="live"><h2>Live performance against the holdout</h2>
<p>Realized figures need the outcomes of the served predictions; the predictions without
one (pending, or whose outcome never arrives) have their figure estimated from the served
probabilities (CBPE), drawn hollow. A red dot: its whole interval is worse than the holdout
figure.</p>{live}
<h3>Predictions and their outcomes</h3>{served_table(records)}</section>
<section id="drift"><h2>Drift per feature</h2>
<p>Each cell is the measure of the partition against the training reference, shaded by its
ratio to the threshold; a marked cell (▲) is past its threshold.</p>
{drift_table(clean, human, CLEAN_CAPTION)}
{drift_table(skew, human, SERVED_CAPTION)}
</section>
<section id="out-of-range"><h2>Inputs outside the training range</h2>
{out_of_range_table(records)}</section>
<section id="calibration"><h2>Live calibration</h2>
{calibration_section(records, holdouts or {}, observed)}</section>
<section id="shadow"><h2>Shadow against production</h2>{shadow_section(records)}</section>
<section id="notes"><h2>Notes</h2>{f"<ul>{told}</ul>" if told else "<p>None.</p>"}</section>
</body></html>
"""


def monitoring_report(
    lake: Lake, usecase: UseCase, *, min_predictions: int, generated_at: str = ""
) -> str:
    """The use case's report from the lake: every monitored partition, its alerts (each against
    the partition before it) and the holdout calibration of each version that served."""
    records: list[PartitionMonitoring] = []
    alerts: list[Alert] = []
    unreadable = []
    previous = None
    for key in monitored_partitions(lake, usecase.name):
        try:
            record = read_monitoring(lake, usecase.name, key)
        except LakeError as exc:
            unreadable.append(f"{key}: unreadable ({exc})")
            previous = None
            continue
        alerts += alerts_of(record, previous, usecase, min_predictions=min_predictions)
        records.append(record)
        previous = record
    registry = Registry(lake, usecase.name)
    versions = {s.version for r in records for s in r.served} | {r.production for r in records}
    holdouts = {
        version: Holdout.of(registry.read_metrics(version))
        for version in sorted(versions - {""})
        if registry.is_complete(version)
    }
    return render_monitoring_report(
        records,
        title=f"Monitoring: {usecase.title}",
        usecase=usecase,
        alerts=alerts,
        holdouts=holdouts,
        generated_at=generated_at,
        notes=unreadable,
    )


def publish_monitoring_report(
    lake: Lake, usecase: UseCase, *, min_predictions: int, generated_at: str = ""
) -> str:
    """Write the use case's report to ``reports/<usecase>/monitoring.html`` (atomic); its URI."""
    page = monitoring_report(
        lake, usecase, min_predictions=min_predictions, generated_at=generated_at
    )
    parts = layout.monitoring_report_parts(usecase.name)
    lake.write_bytes(page.encode("utf-8"), *parts)
    return lake.uri_of(*parts)
