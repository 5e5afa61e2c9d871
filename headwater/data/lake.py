"""The lake: one storage layer for ``file://`` and ``s3://`` URIs, with atomic publishing.

Layout: ``<root>/<zone>/<dataset>/<partition>/`` holds one data file
``part-<id>.parquet`` and ``_manifest.json``. The manifest is written last and
names the data file, its row count, schema and SHA-256: readers go through the
manifest only, so a partition is either absent, the previous version, or the new
one, never half-written. Re-publishing a partition replaces it whole and removes
data files that no manifest names (left by earlier versions or crashed attempts).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import io
import json
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from headwater import aws
from headwater.core import layout
from headwater.core.config import Settings
from headwater.core.partitions import partition_of_key

MANIFEST = "_manifest.json"
MANIFEST_VERSION = 1


class LakeError(RuntimeError):
    """A lake object is missing, corrupt or cannot be written."""


@dataclass(frozen=True)
class Manifest:
    """What a published partition contains."""

    zone: str
    dataset: str
    partition: str
    file: str
    rows: int
    schema: dict[str, str]
    checksum: str
    source: str
    run_id: str
    created_at: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """Serialise the manifest (stable key order)."""
        body = {"version": MANIFEST_VERSION, **self.__dict__}
        return json.dumps(body, sort_keys=True, indent=2)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Parse a manifest written by :meth:`to_json`."""
        body = json.loads(text)
        body.pop("version", None)
        return cls(**body)


@dataclass(frozen=True)
class Lake:
    """A lake rooted at ``uri`` on a pyarrow filesystem (local disk or S3)."""

    uri: str
    filesystem: pafs.FileSystem
    root: str
    # Where an S3 lake lives, for the boto3 calls pyarrow cannot make (conditional writes).
    region: str | None = None
    endpoint_url: str | None = None

    @property
    def is_local(self) -> bool:
        """True when the lake lives on the local filesystem."""
        return self.filesystem.type_name == "local"

    def path(self, *parts: str) -> str:
        """Return the filesystem path of ``parts`` below the root."""
        return "/".join([self.root.rstrip("/"), *(p.strip("/") for p in parts if p)])

    def uri_of(self, *parts: str) -> str:
        """Return the URI of ``parts`` below the root (for messages and manifests)."""
        return "/".join([self.uri.rstrip("/"), *(p.strip("/") for p in parts if p)])

    def partition_dir(self, zone: str, dataset: str, partition: str) -> str:
        """Return the path of one partition's directory."""
        return self.path(zone, dataset, partition)

    # -- generic objects ---------------------------------------------------------------
    def exists(self, *parts: str) -> bool:
        """True when the object ``parts`` exists."""
        info = self.filesystem.get_file_info(self.path(*parts))
        return info.type != pafs.FileType.NotFound

    def read_bytes(self, *parts: str) -> bytes:
        """Read a whole object."""
        path = self.path(*parts)
        try:
            with self.filesystem.open_input_stream(path) as stream:
                return stream.read()
        except FileNotFoundError as exc:
            raise LakeError(f"{self.uri_of(*parts)} does not exist") from exc

    def write_bytes(self, data: bytes, *parts: str) -> None:
        """Write a whole object atomically (temp then rename locally, one PUT on S3)."""
        with self._atomic_output(self.path(*parts)) as out:
            out.write(data)

    def list_dir(self, *parts: str) -> list[str]:
        """Return the base names directly below ``parts`` (empty when it does not exist)."""
        selector = pafs.FileSelector(self.path(*parts), allow_not_found=True)
        return sorted(info.base_name for info in self.filesystem.get_file_info(selector))

    def delete(self, *parts: str) -> None:
        """Delete one object if it exists."""
        try:
            self.filesystem.delete_file(self.path(*parts))
        except FileNotFoundError:
            pass

    @contextmanager
    def _atomic_output(self, path: str) -> Iterator[Any]:
        parent = path.rsplit("/", 1)[0]
        self.filesystem.create_dir(parent, recursive=True)
        if not self.is_local:
            # An S3 PUT or multipart upload becomes visible only once it completes. pyarrow
            # cannot abort one: leaving the block on an error still completes the upload,
            # so delete the partial object it leaves.
            try:
                with self.filesystem.open_output_stream(path) as out:
                    yield out
            except BaseException:
                self.delete_path(path)
                raise
            return
        tmp = f"{parent}/.tmp-{uuid.uuid4().hex}-{path.rsplit('/', 1)[1]}"
        try:
            with self.filesystem.open_output_stream(tmp) as out:
                yield out
            self.filesystem.move(tmp, path)
        finally:
            self.delete_path(tmp)

    def delete_path(self, path: str) -> None:
        """Delete an object given by filesystem path, ignoring a missing one."""
        try:
            self.filesystem.delete_file(path)
        except FileNotFoundError:
            pass

    # -- compare-and-swap -------------------------------------------------------------
    def compare_and_swap(self, *parts: str, expected: bytes | None, new: bytes) -> bool:
        """Replace object ``parts`` by ``new`` only if it still holds ``expected``.

        ``expected=None`` means the object must not exist yet. Returns True when ``new`` was
        written, False (writing nothing) when the object holds something else. On local disk
        an ``fcntl.flock`` on a lock file beside the object serialises swappers across
        threads and processes; on S3 the write is a conditional PUT (``If-None-Match: *`` to
        create, ``If-Match: <ETag>`` to replace), see :func:`headwater.aws.s3_compare_and_swap`.
        """
        path = self.path(*parts)
        if self.is_local:
            return self._local_compare_and_swap(path, expected, new)
        bucket, _, key = path.partition("/")
        return aws.s3_compare_and_swap(
            bucket, key, expected, new, region=self.region, endpoint_url=self.endpoint_url
        )

    def _local_compare_and_swap(self, path: str, expected: bytes | None, new: bytes) -> bool:
        parent, name = path.rsplit("/", 1)
        self.filesystem.create_dir(parent, recursive=True)
        # The lock file is never replaced, so every swapper locks the same inode; flock locks
        # belong to the open file description, so threads of one process exclude each other too.
        fd = os.open(f"{parent}/.{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                with self.filesystem.open_input_stream(path) as stream:
                    current: bytes | None = stream.read()
            except FileNotFoundError:
                current = None
            if current != expected:
                return False
            with self._atomic_output(path) as out:
                out.write(new)
            return True
        finally:
            os.close(fd)  # releases the lock

    # -- partitions -------------------------------------------------------------------
    def manifest(self, zone: str, dataset: str, partition: str) -> Manifest | None:
        """Return the manifest of a published partition, or None when unpublished."""
        try:
            text = self.read_bytes(zone, dataset, partition, MANIFEST).decode("utf-8")
        except LakeError:
            return None
        return Manifest.from_json(text)

    def publish(
        self,
        zone: str,
        dataset: str,
        partition: str,
        batches: Iterable[pa.Table],
        *,
        schema: pa.Schema,
        source: str,
        run_id: str,
        extra: Mapping[str, Any] | None = None,
    ) -> Manifest:
        """Write ``batches`` as the new version of a partition and publish its manifest.

        The batches are streamed into one Parquet file (memory stays bounded by the
        batch size) while its SHA-256 is computed; the manifest is published last.
        """
        directory = self.partition_dir(zone, dataset, partition)
        name = f"part-{run_id}-{uuid.uuid4().hex[:8]}.parquet"
        rows = 0
        with self._atomic_output(f"{directory}/{name}") as raw:
            sink = _HashingSink(raw)
            with pq.ParquetWriter(sink, schema, compression="zstd") as writer:
                for table in batches:
                    if table.num_rows:
                        writer.write_table(table.cast(schema))
                        rows += table.num_rows
        manifest = Manifest(
            zone=zone,
            dataset=dataset,
            partition=partition,
            file=name,
            rows=rows,
            schema={f.name: str(f.type) for f in schema},
            checksum=f"sha256:{sink.hexdigest()}",
            source=source,
            run_id=run_id,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            extra=dict(extra or {}),
        )
        self.write_bytes(manifest.to_json().encode("utf-8"), zone, dataset, partition, MANIFEST)
        for stale in self.list_dir(zone, dataset, partition):
            if stale.endswith(".parquet") and stale != name:
                self.delete(zone, dataset, partition, stale)
        return manifest

    def read(
        self, zone: str, dataset: str, partition: str, *, verify: bool = True
    ) -> tuple[pa.Table, Manifest]:
        """Read a published partition through its manifest, verifying its checksum."""
        manifest = self.manifest(zone, dataset, partition)
        if manifest is None:
            where = self.uri_of(zone, dataset, partition)
            raise LakeError(f"partition {where} is not published (no {MANIFEST})")
        data = self.read_bytes(zone, dataset, partition, manifest.file)
        if verify:
            digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
            if digest != manifest.checksum:
                raise LakeError(
                    f"checksum mismatch for {self.uri_of(zone, dataset, partition, manifest.file)}:"
                    f" manifest {manifest.checksum}, data {digest}; a plain re-run skips a "
                    "published partition: republish it whole with "
                    f"`{repair_command(zone, dataset, partition)}`"
                )
        # ParquetFile, not read_table: the dataset scanner can outlive the Python buffer.
        table = pq.ParquetFile(pa.BufferReader(data)).read()
        if table.num_rows != manifest.rows:
            raise LakeError(
                f"row count mismatch in {self.uri_of(zone, dataset, partition)}: "
                f"manifest {manifest.rows}, data {table.num_rows}"
            )
        return table, manifest

    def partitions(self, zone: str, dataset: str) -> list[str]:
        """Return the published partitions of a dataset, sorted."""
        return [
            name
            for name in self.list_dir(zone, dataset)
            if self.exists(zone, dataset, name, MANIFEST)
        ]


def repair_command(
    zone: str, dataset: str, partition: str, run: tuple[date, date] | None = None
) -> str:
    """The ``headwater run`` that republishes a partition whole (a plain re-run skips it).

    A clean partition is cleaned again (``--rerun clean``), a raw one extracted and cleaned
    again (``--rerun extract``), over the partition's own dates and use case (the dataset's
    first part), stopping before training. A reference snapshot is only taken by a training
    run, as of the run's end: the command is then ``run`` (the dates of the run that reads it)
    with ``--rerun extract``.
    """
    step = "clean" if zone == layout.CLEAN else "extract"
    usecase, _, name = dataset.partition("/")
    command = ["headwater", "run", *(("--usecase", usecase) if name else ())]
    if partition.startswith(layout.SNAPSHOT_PREFIX):
        as_of = partition.removeprefix(layout.SNAPSHOT_PREFIX)
        first, last = (str(day) for day in run) if run else ("FIRST_DATE", as_of)
        return " ".join([*command, "--start", first, "--end", last, "--rerun", "extract"])
    try:
        part = partition_of_key(partition)
        dates = ["--start", str(part.start), "--end", str(part.end - timedelta(days=1))]
    except ValueError:  # not a key this library writes: the user knows its dates
        dates = ["--start", "FIRST_DATE", "--end", "LAST_DATE"]
    return " ".join([*command, *dates, "--rerun", step, "--until", "clean"])


class _HashingSink(io.RawIOBase):
    """A write-only file object that hashes what passes through it."""

    def __init__(self, out: Any) -> None:
        super().__init__()
        self._out = out
        self._hash = hashlib.sha256()
        self._pos = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._hash.update(view)
        self._out.write(view.tobytes())
        self._pos += len(view)
        return len(view)

    def tell(self) -> int:
        return self._pos

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


#: The URI schemes a lake can live at (``lake.uri``).
SCHEMES: tuple[str, ...] = ("file", "s3")


def lake_for(settings: Settings) -> Lake:
    """Open the lake the settings point at (one filesystem object per process and lake)."""
    return _lake(settings.lake.uri, settings.aws.region, settings.aws.endpoint_url)


@functools.cache
def _lake(uri: str, region: str | None, endpoint_url: str | None) -> Lake:
    return open_lake(uri, region=region, endpoint_url=endpoint_url)


def open_lake(
    uri: str,
    *,
    region: str | None = None,
    endpoint_url: str | None = None,
) -> Lake:
    """Open the lake at ``uri`` (``file://path`` or ``s3://bucket/prefix``)."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        root = Path(parsed.netloc + parsed.path).expanduser().resolve()
        root.mkdir(parents=True, exist_ok=True)
        return Lake(uri=f"file://{root}", filesystem=pafs.LocalFileSystem(), root=str(root))
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise LakeError(f"lake URI {uri!r} names no bucket")
        options: dict[str, Any] = {"region": region} if region else {}
        if endpoint_url:
            endpoint = urlparse(endpoint_url)
            options["endpoint_override"] = endpoint.netloc or endpoint.path
            options["scheme"] = endpoint.scheme or "https"
        fs = pafs.S3FileSystem(**options)
        root = f"{parsed.netloc}{parsed.path}".rstrip("/")
        return Lake(
            uri=uri.rstrip("/"),
            filesystem=fs,
            root=root,
            region=region,
            endpoint_url=endpoint_url,
        )
    raise LakeError(f"unsupported lake URI {uri!r}: use file://PATH or s3://BUCKET/PREFIX")
