"""Tests for headwater.aws.s3: URIs, compare-and-swap, uploads under a prefix, log tails."""

from __future__ import annotations

import gzip
import io
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.response import StreamingBody
from botocore.stub import Stubber

from headwater import aws
from headwater.aws.s3 import read_object_tail

BUCKET = "headwater-emr"
ARTIFACTS = "s3://headwater-emr/artifacts/train-model/run-0001"


@pytest.fixture
def mocked_aws(mocked_aws: None) -> None:
    """moto's in-process mock (see conftest), with one bucket."""
    aws.client("s3").create_bucket(Bucket=BUCKET)


# --- upload_artifacts --------------------------------------------------------------------------


def test_upload_artifacts_puts_each_file_under_the_run_prefix(mocked_aws: None) -> None:
    files = {
        "headwater.zip": b"PK\x03\x04 code",
        "bootstrap.sh": b'#!/bin/bash\nsudo python3 -m pip install -r "$1"\n',
        "conf/requirements.txt": b"pandas==3.0.0\n",
    }

    uris = aws.upload_artifacts(ARTIFACTS + "/", files)

    assert uris == {name: f"{ARTIFACTS}/{name}" for name in files}
    s3 = aws.client("s3")
    for name, body in files.items():
        key = f"artifacts/train-model/run-0001/{name}"
        assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == body


@pytest.mark.parametrize("name", ["", "/etc/passwd", "../other-run/code.zip"])
def test_upload_artifacts_rejects_names_that_escape_the_prefix(mocked_aws: None, name: str) -> None:
    with pytest.raises(ValueError, match="relative path"):
        aws.upload_artifacts(ARTIFACTS, {"ok.txt": b"", name: b"x"})

    listed = aws.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="artifacts/")
    assert listed.get("KeyCount") == 0


# --- split_s3_uri ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://bucket/a/b.txt", ("bucket", "a/b.txt")),
        ("s3n://bucket/logs/", ("bucket", "logs/")),
        ("s3://bucket", ("bucket", "")),
    ],
)
def test_split_s3_uri(uri: str, expected: tuple[str, str]) -> None:
    assert aws.split_s3_uri(uri) == expected


@pytest.mark.parametrize("uri", ["/var/log", "https://bucket/key", "s3:///key", "bucket/key"])
def test_split_s3_uri_refuses_what_is_not_s3(uri: str) -> None:
    with pytest.raises(ValueError, match="not an S3 URI"):
        aws.split_s3_uri(uri)


# --- s3_compare_and_swap -----------------------------------------------------------------------


def read(key: str) -> bytes:
    return aws.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read()


def test_compare_and_swap_creates_only_when_absent(mocked_aws: None) -> None:
    assert aws.s3_compare_and_swap(BUCKET, "pointer", None, b"v1")
    assert not aws.s3_compare_and_swap(BUCKET, "pointer", None, b"v2")
    assert read("pointer") == b"v1"


def test_compare_and_swap_replaces_only_what_it_expects(mocked_aws: None) -> None:
    aws.client("s3").put_object(Bucket=BUCKET, Key="pointer", Body=b"v1")

    assert not aws.s3_compare_and_swap(BUCKET, "pointer", b"v0", b"v2")
    assert read("pointer") == b"v1"
    assert aws.s3_compare_and_swap(BUCKET, "pointer", b"v1", b"v2")
    assert read("pointer") == b"v2"
    assert not aws.s3_compare_and_swap(BUCKET, "absent", b"v1", b"v2")


def conflict(code: str, status: int) -> dict[str, Any]:
    return {"service_error_code": code, "http_status_code": status}


@pytest.mark.parametrize(
    ("stored_after", "swapped"), [(b"new", True), (b"theirs", False)], ids=["ours", "theirs"]
)
def test_a_lost_race_is_told_from_our_own_retried_write(
    aws_env: None, stored_after: bytes, swapped: bool
) -> None:
    # Given a create whose PUT fails its condition (another writer, or our own lost answer)
    s3 = aws.client("s3")
    with Stubber(s3) as stubber:
        stubber.add_client_error("put_object", **conflict("PreconditionFailed", 412))
        stubber.add_response(
            "get_object", {"Body": _body(stored_after), "ETag": '"e"'}, {"Bucket": "b", "Key": "k"}
        )

        # When / then the object's content decides whether the swap happened
        assert aws.s3_compare_and_swap("b", "k", None, b"new", s3=s3) is swapped
        stubber.assert_no_pending_responses()


def test_other_put_errors_propagate(aws_env: None) -> None:
    s3 = aws.client("s3")
    with Stubber(s3) as stubber:
        stubber.add_client_error("put_object", **conflict("AccessDenied", 403))

        with pytest.raises(ClientError, match="AccessDenied"):
            aws.s3_compare_and_swap("b", "k", None, b"new", s3=s3)


def _body(data: bytes) -> StreamingBody:
    return StreamingBody(io.BytesIO(data), len(data))


# --- read_object_tail --------------------------------------------------------------------------


@pytest.mark.parametrize("compressed", [True, False], ids=["gzip", "plain"])
def test_read_object_tail_keeps_the_last_whole_lines(mocked_aws: None, compressed: bool) -> None:
    lines = [f"{i:04d} " + "y" * 95 for i in range(300)]  # 100 characters a line
    text = "".join(f"{line}\n" for line in lines).encode()
    s3 = aws.client("s3")
    s3.put_object(Bucket=BUCKET, Key="log", Body=gzip.compress(text) if compressed else text)

    few = read_object_tail(s3, BUCKET, "log", compressed=compressed, max_bytes=10**6, max_lines=3)
    capped = read_object_tail(
        s3, BUCKET, "log", compressed=compressed, max_bytes=1050, max_lines=50
    )

    assert few is not None and capped is not None
    assert few.splitlines() == lines[-3:]
    # 1050 bytes hold ten whole lines and part of an eleventh, which is dropped.
    assert capped.splitlines() == lines[-10:]


def test_read_object_tail_of_a_missing_or_empty_object(mocked_aws: None) -> None:
    s3 = aws.client("s3")
    s3.put_object(Bucket=BUCKET, Key="empty", Body=b"")

    assert read_object_tail(s3, BUCKET, "nope", compressed=False, max_bytes=8, max_lines=5) is None
    assert read_object_tail(s3, BUCKET, "nope", compressed=True, max_bytes=8, max_lines=5) is None
    assert read_object_tail(s3, BUCKET, "empty", compressed=False, max_bytes=8, max_lines=5) == ""
