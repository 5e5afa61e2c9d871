"""End-of-run notifications: exactly one per run, success with a summary or failure with causes."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from headwater.config import Settings
from headwater.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class TaskFailure:
    """One failed task and why."""

    task: str
    error: str


@dataclass(frozen=True)
class RunReport:
    """Everything the notification says about a run."""

    run_id: str
    stage: str
    succeeded: bool
    started_at: str
    duration_seconds: float
    date_range: str
    partitions: int
    rows: dict[str, int] = field(default_factory=dict)
    quarantined: int = 0
    failures: list[TaskFailure] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)
    logs: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        """A one-line subject (channels shorten it to their own limits)."""
        if self.succeeded:
            return (
                f"Headwater {self.stage} run {self.run_id} succeeded: "
                f"{self.partitions} partitions, {self.date_range}"
            )
        return (
            f"Headwater {self.stage} run {self.run_id} FAILED: "
            f"{len(self.failures)} task(s) failed, {self.date_range}"
        )

    def body(self) -> str:
        """The human-readable message body."""
        lines = [
            self.subject,
            "",
            f"Run id:      {self.run_id}",
            f"Stage:       {self.stage}",
            f"Dates:       {self.date_range}",
            f"Started:     {self.started_at}",
            f"Duration:    {self.duration_seconds:.1f} s",
            f"Partitions:  {self.partitions}",
        ]
        for name, count in sorted(self.rows.items()):
            lines.append(f"Rows {name + ':':<12} {count:,}")
        lines.append(f"Quarantined: {self.quarantined:,}")
        for key, value in self.extra.items():
            lines.append(f"{key}: {value}")
        if self.failures:
            lines += ["", "Failed tasks:"]
            lines += [f"  - {f.task}: {f.error}" for f in self.failures]
        if self.not_run:
            lines += ["", f"Not run because an upstream task failed: {len(self.not_run)}"]
            lines += [f"  - {name}" for name in self.not_run[:20]]
        lines += ["", f"Logs: {self.logs}"]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, with the rendered subject."""
        return {**asdict(self), "subject": self.subject}


class Notifier(Protocol):
    """A channel that delivers the end-of-run report."""

    def notify(self, report: RunReport) -> str:
        """Deliver ``report``; return where it went (a path or a message id)."""
        ...


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


class SnsNotification:
    """AWS: publish the report to an SNS topic (email subscribers get subject and body)."""

    def __init__(self, topic_arn: str, region: str | None = None, client: Any = None) -> None:
        from headwater import aws

        self._sns = aws.SnsNotifier(topic_arn, region=region, client=client)

    def notify(self, report: RunReport) -> str:
        """Publish the report; return the SNS message id."""
        message_id = self._sns.send(report.subject, report.body())
        log.info("notification", channel="sns", message_id=message_id, subject=report.subject)
        return message_id


def create_notifier(settings: Settings) -> Notifier:
    """Return the notification channel of the stage."""
    if settings.notify.kind == "sns":
        if not settings.notify.topic_arn:
            raise ValueError("notify.kind is 'sns' but notify.topic_arn is empty")
        return SnsNotification(settings.notify.topic_arn, region=settings.aws.region)
    return OutboxNotifier(Path(settings.notify.outbox))
