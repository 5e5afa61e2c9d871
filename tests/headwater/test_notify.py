"""End-of-run notifications: the report's wording, the outbox file and SNS (moto in-process)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from headwater import aws
from headwater.config import NotifyConfig, Settings
from headwater.notify import (
    OutboxNotifier,
    RunReport,
    SnsNotification,
    TaskFailure,
    create_notifier,
)

REGION = "us-east-1"
CLEAN_0103 = "CleanPartition_2013_01_03_a82b4f7a5c"
WEATHER_0102 = "ExtractPartition_2013_01_02_weather_491633059a"


def make_report(**changes: Any) -> RunReport:
    """A successful four-day run; ``changes`` override any field."""
    fields: dict[str, Any] = {
        "run_id": "20130105T021500Z-1a2b3c",
        "stage": "prod",
        "succeeded": True,
        "started_at": "2013-01-05T02:15:00+00:00",
        "duration_seconds": 83.46,
        "date_range": "2013-01-01..2013-01-04",
        "partitions": 4,
        "rows": {"clean": 3609, "raw flights": 3614, "raw weather": 288},
        "quarantined": 5,
        "logs": "/var/log/headwater/20130105T021500Z-1a2b3c.log",
    }
    return RunReport(**{**fields, **changes})


def failed_report(**changes: Any) -> RunReport:
    """A run in which a clean and a weather extraction failed."""
    fields: dict[str, Any] = {
        "succeeded": False,
        "failures": [
            TaskFailure(CLEAN_0103, "FunctionFailed: clean failed: ReconciliationError: broken"),
            TaskFailure(WEATHER_0102, "HttpRetriesExhausted: GET http://api failed"),
        ],
        "not_run": ["Backfill_2013_01_04_2013_01_01_clean_9e7281cf6d"],
    }
    return make_report(**{**fields, **changes})


# --- the report --------------------------------------------------------------------------------


def test_success_subject_and_body_summarise_the_run() -> None:
    report = make_report()

    body = report.body()

    assert report.subject == (
        "Headwater prod run 20130105T021500Z-1a2b3c succeeded: 4 partitions, 2013-01-01..2013-01-04"
    )
    assert body.splitlines()[0] == report.subject
    for line in [
        "Run id:      20130105T021500Z-1a2b3c",
        "Stage:       prod",
        "Dates:       2013-01-01..2013-01-04",
        "Started:     2013-01-05T02:15:00+00:00",
        "Duration:    83.5 s",
        "Partitions:  4",
        "Quarantined: 5",
        "Logs: /var/log/headwater/20130105T021500Z-1a2b3c.log",
    ]:
        assert line in body.splitlines()
    assert [
        line.split(":")[-1].strip() for line in body.splitlines() if line.startswith("Rows")
    ] == [
        "3,609",
        "3,614",
        "288",
    ]
    assert "Failed tasks" not in body
    assert "Not run" not in body


def test_row_counts_are_separated_from_their_labels() -> None:
    body = make_report(rows={"raw weather": 288, "raw flights": 3614, "clean": 1_234_567}).body()

    rows = [
        re.fullmatch(r"Rows (.+):\s+([\d,]+)", line)
        for line in body.splitlines()
        if line.startswith("Rows")
    ]
    assert [m.groups() if m else None for m in rows] == [
        ("clean", "1,234,567"),
        ("raw flights", "3,614"),
        ("raw weather", "288"),
    ]


def test_failure_subject_and_body_name_the_failed_tasks_and_errors() -> None:
    report = failed_report()

    body = report.body()

    assert report.subject == (
        "Headwater prod run 20130105T021500Z-1a2b3c FAILED: 2 task(s) failed, "
        "2013-01-01..2013-01-04"
    )
    lines = body.splitlines()
    failed = lines[lines.index("Failed tasks:") + 1 :][:2]
    assert failed == [
        f"  - {CLEAN_0103}: FunctionFailed: clean failed: ReconciliationError: broken",
        f"  - {WEATHER_0102}: HttpRetriesExhausted: GET http://api failed",
    ]
    assert "Not run because an upstream task failed: 1" in lines
    assert "  - Backfill_2013_01_04_2013_01_01_clean_9e7281cf6d" in lines
    assert lines[-1] == "Logs: /var/log/headwater/20130105T021500Z-1a2b3c.log"
    assert "Quarantined: 5" in lines


def test_a_long_not_run_list_is_counted_in_full_and_shown_in_part() -> None:
    held_back = [f"CleanPartition_2013_02_{d:02d}" for d in range(1, 29)]

    lines = failed_report(not_run=held_back).body().splitlines()

    assert "Not run because an upstream task failed: 28" in lines
    shown = [line for line in lines if line.startswith("  - CleanPartition_2013_02_")]
    assert shown == [f"  - {name}" for name in held_back[:20]]


def test_extra_fields_are_listed() -> None:
    body = make_report(extra={"scheduler": "http://luigid:8082"}).body()

    assert "scheduler: http://luigid:8082" in body.splitlines()


def test_to_dict_is_json_with_the_rendered_subject() -> None:
    report = failed_report()

    data = json.loads(json.dumps(report.to_dict()))

    assert data["subject"] == report.subject
    assert data["failures"][0] == {"task": CLEAN_0103, "error": report.failures[0].error}
    assert data["succeeded"] is False
    assert data["rows"] == {"clean": 3609, "raw flights": 3614, "raw weather": 288}


# --- outbox ------------------------------------------------------------------------------------


@pytest.mark.parametrize("report", [make_report(), failed_report()], ids=["success", "failure"])
def test_outbox_writes_one_json_file_per_run(tmp_path: Path, report: RunReport) -> None:
    # Given an outbox directory that does not exist yet
    outbox = tmp_path / "var" / "outbox"

    # When the report is delivered
    where = OutboxNotifier(outbox).notify(report)

    # Then it is one complete JSON file named after the run, and no temporary file is left
    assert where == str(outbox / f"{report.run_id}.json")
    assert [p.name for p in outbox.iterdir()] == [f"{report.run_id}.json"]
    written = json.loads(Path(where).read_text(encoding="utf-8"))
    assert written["subject"] == report.subject
    assert written["succeeded"] is report.succeeded
    assert [f["task"] for f in written["failures"]] == [f.task for f in report.failures]


def test_outbox_replaces_the_notification_of_the_same_run(tmp_path: Path) -> None:
    notifier = OutboxNotifier(tmp_path)
    notifier.notify(failed_report())

    notifier.notify(make_report())

    [only] = list(tmp_path.iterdir())
    assert json.loads(only.read_text(encoding="utf-8"))["succeeded"] is True


# --- SNS ---------------------------------------------------------------------------------------


@pytest.fixture
def sns_topic(aws_env: None) -> Iterator[tuple[str, str]]:
    """A topic with an SQS queue subscribed to it, in moto's in-process mock."""
    with mock_aws():
        topic_arn = aws.client("sns", REGION).create_topic(Name="headwater-runs")["TopicArn"]
        sqs = aws.client("sqs", REGION)
        queue_url = sqs.create_queue(QueueName="headwater-runs")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        aws.client("sns", REGION).subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
        yield topic_arn, queue_url


def delivered(queue_url: str) -> list[dict[str, Any]]:
    """The SNS envelopes that reached the queue."""
    response = aws.client("sqs", REGION).receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
    )
    return [json.loads(m["Body"]) for m in response.get("Messages", [])]


def test_sns_delivers_subject_and_body(sns_topic: tuple[str, str]) -> None:
    topic_arn, queue_url = sns_topic
    report = make_report()

    message_id = SnsNotification(topic_arn).notify(report)

    [envelope] = delivered(queue_url)
    assert envelope["MessageId"] == message_id
    assert envelope["Subject"] == report.subject
    assert envelope["Message"] == report.body()


def test_sns_shortens_a_long_failure_subject_but_keeps_the_body(
    sns_topic: tuple[str, str],
) -> None:
    # Given a failure whose subject is longer than SNS allows
    topic_arn, queue_url = sns_topic
    report = failed_report(stage="production-us-east-1-nightly-backfill")
    assert len(report.subject) > aws.SNS_MAX_SUBJECT_CHARS

    # When it is published
    SnsNotification(topic_arn, region=REGION).notify(report)

    # Then the subject fits, and the body still names every failed task and its error
    [envelope] = delivered(queue_url)
    assert len(envelope["Subject"]) <= aws.SNS_MAX_SUBJECT_CHARS
    assert envelope["Subject"].endswith("...")
    assert report.subject.startswith(envelope["Subject"].removesuffix("..."))
    for failure in report.failures:
        assert f"  - {failure.task}: {failure.error}" in envelope["Message"]


# --- choosing the channel ----------------------------------------------------------------------


def test_create_notifier_defaults_to_the_outbox(tmp_path: Path) -> None:
    settings = Settings(notify=NotifyConfig(kind="outbox", outbox=str(tmp_path / "box")))

    notifier = create_notifier(settings)

    assert isinstance(notifier, OutboxNotifier)
    assert notifier.notify(make_report()) == str(tmp_path / "box" / f"{make_report().run_id}.json")


def test_create_notifier_publishes_to_the_configured_topic(sns_topic: tuple[str, str]) -> None:
    topic_arn, queue_url = sns_topic
    settings = Settings(notify=NotifyConfig(kind="sns", topic_arn=topic_arn))

    notifier = create_notifier(settings)
    notifier.notify(failed_report())

    assert isinstance(notifier, SnsNotification)
    [envelope] = delivered(queue_url)
    assert "FAILED: 2 task(s) failed" in envelope["Subject"]


def test_create_notifier_rejects_sns_without_a_topic() -> None:
    settings = Settings(notify=NotifyConfig(kind="sns", topic_arn=""))

    with pytest.raises(ValueError, match="notify.topic_arn is empty"):
        create_notifier(settings)
