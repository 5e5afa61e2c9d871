"""SNS: publish to a topic, with subject and message made valid for SNS first."""

from __future__ import annotations

import unicodedata

from botocore.client import BaseClient

from headwater.aws import clients
from headwater.core.logs import get_logger

log = get_logger("headwater.aws")

SNS_MAX_SUBJECT_CHARS = 100
SNS_MAX_MESSAGE_BYTES = 256 * 1024

_ELLIPSIS = "..."


def sns_subject(text: str) -> str:
    """Make text a valid SNS subject: printable ASCII, one line, at most 100 characters."""
    # NFKD splits accents off their letters, so "Café" keeps its "e" instead of becoming "Caf?".
    decomposed = unicodedata.normalize("NFKD", text)
    chars: list[str] = []
    for char in decomposed:
        if char.isspace() or unicodedata.category(char) in ("Cc", "Zl", "Zp"):
            chars.append(" ")
        elif unicodedata.combining(char):
            continue
        elif " " <= char <= "~":
            chars.append(char)
        elif unicodedata.category(char) in ("Cf", "Mn", "Me"):
            continue
        else:
            chars.append("?")
    subject = " ".join("".join(chars).split())
    if len(subject) > SNS_MAX_SUBJECT_CHARS:
        subject = subject[: SNS_MAX_SUBJECT_CHARS - len(_ELLIPSIS)].rstrip() + _ELLIPSIS
    return subject


def _is_sns_char(char: str) -> bool:
    """Tell whether SNS accepts char in a message body (the XML character range)."""
    code = ord(char)
    return (
        code in (0x9, 0xA, 0xD)
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    )


def sns_message(text: str) -> str:
    """Make text a valid SNS message body: allowed characters only, at most 256 KB of UTF-8."""
    cleaned = "".join(c if _is_sns_char(c) else "\ufffd" for c in text) or "(empty message)"
    encoded = cleaned.encode("utf-8")
    if len(encoded) <= SNS_MAX_MESSAGE_BYTES:
        return cleaned
    note = (
        f"\n\n[truncated by Headwater: the original message was {len(encoded)} bytes, "
        f"SNS accepts {SNS_MAX_MESSAGE_BYTES}]"
    )
    budget = SNS_MAX_MESSAGE_BYTES - len(note.encode("utf-8"))
    # Decoding with errors="ignore" drops a multi-byte character cut in half at the boundary.
    head = encoded[:budget].decode("utf-8", errors="ignore")
    return head + note


def arn_region(arn: str) -> str | None:
    """Return the region field of an ARN, or None when it has none."""
    parts = arn.split(":")
    if len(parts) > 3 and parts[0] == "arn" and parts[3]:
        return parts[3]
    return None


class SnsNotifier:
    """Publishes notifications to one SNS topic."""

    def __init__(
        self, topic_arn: str, region: str | None = None, client: BaseClient | None = None
    ) -> None:
        self.topic_arn = topic_arn
        # A topic ARN names its region; prefer it so a notifier cannot publish to the wrong one.
        self.region = region or arn_region(topic_arn)
        self._client = client

    @property
    def client(self) -> BaseClient:
        """Return the SNS client, creating the shared one on first use."""
        if self._client is None:
            self._client = clients.client("sns", self.region)
        return self._client

    def send(self, subject: str, message: str) -> str:
        """Publish message under subject and return the SNS MessageId."""
        params: dict[str, str] = {"TopicArn": self.topic_arn, "Message": sns_message(message)}
        clean_subject = sns_subject(subject)
        if clean_subject:
            params["Subject"] = clean_subject
        response = self.client.publish(**params)
        message_id = str(response["MessageId"])
        log.info("SNS message published", message_id=message_id, topic_arn=self.topic_arn)
        return message_id


def pending_confirmations(
    topic_arn: str, client: BaseClient | None = None, region: str | None = None
) -> list[str]:
    """Return the endpoints subscribed to the topic that have not confirmed yet."""
    sns = client or clients.client("sns", region or arn_region(topic_arn))
    pages = sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn)
    return [
        s["Endpoint"]
        for page in pages
        for s in page["Subscriptions"]
        if s["SubscriptionArn"] == "PendingConfirmation"
    ]
