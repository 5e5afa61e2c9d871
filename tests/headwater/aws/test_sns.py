"""Tests for headwater.aws.sns: valid subjects and messages, delivery through moto."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.stub import Stubber
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns.models import sns_backends

from headwater import aws

REGION = "us-east-1"


def test_send_delivers_subject_and_message(mocked_aws: None, sns_inbox: Callable[..., Any]) -> None:
    topic_arn = aws.client("sns").create_topic(Name="headwater-alerts")["TopicArn"]
    inbox = sns_inbox(topic_arn)

    message_id = aws.SnsNotifier(topic_arn).send(
        "Nightly pipeline failed", "CleanPartition(2013-01-01): column 'x' missing"
    )

    envelope = inbox.receive_one()
    assert envelope["MessageId"] == message_id
    assert envelope["Subject"] == "Nightly pipeline failed"
    assert envelope["Message"] == "CleanPartition(2013-01-01): column 'x' missing"


def test_send_sanitises_the_subject(mocked_aws: None, sns_inbox: Callable[..., Any]) -> None:
    topic_arn = aws.client("sns").create_topic(Name="headwater-alerts")["TopicArn"]
    inbox = sns_inbox(topic_arn)

    aws.SnsNotifier(topic_arn).send("Nightly run\nfailed: café ✓ " + "x" * 200, "body")

    subject = inbox.receive_one()["Subject"]
    assert subject.startswith("Nightly run failed: cafe ? xxx")
    assert subject.endswith("...")
    assert len(subject) == aws.SNS_MAX_SUBJECT_CHARS


def test_send_publishes_in_the_topics_region(
    mocked_aws: None, sns_inbox: Callable[..., Any]
) -> None:
    topic_arn = aws.client("sns", "eu-west-1").create_topic(Name="headwater-alerts")["TopicArn"]
    inbox = sns_inbox(topic_arn, "eu-west-1")

    aws.SnsNotifier(topic_arn).send("Done", "all partitions published")

    assert inbox.receive_one()["Message"] == "all partitions published"


def test_send_truncates_an_oversize_message(mocked_aws: None) -> None:
    topic_arn = aws.client("sns").create_topic(Name="headwater-alerts")["TopicArn"]
    message = "é" * 200_000  # 400,000 bytes of UTF-8

    message_id = aws.SnsNotifier(topic_arn).send("Big report", message)

    [(sent_id, sent, subject, *_)] = (
        sns_backends[DEFAULT_ACCOUNT_ID][REGION].topics[topic_arn].sent_notifications
    )
    assert (sent_id, subject) == (message_id, "Big report")
    assert len(sent.encode("utf-8")) <= aws.SNS_MAX_MESSAGE_BYTES
    assert sent.startswith("é" * 1000)
    assert sent.endswith(f"the original message was 400000 bytes, SNS accepts {262144}]")


def test_send_omits_a_blank_subject(aws_env: None) -> None:
    sns = aws.client("sns")
    topic_arn = "arn:aws:sns:us-east-1:123456789012:headwater-alerts"
    with Stubber(sns) as stubber:
        stubber.add_response(
            "publish", {"MessageId": "m-1"}, {"TopicArn": topic_arn, "Message": "body"}
        )

        assert aws.SnsNotifier(topic_arn, client=sns).send(" \n\t", "body") == "m-1"

        stubber.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Daily report", "Daily report"),
        ("line one\nline two\r\n", "line one line two"),
        ("tabs\tand   spaces\u2028too", "tabs and spaces too"),
        ("Café résumé naïve", "Cafe resume naive"),
        ("Pipeline ✓ done 🚀", "Pipeline ? done ?"),
        ("数据 ready", "?? ready"),
        ("\x00bell\x07 ring", "bell ring"),
        ("zero\u200bwidth", "zerowidth"),
        ("", ""),
        ("a" * 100, "a" * 100),
        ("a" * 101, "a" * 97 + "..."),
        ("word " * 40, "word " * 19 + "wo..."),
        ("a" * 96 + " bcdef", "a" * 96 + "..."),
    ],
)
def test_sns_subject(text: str, expected: str) -> None:
    assert aws.sns_subject(text) == expected


@pytest.mark.parametrize(
    "text",
    ["x" * 500, "é" * 500, "🚀" * 500, "\n" * 500, "ab\x00\x1f\x7f\u0085cd" * 40, "数据" * 300],
)
def test_sns_subject_is_always_valid(text: str) -> None:
    subject = aws.sns_subject(text)

    assert len(subject) <= aws.SNS_MAX_SUBJECT_CHARS
    assert all(" " <= char <= "~" for char in subject)
    assert subject == subject.strip()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("short message\nwith lines\tand tabs", "short message\nwith lines\tand tabs"),
        ("nul\x00 and bell\x07", "nul\ufffd and bell\ufffd"),
        ("", "(empty message)"),
    ],
)
def test_sns_message_keeps_valid_text_and_replaces_invalid_characters(
    text: str, expected: str
) -> None:
    assert aws.sns_message(text) == expected


def test_sns_message_truncates_on_a_character_boundary() -> None:
    message = "a" + "🚀" * 100_000  # 4-byte characters, so the cut lands mid-character

    result = aws.sns_message(message)

    encoded = result.encode("utf-8")
    assert len(encoded) <= aws.SNS_MAX_MESSAGE_BYTES
    assert len(encoded) > aws.SNS_MAX_MESSAGE_BYTES - 200
    head, note = result.split("\n\n[truncated by Headwater", 1)
    assert head == "a" + "🚀" * (len(head) - 1)
    assert "400001 bytes" in note


def test_pending_confirmations_lists_the_unconfirmed_endpoints_of_every_page() -> None:
    # moto confirms e-mail subscriptions at once, so the pages are those SNS sends
    pages = [
        {"Subscriptions": [{"SubscriptionArn": "PendingConfirmation", "Endpoint": "a@b.c"}]},
        {
            "Subscriptions": [
                {"SubscriptionArn": "arn:aws:sns:eu-west-1:1:runs:1", "Endpoint": "ops@b.c"},
                {"SubscriptionArn": "PendingConfirmation", "Endpoint": "d@b.c"},
            ]
        },
    ]
    asked: list[dict[str, Any]] = []

    class Paginator:
        def paginate(self, **arguments: Any) -> list[dict[str, Any]]:
            asked.append(arguments)
            return pages

    class Sns:
        def get_paginator(self, operation: str) -> Paginator:
            assert operation == "list_subscriptions_by_topic"
            return Paginator()

    topic = "arn:aws:sns:eu-west-1:1:runs"
    pending = aws.pending_confirmations(topic, client=Sns())  # type: ignore[arg-type]

    assert pending == ["a@b.c", "d@b.c"]
    assert asked == [{"TopicArn": topic}]
