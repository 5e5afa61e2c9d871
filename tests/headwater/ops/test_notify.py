"""End-of-run notifications: the report's wording, the outbox file and SNS (moto in-process)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from headwater import aws
from headwater.core.config import NotifyConfig, Settings
from headwater.model.comparison import comparison_text
from headwater.monitoring.monitor import Alert
from headwater.ops.notify import (
    ModelSummary,
    OutboxNotifier,
    RunReport,
    SnsNotification,
    TaskFailure,
    UseCaseSection,
    create_notifier,
)

REGION = "us-east-1"
CLEAN_0103 = "CleanPartition_2013_01_03_trips_a82b4f7a5c"
WEATHER_0102 = "ExtractPartition_2013_01_02_weather_trips_491633059a"


def trips_section(**changes: Any) -> UseCaseSection:
    """A use case's four days: rows per zone, a few quarantined rows."""
    fields: dict[str, Any] = {
        "usecase": "trips",
        "title": "Late trips",
        "partitions": 4,
        "complete": 4,
        "rows": {"clean": 3609, "raw trips": 3614, "raw weather": 288},
        "quarantined": 5,
        "quarantined_by_source": {"trips": 5, "weather": 0},
    }
    return UseCaseSection(**{**fields, **changes})


def meters_section(**changes: Any) -> UseCaseSection:
    """A second use case with a trained, promoted model whose target is in kilowatts."""
    model = ModelSummary(
        version="20130105T021500Z-1a2b3c",
        trained=True,
        label="overloaded hour",
        target="load",
        unit="kW",
        holdout={"auc_roc": 0.81234, "auc_pr": 0.5, "log_loss": 0.4, "brier": 0.12, "rows": 96},
        regression={"rmse": 1.234, "mae": 0.9, "r2": 0.55},
        decision="promoted",
        reason="no production model yet: candidate AUC 0.8123 goes first",
    )
    fields: dict[str, Any] = {
        "usecase": "meters",
        "partitions": 4,
        "complete": 4,
        "rows": {"clean": 288, "raw readings": 289},
        "quarantined": 1,
        "model": model,
    }
    return UseCaseSection(**{**fields, **changes})


def make_report(**changes: Any) -> RunReport:
    """A successful four-day run of two use cases; ``changes`` override any field."""
    fields: dict[str, Any] = {
        "run_id": "20130105T021500Z-1a2b3c",
        "stage": "prod",
        "succeeded": True,
        "started_at": "2013-01-05T02:15:00+00:00",
        "duration_seconds": 83.46,
        "date_range": "2013-01-01..2013-01-04",
        "sections": [trips_section(), meters_section()],
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


def section_lines(body: str, usecase: str) -> list[str]:
    """The lines of one use case's section of a message body."""
    lines = body.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"== {usecase}"))
    end = lines.index("", start)
    return lines[start:end]


# --- the report --------------------------------------------------------------------------------


def test_success_subject_and_body_summarise_the_run_then_each_use_case() -> None:
    report = make_report()

    body = report.body()

    assert report.subject == (
        "Headwater prod run 20130105T021500Z-1a2b3c succeeded: 8 partitions of trips, meters, "
        "2013-01-01..2013-01-04"
    )
    lines = body.splitlines()
    assert lines[0] == report.subject
    for line in [
        "Run id:      20130105T021500Z-1a2b3c",
        "Stage:       prod",
        "Dates:       2013-01-01..2013-01-04",
        "Started:     2013-01-05T02:15:00+00:00",
        "Duration:    83.5 s",
        "Use cases:   trips, meters",
        "Logs: /var/log/headwater/20130105T021500Z-1a2b3c.log",
    ]:
        assert line in lines
    assert section_lines(body, "trips") == [
        "== trips: Late trips ==",
        "Partitions:  4 of 4 clean",
        "Rows clean:  3,609",
        "Rows raw trips: 3,614",
        "Rows raw weather: 288",
        "Quarantined: 5 (trips 5)",
    ]
    assert body.index("== trips") < body.index("== meters") < body.index("Logs:")
    assert "Failed tasks" not in body
    assert "Not run" not in body


def test_the_model_lines_use_the_use_cases_own_names_and_unit() -> None:
    body = make_report().body()

    model = section_lines(body, "meters")[-4:]

    assert model == [
        "Model:       meters 20130105T021500Z-1a2b3c",
        "Holdout:     overloaded hour: AUC 0.8123, AUC-PR 0.5000, log loss 0.4000, Brier 0.1200",
        "Regression:  load: RMSE 1.23 kW, MAE 0.90 kW, R² 0.5500",
        "Promoted:    yes: no production model yet: candidate AUC 0.8123 goes first",
    ]


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (
            ModelSummary(version="v9", trained=False),
            ["Model:       meters v9 not trained"],
        ),
        (
            ModelSummary(
                version="v9",
                trained=True,
                label="busy",
                holdout={"auc_roc": 0.7},
                decision="rejected",
                reason="candidate AUC 0.7000 does not beat production",
            ),
            [
                "Model:       meters v9",
                "Holdout:     busy: AUC 0.7000",
                "Promoted:    no: candidate AUC 0.7000 does not beat production",
            ],
        ),
    ],
    ids=["not trained", "rejected, no regression metrics"],
)
def test_a_model_not_trained_or_rejected_says_so(model: ModelSummary, expected: list[str]) -> None:
    body = make_report(sections=[meters_section(model=model)]).body()

    assert section_lines(body, "meters")[-len(expected) :] == expected


# The gate's numbers as decide() records them in decision.json.
NOISY = {
    "metric": "auc_roc",
    "gain": 0.0023,
    "lower_gain": -0.0051,
    "upper_gain": 0.0097,
    "margin": 0.002,
    "interval": {"confidence": 0.95, "blocks": 5},
}


def test_the_gates_interval_is_a_line_of_its_own_in_the_model_section() -> None:
    # Given a rejected candidate whose gain is within the noise
    model = ModelSummary(
        version="v9",
        trained=True,
        holdout={"auc_roc": 0.7023},
        decision="rejected",
        reason="its lower bound does not clear margin 0.002",
        interval=comparison_text(NOISY),
    )

    body = make_report(sections=[meters_section(model=model)]).body()

    # Then the interval is its own line, before the verdict
    assert section_lines(body, "meters")[-2:] == [
        "Interval:    AUC gain +0.0023, 95% interval [-0.0051, +0.0097] over 5 blocks "
        "(margin 0.002)",
        "Promoted:    no: its lower bound does not clear margin 0.002",
    ]


def test_comparison_text_without_a_comparison_is_empty() -> None:
    assert comparison_text({}) == ""
    assert comparison_text({"metric": "log_loss", "gain": 0.01, "margin": 0}) == (
        "log loss gain +0.0100 (margin 0)"
    )


def test_the_summary_says_partitions_were_already_published_and_training_skipped() -> None:
    # Given a rerun: every partition already published, and the same inputs as version v7
    model = ModelSummary(
        version="v7",
        trained=True,
        holdout={"auc_roc": 0.7},
        decision="promoted",
        reason="first",
        skipped="training skipped: unchanged inputs (version v7)",
    )
    section = meters_section(partitions=12, complete=12, skipped=12, model=model)

    lines = section_lines(make_report(sections=[section]).body(), "meters")

    assert "Partitions:  12 of 12 clean (12 already published, skipped)" in lines
    assert "Model:       meters: training skipped: unchanged inputs (version v7)" in lines


def test_failure_subject_and_body_name_the_failed_tasks_and_errors() -> None:
    report = failed_report()

    body = report.body()

    assert report.subject == (
        "Headwater prod run 20130105T021500Z-1a2b3c FAILED: 2 task(s) failed, trips, meters, "
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


def test_a_failures_detail_is_indented_under_its_line() -> None:
    error = (
        "training failed: ValueError: empty train or holdout split\n"
        "Traceback (most recent call last):\n"
        '  File "train.py", line 9, in main'
    )
    report = failed_report(failures=[TaskFailure("TrainModel_meters", error)])

    lines = report.body().splitlines()

    start = lines.index("Failed tasks:") + 1
    assert lines[start : start + 3] == [
        "  - TrainModel_meters: training failed: ValueError: empty train or holdout split",
        "      Traceback (most recent call last):",
        '        File "train.py", line 9, in main',
    ]


def test_a_long_not_run_list_is_counted_in_full_and_shown_in_part() -> None:
    held_back = [f"CleanPartition_2013_02_{d:02d}" for d in range(1, 29)]

    lines = failed_report(not_run=held_back).body().splitlines()

    assert "Not run because an upstream task failed: 28" in lines
    shown = [line for line in lines if line.startswith("  - CleanPartition_2013_02_")]
    assert shown == [f"  - {name}" for name in held_back[:20]]


def test_a_run_that_broke_before_its_use_cases_were_known_still_reports() -> None:
    report = failed_report(sections=[])

    assert "FAILED: 2 task(s) failed, no use case," in report.subject
    assert "Use cases:   none" in report.body().splitlines()
    assert report.partitions == 0


def test_extra_fields_are_listed() -> None:
    body = make_report(extra={"scheduler": "http://luigid:8082"}).body()

    assert "scheduler: http://luigid:8082" in body.splitlines()


def test_a_section_is_found_by_use_case() -> None:
    report = make_report()

    assert report.section("meters").quarantined == 1
    assert report.usecases == ["trips", "meters"]
    with pytest.raises(KeyError, match="no section for use case 'tides'"):
        report.section("tides")


def test_to_dict_is_json_with_the_rendered_subject_and_every_section() -> None:
    report = failed_report()

    data = json.loads(json.dumps(report.to_dict()))

    assert data["subject"] == report.subject
    assert data["failures"][0] == {"task": CLEAN_0103, "error": report.failures[0].error}
    assert data["succeeded"] is False
    trips, meters = data["sections"]
    assert trips["rows"] == {"clean": 3609, "raw trips": 3614, "raw weather": 288}
    assert trips["model"] is None
    assert meters["model"]["unit"] == "kW"
    assert meters["model"]["regression"]["rmse"] == 1.234


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
    report = make_report(stage="qa", sections=[trips_section()])  # a subject SNS takes whole

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


ALERT = Alert(
    "trips", "2013-01", "drift", "trips 2013-01: the clean data drifted: size PSI 0.41 > 0.20."
)


def test_the_live_section_and_the_alerts_are_in_the_body() -> None:
    live = ["2013-01: 200 predictions served, production v1", "  realized: AUC 0.650 vs 0.71"]
    report = make_report(sections=[trips_section(live=live)], alerts=[ALERT])

    body = report.body()

    assert "Live:\n  2013-01: 200 predictions served, production v1\n    realized: AUC" in body
    assert f"Alerts: 1\n  - {ALERT.message}" in body
    assert "Live:" not in make_report(sections=[trips_section()]).body()


def test_an_alert_lands_in_the_outbox_as_one_sentence(tmp_path: Path) -> None:
    where = OutboxNotifier(tmp_path).alert(ALERT, "run1")

    assert Path(where).parent == tmp_path / "alerts"
    assert Alert.from_dict(json.loads(Path(where).read_text())) == ALERT
    assert list(tmp_path.glob("*.json")) == []  # the run's notifications stay one file a run


def test_an_alert_is_published_to_the_topic(sns_topic: tuple[str, str]) -> None:
    topic_arn, queue_url = sns_topic

    SnsNotification(topic_arn, region=REGION).alert(ALERT, "run1")

    [envelope] = delivered(queue_url)
    assert envelope["Message"] == ALERT.message
    assert envelope["Subject"] == "Headwater alert: trips 2013-01 drift"
