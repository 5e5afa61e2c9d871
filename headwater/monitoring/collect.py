"""Collect captured predictions into lake partitions: ``predictions/<usecase>/<partition>/``.

A record is filed by its event's local time when the use case declares an outcome
(:attr:`headwater.core.usecase.OutcomeSpec.event_time` of the record's echo: a prediction
served today for an hour of 2013-11 lands in 2013-11, beside that hour's clean data and
outcome), else, or when its echo names no event, by the time it was served.

The API's capture lands as JSON lines (:mod:`headwater.serving.capture`), locally under
``capture/<usecase>/<day>/<hour>/`` and in the cloud, from Firehose, under
``capture/_stream/<day>/<hour>/`` (every use case together). :func:`collect_predictions`
reads the lines of a partition's period, keeps the use case's, removes duplicates (the same
request id, instance and role: a retried delivery, a re-read file) and publishes one Parquet
file with its manifest and checksum through :meth:`headwater.data.lake.Lake.publish`, exactly
as every other dataset: atomic (the manifest is written last), idempotent (a re-run replaces
the partition whole, with the same rows in the same order).

A spool file still being written ends in ``.jsonl.open`` and is not read: the writer renames
it when its hour is over or its process stops. An ``.open`` file a killed process left is read
once it has not changed for ``stale_seconds`` (its last, torn line is counted, not kept).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pyarrow as pa

from headwater.core import layout
from headwater.core.partitions import Grain, Partition, partition_of
from headwater.core.usecase import OutcomeSpec
from headwater.data.lake import Lake, Manifest
from headwater.serving.capture import LINES_SUFFIX, OPEN_SUFFIX, CaptureRecord

#: The Parquet schema of collected predictions: one column per CaptureRecord field (the
#: features and the request's echo, whose names are the use case's, as JSON objects).
SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("instance", pa.int32()),
        ("usecase", pa.string()),
        ("model_version", pa.string()),
        ("served_at", pa.timestamp("us", tz="UTC")),
        ("features", pa.string()),
        ("probability", pa.float64()),
        ("decision", pa.bool_()),
        ("estimate", pa.float64()),
        ("threshold", pa.float64()),
        ("defaulted", pa.list_(pa.string())),
        ("unseen", pa.list_(pa.string())),
        ("out_of_range", pa.list_(pa.string())),
        ("latency_ms", pa.float64()),
        ("role", pa.string()),
        ("echo", pa.string()),
    ]
)
#: The source named in the manifests of collected predictions.
SOURCE = "capture"
#: An ``.open`` spool file unchanged this long belongs to a process that is gone.
STALE_SECONDS = 3600.0


@dataclass(frozen=True)
class Collected:
    """What one collection read and published."""

    manifest: Manifest
    files: int  # capture files read
    lines: int  # capture lines read
    kept: int  # records published
    duplicates: int  # records whose key was already kept
    torn: int  # lines that were not a whole record (a killed writer's last line)
    skipped_open: int  # files still being written, left for the next run

    def to_dict(self) -> dict[str, int]:
        """The counts, JSON-able (the manifest's ``extra``)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "manifest"}


def _days(first: datetime, last: datetime) -> Iterator[str]:
    day = first.date()
    while day <= last.date():
        yield day.isoformat()
        day += timedelta(days=1)


def _all_days(lake: Lake, source: str) -> list[str]:
    return sorted(lake.list_dir(layout.CAPTURE, source))


def capture_files(
    lake: Lake,
    usecase: str,
    partition: Partition | None,
    timezone: str,
    *,
    now: datetime | None = None,
    stale_seconds: float = STALE_SECONDS,
) -> tuple[list[tuple[str, ...]], int]:
    """The capture files that may hold the partition's records, and how many are still open.

    The UTC days of the partition's period are read, plus the day after (Firehose files an
    object by its arrival time, up to its buffering interval later); every day of capture
    when ``partition`` is None (records filed by their event may have been served any day).
    """
    now = now or datetime.now(UTC)
    found, still_open = [], 0
    for source in (usecase, layout.CAPTURE_STREAM):
        if partition is None:
            days = _all_days(lake, source)
        else:
            days = list(_days(*partition.utc_bounds(timezone)))
        for day in days:
            for hour in lake.list_dir(layout.CAPTURE, source, day):
                parts = layout.capture_parts(source, day, hour)
                for name in lake.list_dir(*parts):
                    if name.endswith(OPEN_SUFFIX):
                        info = lake.filesystem.get_file_info(lake.path(*parts, name))
                        age = (now - info.mtime.astimezone(UTC)).total_seconds()
                        if age < stale_seconds:
                            still_open += 1
                            continue
                    elif source == usecase and not name.endswith(LINES_SUFFIX):
                        continue  # a writer's temporary file
                    found.append((*parts, name))
    return found, still_open


def captured_since(lake: Lake, usecase: str, since: datetime) -> bool:
    """True when a capture file of ``usecase`` changed after ``since`` (aware): a partition
    collected before may miss its records (a replay of a past month files into a settled one)."""
    files, _ = capture_files(lake, usecase, None, "UTC", stale_seconds=0.0)
    for parts in files:
        info = lake.filesystem.get_file_info(lake.path(*parts))
        # Manifests keep whole seconds: a file of the publishing second counts as read.
        if info.mtime is not None and info.mtime.astimezone(UTC).replace(microsecond=0) > since:
            return True
    return False


def filed_at(record: CaptureRecord, timezone: str, outcome: OutcomeSpec | None) -> datetime:
    """The local time (naive, the use case's zone) that files a record: its event's when the
    use case declares an outcome and the echo names the event, else the time it was served."""
    if outcome is not None:
        try:
            return outcome.event_time(record.echo)
        except (KeyError, TypeError, ValueError):
            pass  # an echo without the event: filed when served
    served = datetime.fromisoformat(record.served_at)
    return served.astimezone(ZoneInfo(timezone)).replace(tzinfo=None)


def captured_partitions(
    lake: Lake,
    usecase: str,
    grain: Grain,
    timezone: str = "UTC",
    outcome: OutcomeSpec | None = None,
) -> list[Partition]:
    """The partitions that may hold captured records of ``usecase``, sorted.

    Without an outcome: each UTC day of capture and the day before (a local day straddles two
    UTC days). With one: the partitions of the captured records' events (their files read).
    """
    if outcome is not None:
        found: set[Partition] = set()
        files, _ = capture_files(lake, usecase, None, timezone)
        for parts in files:
            records, _ = read_lines(lake.read_bytes(*parts))
            for record in records:
                if record.usecase == usecase:
                    found.add(partition_of(filed_at(record, timezone, outcome).date(), grain))
        return sorted(found, key=lambda p: p.start)
    days: set[date] = set()
    for source in (usecase, layout.CAPTURE_STREAM):
        for name in lake.list_dir(layout.CAPTURE, source):
            try:
                day = date.fromisoformat(name)
            except ValueError:
                continue
            days |= {day, day - timedelta(days=1)}
    return sorted({partition_of(day, grain) for day in days}, key=lambda p: p.start)


def read_lines(data: bytes) -> tuple[list[CaptureRecord], int]:
    """The capture records of one file's lines, and the lines that were not records."""
    records, torn = [], 0
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            records.append(CaptureRecord.from_dict(json.loads(line)))
        except (ValueError, TypeError):
            torn += 1
    return records, torn


def to_table(records: list[CaptureRecord]) -> pa.Table:
    """The records as a table of :data:`SCHEMA` (served_at parsed, features as JSON)."""
    columns = {name: [] for name in SCHEMA.names}
    for record in records:
        for name, value in record.to_dict().items():
            if name == "served_at":
                value = datetime.fromisoformat(value)
            elif name in ("features", "echo"):
                value = json.dumps(value, sort_keys=True, separators=(",", ":"))
            columns[name].append(value)
    return pa.table(columns, schema=SCHEMA)


def from_table(table: pa.Table) -> list[CaptureRecord]:
    """The records of a collected partition (the inverse of :func:`to_table`)."""
    out = []
    for row in table.to_pylist():
        row["served_at"] = row["served_at"].astimezone(UTC).isoformat(timespec="microseconds")
        row["features"] = json.loads(row["features"])
        # A partition collected before the echo was recorded has no column for it.
        row["echo"] = json.loads(row.get("echo") or "{}")
        out.append(CaptureRecord.from_dict(row))
    return out


def collect_predictions(
    lake: Lake,
    usecase: str,
    partition: Partition,
    timezone: str,
    *,
    run_id: str,
    outcome: OutcomeSpec | None = None,
    now: datetime | None = None,
    stale_seconds: float = STALE_SECONDS,
) -> Collected:
    """Publish the partition's captured records of ``usecase``, deduplicated, with a manifest.

    With ``outcome``, the records whose event falls in the partition (every capture file
    read), else those served in its period (see :func:`filed_at`).
    """
    lo, hi = partition.utc_bounds(timezone)
    files, still_open = capture_files(
        lake,
        usecase,
        None if outcome is not None else partition,
        timezone,
        now=now,
        stale_seconds=stale_seconds,
    )
    kept: dict[tuple[str, int, str], CaptureRecord] = {}
    lines = torn = duplicates = 0
    for parts in files:
        records, bad = read_lines(lake.read_bytes(*parts))
        torn += bad
        lines += len(records) + bad
        for record in records:
            if record.usecase != usecase:
                continue
            if outcome is not None:
                if partition_of(filed_at(record, timezone, outcome).date(), partition.grain) != (
                    partition
                ):
                    continue
            elif not lo <= datetime.fromisoformat(record.served_at) < hi:
                continue
            if record.key in kept:
                duplicates += 1
                continue
            kept[record.key] = record
    ordered = sorted(kept.values(), key=lambda r: (r.served_at, r.key))
    counts = {
        "files": len(files),
        "lines": lines,
        "kept": len(ordered),
        "duplicates": duplicates,
        "torn": torn,
        "skipped_open": still_open,
    }
    manifest = lake.publish(
        layout.PREDICTIONS,
        usecase,
        partition.key,
        [to_table(ordered)],
        schema=SCHEMA,
        source=SOURCE,
        run_id=run_id,
        extra=counts,
    )
    return Collected(manifest=manifest, **counts)


def read_predictions(lake: Lake, usecase: str, partition_key: str) -> list[CaptureRecord]:
    """A collected partition's records, read through its manifest (checksum verified)."""
    table, _ = lake.read(layout.PREDICTIONS, usecase, partition_key)
    return from_table(table)
