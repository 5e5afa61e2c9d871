"""S3: URIs, compare-and-swap writes, uploads under a prefix, and reading the tail of a log."""

from __future__ import annotations

import gzip
from collections.abc import Mapping
from typing import Any

from botocore.client import BaseClient
from botocore.exceptions import ClientError

from headwater.aws import clients
from headwater.aws.errors import error_code, http_status
from headwater.core.logs import get_logger

log = get_logger("headwater.aws")

# 412: the If-Match / If-None-Match condition failed. 409: another conditional write to the
# key was under way. 404: an If-Match PUT found the object deleted meanwhile.
_CONFLICT_CODES = frozenset(
    {"PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "404", "409", "412"}
)


def split_s3_uri(uri: str) -> tuple[str, str]:
    """Split 's3://bucket/key' (or EMR's s3n://) into bucket and key."""
    scheme, sep, rest = uri.partition("://")
    bucket, _, key = rest.partition("/")
    if not sep or scheme not in ("s3", "s3n") or not bucket:
        raise ValueError(f"not an S3 URI: {uri!r}")
    return bucket, key


def _read(s3: BaseClient, bucket: str, key: str) -> tuple[bytes, str] | None:
    """Return an object's bytes and ETag (one GET, so they match), or None when absent."""
    try:
        response = s3.get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if error_code(exc) in ("NoSuchKey", "404"):
            return None
        raise
    return response["Body"].read(), str(response["ETag"])


def s3_compare_and_swap(
    bucket: str,
    key: str,
    expected: bytes | None,
    new: bytes,
    *,
    region: str | None = None,
    endpoint_url: str | None = None,
    s3: BaseClient | None = None,
) -> bool:
    """Write new to s3://bucket/key only if it holds expected (None: only if absent).

    Returns False, writing nothing, when the object holds something else. The object is
    read once for its bytes and ETag, then replaced with ``If-Match: <ETag>`` (or created
    with ``If-None-Match: *``), so S3 itself rejects a write that lost a race.
    """
    s3 = s3 or clients.client("s3", region, endpoint_url)
    condition: dict[str, str]
    if expected is None:
        condition = {"IfNoneMatch": "*"}
    else:
        current = _read(s3, bucket, key)
        if current is None or current[0] != expected:
            return False
        condition = {"IfMatch": current[1]}
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=new, **condition)
    except ClientError as exc:
        if error_code(exc) not in _CONFLICT_CODES and http_status(exc) not in (409, 412):
            raise
        # botocore retries a PUT whose answer was lost; if the first attempt landed, the retry
        # fails its own condition. The object holding our bytes then means the swap happened.
        after = _read(s3, bucket, key)
        return after is not None and after[0] == new
    return True


def upload_artifacts(
    s3_prefix: str,
    files: Mapping[str, bytes],
    region: str | None = None,
    client: BaseClient | None = None,
) -> dict[str, str]:
    """Put each file under s3_prefix (a run-versioned prefix); return name -> s3:// URI."""
    bucket, prefix = split_s3_uri(s3_prefix)
    prefix = prefix.strip("/")
    for name in files:
        if not name or name.startswith("/") or ".." in name.split("/"):
            raise ValueError(f"artifact name {name!r} must be a relative path without '..'")
    s3 = client or clients.client("s3", region)
    uris: dict[str, str] = {}
    for name, body in files.items():
        key = f"{prefix}/{name}" if prefix else name
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        uris[name] = f"s3://{bucket}/{key}"
        log.info("S3 object uploaded", uri=uris[name], bytes=len(body))
    return uris


def read_object_tail(
    s3: BaseClient, bucket: str, key: str, *, compressed: bool, max_bytes: int, max_lines: int
) -> str | None:
    """Return the last whole lines of a text object (gzip or plain), or None when it is absent.

    At most max_bytes of text and max_lines lines are kept; a plain object is read with a
    ranged GET, a gzip one is decompressed as a stream, so a large log costs little memory.
    """
    try:
        if compressed:
            response = s3.get_object(Bucket=bucket, Key=key)
        else:
            response = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=-{max_bytes}")
    except ClientError as exc:
        if error_code(exc) in ("InvalidRange", "416"):
            return ""  # the object exists but is empty
        if error_code(exc) in ("NoSuchKey", "404"):
            return None
        raise
    body = response["Body"]
    if not compressed:
        data = body.read()
        truncated = int(response.get("ContentLength") or len(data)) < _content_total(response)
        return _tail_lines(data, truncated, max_lines)
    tail = b""
    total = 0
    with gzip.GzipFile(fileobj=body, mode="rb") as stream:
        while chunk := stream.read(256 * 1024):
            total += len(chunk)
            tail = (tail + chunk)[-max_bytes:]
    return _tail_lines(tail, total > len(tail), max_lines)


def _content_total(response: Mapping[str, Any]) -> int:
    """Return the full object size from a ranged GET's Content-Range ('bytes a-b/total')."""
    content_range = str(response.get("ContentRange") or "")
    total = content_range.rpartition("/")[2]
    return int(total) if total.isdigit() else int(response.get("ContentLength") or 0)


def _tail_lines(data: bytes, truncated: bool, max_lines: int) -> str:
    """Decode an object's last bytes and keep its last max_lines whole lines."""
    lines = data.decode("utf-8", errors="replace").splitlines()
    if truncated and lines:
        lines = lines[1:]  # the first line was cut by the byte limit
    return "\n".join(lines[-max_lines:])
