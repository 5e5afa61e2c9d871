"""End-of-run notifications: exactly one per run, with a section per use case, and any failures."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from headwater import aws
from headwater.core.config import Settings
from headwater.core.logs import get_logger
from headwater.model.evaluation import HEADLINE_METRICS, METRIC_NAMES
from headwater.serving.store import DecisionKind

if TYPE_CHECKING:  # the measures load pandas; a notification only carries their alerts
    from headwater.monitoring.monitor import Alert

log = get_logger(__name__)


@dataclass(frozen=True)
class TaskFailure:
    """One failed task and why."""

    task: str
    error: str


#: Metrics given in the target's unit (a regression error), the others as plain numbers.
IN_TARGET_UNITS = frozenset({"rmse", "mae"})


def metrics_text(metrics: Mapping[str, Any], unit: str = "") -> str:
    """Named metrics in one line: ``AUC 0.7012, log loss 0.5123, RMSE 41.20 min``."""
    parts = []
    for key in HEADLINE_METRICS:
        label, value = METRIC_NAMES[key], metrics.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if key in IN_TARGET_UNITS:
            parts.append(f"{label} {value:.2f}{' ' + unit if unit else ''}")
        else:
            parts.append(f"{label} {value:.4f}")
    return ", ".join(parts)


@dataclass(frozen=True)
class ModelSummary:
    """What a run did to a use case's models: the version, its holdout and the gate's decision.

    ``label`` and ``target`` are the human names of what the classifier and the regression
    predict, and ``unit`` the target's unit (from the use case's training spec).
    """

    version: str
    trained: bool
    label: str = ""
    target: str = ""
    unit: str = ""
    holdout: dict[str, float] = field(default_factory=dict)
    regression: dict[str, float] = field(default_factory=dict)
    decision: str = ""
    reason: str = ""
    # Why this run trained nothing, reusing ``version`` (e.g. unchanged inputs).
    skipped: str = ""
    # The gate's numbers: gain over production, its interval, the margin (comparison_text).
    interval: str = ""

    def lines(self, name: str) -> list[tuple[str, str]]:
        """(heading, text) lines for the message."""
        if not self.trained:
            return [("Model", f"{name} {self.version} not trained")]
        out = [("Model", f"{name}: {self.skipped}" if self.skipped else f"{name} {self.version}")]
        holdout = metrics_text(self.holdout)
        if holdout:
            out.append(("Holdout", f"{self.label}: {holdout}" if self.label else holdout))
        regression = metrics_text(self.regression, self.unit)
        if regression:
            out.append(
                ("Regression", f"{self.target}: {regression}" if self.target else regression)
            )
        if self.interval:
            out.append(("Interval", self.interval))
        promoted = "yes" if self.decision == DecisionKind.PROMOTED else "no"
        out.append(("Promoted", f"{promoted}: {self.reason or 'no decision recorded'}"))
        return out


@dataclass(frozen=True)
class UseCaseSection:
    """What a run did for one use case: partitions, rows per zone, quarantined rows, models.

    ``quarantined`` is the total; ``quarantined_by_source`` says which sources' rows they were.
    """

    usecase: str
    title: str = ""
    date_range: str = ""  # the use case's own range in the run, "first..last"
    partitions: int = 0
    complete: int = 0
    # Partitions already published before this run (Luigi skipped them).
    skipped: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    quarantined: int = 0
    quarantined_by_source: dict[str, int] = field(default_factory=dict)
    model: ModelSummary | None = None
    # The Live section: each monitored partition of the range at a glance
    # (headwater.monitoring.monitor.summary_lines), oldest first.
    live: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The section of the message body."""
        heading = f"== {self.usecase}" + (f": {self.title}" if self.title else "") + " =="
        lines = [heading]
        if self.date_range:
            lines.append(_line("Dates", self.date_range))
        skipped = f" ({self.skipped} already published, skipped)" if self.skipped else ""
        lines.append(_line("Partitions", f"{self.complete} of {self.partitions} clean{skipped}"))
        for name, count in sorted(self.rows.items()):
            lines.append(_line(f"Rows {name}", f"{count:,}"))
        by_source = ", ".join(
            f"{name} {count:,}" for name, count in self.quarantined_by_source.items() if count
        )
        quarantined = f"{self.quarantined:,}" + (f" ({by_source})" if by_source else "")
        lines.append(_line("Quarantined", quarantined))
        if self.model is not None:
            lines += [_line(key, text) for key, text in self.model.lines(self.usecase)]
        if self.live:
            lines += ["Live:", *(f"  {line}" for line in self.live)]
        return lines


def _line(key: str, value: object) -> str:
    return f"{key + ':':<12} {value}"


@dataclass(frozen=True)
class RunReport:
    """Everything the notification says about a run: common facts, then one section per use case."""

    run_id: str
    stage: str
    succeeded: bool
    started_at: str
    duration_seconds: float
    date_range: str
    sections: list[UseCaseSection] = field(default_factory=list)
    failures: list[TaskFailure] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)
    logs: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # What monitoring found wrong in this run's partitions (each also sent on its own).
    alerts: list[Alert] = field(default_factory=list)

    @property
    def usecases(self) -> list[str]:
        """The use cases of the run, in order."""
        return [section.usecase for section in self.sections]

    @property
    def partitions(self) -> int:
        """Partitions of the range, over every use case."""
        return sum(section.partitions for section in self.sections)

    def section(self, usecase: str) -> UseCaseSection:
        """The section of ``usecase``."""
        for section in self.sections:
            if section.usecase == usecase:
                return section
        raise KeyError(f"the report has no section for use case {usecase!r}")

    @property
    def subject(self) -> str:
        """A one-line subject (channels shorten it to their own limits)."""
        what = ", ".join(self.usecases) or "no use case"
        if self.succeeded:
            return (
                f"Headwater {self.stage} run {self.run_id} succeeded: "
                f"{self.partitions} partitions of {what}, {self.date_range}"
            )
        return (
            f"Headwater {self.stage} run {self.run_id} FAILED: "
            f"{len(self.failures)} task(s) failed, {what}, {self.date_range}"
        )

    def body(self) -> str:
        """The human-readable message body."""
        lines = [
            self.subject,
            "",
            _line("Run id", self.run_id),
            _line("Stage", self.stage),
            _line("Dates", self.date_range),
            _line("Started", self.started_at),
            _line("Duration", f"{self.duration_seconds:.1f} s"),
            _line("Use cases", ", ".join(self.usecases) or "none"),
        ]
        for key, value in self.extra.items():
            lines.append(f"{key}: {value}")
        for section in self.sections:
            lines += ["", *section.lines()]
        if self.alerts:
            lines += ["", f"Alerts: {len(self.alerts)}"]
            lines += [f"  - {alert.message}" for alert in self.alerts]
        if self.failures:
            lines += ["", "Failed tasks:"]
            # A failure's detail (an exception's frames) is indented under its line.
            lines += [f"  - {f.task}: {f.error}".replace("\n", "\n      ") for f in self.failures]
        if self.not_run:
            lines += ["", f"Not run because an upstream task failed: {len(self.not_run)}"]
            lines += [f"  - {name}" for name in self.not_run[:20]]
        lines += ["", f"Logs: {self.logs}"]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, with the rendered subject."""
        return {**asdict(self), "subject": self.subject}


class Notifier(Protocol):
    """A channel that delivers the end-of-run report, and alerts."""

    def notify(self, report: RunReport) -> str:
        """Deliver ``report``; return where it went (a path or a message id)."""
        ...

    def alert(self, alert: Alert, run_id: str) -> str:
        """Deliver one alert (its sentence); return where it went."""
        ...


#: Alerts go to this folder of the outbox (the run notifications stay one file a run).
ALERTS = "alerts"


class OutboxNotifier:
    """Embedded default: one JSON file per run in an outbox directory, plus a log line."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def notify(self, report: RunReport) -> str:
        """Write ``<outbox>/<run_id>.json`` atomically."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{report.run_id}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(report.to_dict(), indent=2, default=str), encoding="utf-8")
        os.replace(tmp, path)
        log.info("notification", channel="outbox", path=str(path), subject=report.subject)
        return str(path)

    def alert(self, alert: Alert, run_id: str) -> str:
        """Write ``<outbox>/alerts/<run_id>-<usecase>-<partition>-<kind>.json`` atomically."""
        folder = self.directory / ALERTS
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{run_id}-{alert.usecase}-{alert.partition}-{alert.kind}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(alert.to_dict(), indent=2), encoding="utf-8")
        os.replace(tmp, path)
        log.warning("alert", channel="outbox", path=str(path), message=alert.message)
        return str(path)


class SnsNotification:
    """AWS: publish the report to an SNS topic (email subscribers get subject and body)."""

    def __init__(self, topic_arn: str, region: str | None = None, client: Any = None) -> None:
        self._sns = aws.SnsNotifier(topic_arn, region=region, client=client)

    def notify(self, report: RunReport) -> str:
        """Publish the report; return the SNS message id."""
        message_id = self._sns.send(report.subject, report.body())
        log.info("notification", channel="sns", message_id=message_id, subject=report.subject)
        return message_id

    def alert(self, alert: Alert, run_id: str) -> str:
        """Publish one alert: its sentence is the message (and, shortened, the subject)."""
        subject = f"Headwater alert: {alert.usecase} {alert.partition} {alert.kind}"
        message_id = self._sns.send(subject, alert.message)
        log.warning("alert", channel="sns", message_id=message_id, message=alert.message)
        return message_id


def create_notifier(settings: Settings) -> Notifier:
    """Return the notification channel of the stage."""
    if settings.notify.kind == "sns":
        if not settings.notify.topic_arn:
            raise ValueError("notify.kind is 'sns' but notify.topic_arn is empty")
        return SnsNotification(settings.notify.topic_arn, region=settings.aws.region)
    return OutboxNotifier(Path(settings.notify.outbox))
