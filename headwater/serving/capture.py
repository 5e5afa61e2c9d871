"""Prediction capture: every answered prediction as a typed record, written off the request path.

The API hands each answered instance to :meth:`Capture.offer`, which costs a counter, an
optional coin toss (sampling) and an append to a bounded in-memory queue (a deque): nothing is
built, serialised or written while the client waits. A background thread drains the queue
every ``flush_seconds``, builds each :class:`CaptureRecord` (its features are the very record
the scorer computed and scored, handed over with the answer: neither copied nor derived
again) and hands batches to a sink:

* :class:`SpoolSink`: JSON lines appended under the local lake,
  ``capture/<usecase>/<YYYY-MM-DD>/<HH>/<host>-<pid>-<token>.jsonl`` (one file per process and
  hour). A file is written as ``....jsonl.open`` and renamed into place when its hour is over
  or the process stops; the collector consumes closed files only (and ``.open`` files a
  killed process left, once they are stale).
* :class:`LogSink`: one structured JSON line per record on a stream (Lambda: stdout, which
  CloudWatch Logs receives; a subscription filter hands the lines to Firehose, which writes
  them to ``capture/_stream/`` in the lake).
* :class:`FirehoseSink`: ``PutRecordBatch`` to a delivery stream (boto3, imported lazily).

**Shadow scoring.** When a use case has a shadow model (``SHADOW.json``), the API hands its
source (anything with ``current() -> model | None``) along with each answered instance; the
capture thread asks it for the shadow model, scores the same validated request with it and
records its answer as a second record with ``role`` ``shadow`` (same request id and
instance). Only production's answer is returned to the client: the shadow costs the request
nothing, and a shadow failure (it cannot load, or cannot score an instance) is counted
(``shadow_failed``) and logged, never seen by the client. A sampled-out or dropped instance
is neither captured nor shadow-scored, so every shadow record has its production pair.

A full queue or a failing sink is counted (:meth:`Capture.counters`, shown by ``/health``)
and logged; the answer never waits for it and never fails because of it. :meth:`Capture.close`
(atexit, gunicorn's worker exit) drains the queue and closes the files. Standard library only
(the Lambda package stays small).
"""

from __future__ import annotations

import atexit
import collections
import itertools
import json
import logging
import os
import random
import socket
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, NamedTuple, Protocol

from headwater.core import layout

logger = logging.getLogger("headwater.capture")

#: The marker of a capture line (``"capture": "headwater/1"``): the CloudWatch Logs
#: subscription filter selects exactly these lines, and the collector checks it.
FORMAT = "headwater/1"
PRODUCTION, SHADOW = "production", "shadow"
#: The capture line's encoder: compact, built once (``json.dumps`` with options builds one per
#: call).
_LINE = json.JSONEncoder(separators=(",", ":"))
#: A spool file is written under this suffix and renamed without it once complete.
OPEN_SUFFIX = ".open"
LINES_SUFFIX = ".jsonl"


@dataclass(frozen=True)
class CaptureRecord:
    """One answered prediction, as the model saw it and as the API answered it."""

    #: Unique per answered request (shared by the instances of a batch and by the shadow's
    #: record of the same request); with ``instance`` and ``role``, the record's identity.
    request_id: str
    #: The instance's position in its request (0 for a single-instance request).
    instance: int
    usecase: str
    model_version: str
    #: When the answer was computed, UTC, ISO 8601 with microseconds.
    served_at: str
    #: The feature record the scorer used (``ServingSpec.features_record``), not the raw body.
    features: dict[str, Any]
    probability: float
    decision: bool
    estimate: float
    threshold: float
    #: Inputs the answer reports as defaulted, unseen in training, and out of the trained range.
    defaulted: list[str] = field(default_factory=list)
    unseen: list[str] = field(default_factory=list)
    out_of_range: list[str] = field(default_factory=list)
    #: Milliseconds from the handler's start to the answers being computed (whole request).
    latency_ms: float = 0.0
    #: Whose answer: ``production`` (returned to the client) or ``shadow`` (recorded only).
    role: str = PRODUCTION
    #: The answer's echo of the request (``ServingSpec.describe``): what meets the prediction
    #: with its outcome in the clean data (the use case's ``OutcomeSpec.key_of_request``).
    echo: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, int, str]:
        """The record's identity: duplicates (retried deliveries) share it."""
        return (self.request_id, self.instance, self.role)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (the capture line's fields, without the format marker)."""
        return asdict(self)

    def to_json(self) -> str:
        """One capture line: the record plus the format marker, compact."""
        # The fields as they are, not asdict's deep copy: serialising needs no copy, and the
        # copy cost more than the encoding (counted: docs/monitoring.md, "What capture costs").
        return _LINE.encode({"capture": FORMAT, **vars(self)})

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> CaptureRecord:
        """Parse :meth:`to_dict` / :meth:`to_json` output (the marker, if any, is checked).

        Raises:
            ValueError: not a capture record of this format.
        """
        body = dict(body)
        marker = body.pop("capture", FORMAT)
        if marker != FORMAT:
            raise ValueError(f"capture format {marker!r} is not {FORMAT!r}")
        try:
            return cls(**body)
        except TypeError as exc:
            raise ValueError(f"not a capture record: {exc}") from None


def record_of(
    model: Any,
    request: Any,
    answer: Mapping[str, Any],
    *,
    request_id: str,
    instance: int,
    served_at: float,
    latency_ms: float,
    features: dict[str, Any],
    role: str = PRODUCTION,
) -> CaptureRecord:
    """Build the record of one answer of ``model`` (a ServingModel) to a validated ``request``.

    ``features``: the feature record the scorer used (``predictor.Scored.features``), kept as
    it is: never derived a second time.
    """
    keys = model.spec.answer
    return CaptureRecord(
        request_id=request_id,
        instance=instance,
        usecase=model.name,
        model_version=model.version,
        served_at=datetime.fromtimestamp(served_at, UTC).isoformat(timespec="microseconds"),
        features=features,
        probability=answer[keys.probability],
        decision=answer[keys.decision],
        estimate=answer[keys.estimate],
        threshold=answer["threshold"],
        defaulted=list(answer.get("defaulted", ())),
        unseen=list(answer.get("unseen", ())),
        out_of_range=list(answer.get("out_of_range", ())),
        latency_ms=round(latency_ms, 4),
        role=role,
        echo=dict(answer.get(keys.echo) or {}),
    )


# -- sinks ----------------------------------------------------------------------------------------
class Sink(Protocol):
    """Where captured records go; called from the capture thread only."""

    #: The sink's kind as configured (``spool``, ``log``, ``firehose``).
    kind: str

    def write(self, records: Sequence[CaptureRecord]) -> None:
        """Deliver ``records`` (raise on failure: the batch is counted as failed)."""

    def close(self) -> None:
        """Deliver anything held and release files or clients."""


def spool_name() -> str:
    """A spool file's base name: unique per process (host, pid, a random token)."""
    host = socket.gethostname().split(".")[0] or "host"
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}{LINES_SUFFIX}"


class SpoolSink:
    """Append-only JSON lines under a local lake root, one file per process, use case and hour.

    Each batch is written and flushed to the operating system before the next is taken, so a
    killed process (``kill -9``) loses only what it had not yet written: the queue and the
    batch in hand. Files of an hour are renamed from ``.jsonl.open`` to ``.jsonl`` when a
    later hour starts or the sink closes: a closed file never grows again.
    """

    kind = "spool"

    def __init__(self, root: str | Path, clock: Callable[[], float] = time.time) -> None:
        self.root = Path(root)
        self.clock = clock
        self._files: dict[tuple[str, str, str], tuple[Path, IO[str]]] = {}

    def _file(self, usecase: str, day: str, hour: str) -> IO[str]:
        key = (usecase, day, hour)
        if key not in self._files:
            folder = self.root.joinpath(*layout.capture_parts(usecase, day, hour))
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{spool_name()}{OPEN_SUFFIX}"
            self._files[key] = (path, path.open("a", encoding="utf-8"))
        return self._files[key][1]

    def write(self, records: Sequence[CaptureRecord]) -> None:
        """Append the records to their hour's file, flush, and close files of past hours."""
        touched = set()
        for record in records:
            day, hour = record.served_at[:10], record.served_at[11:13]
            out = self._file(record.usecase, day, hour)
            out.write(record.to_json() + "\n")
            touched.add(out)
        for out in touched:
            out.flush()
        self.rotate()

    def rotate(self) -> None:
        """Close and rename into place the files of hours that are over."""
        now = datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%d %H")
        for key in [k for k in self._files if f"{k[1]} {k[2]}" < now]:
            self._close(key)

    def _close(self, key: tuple[str, str, str]) -> None:
        path, out = self._files.pop(key)
        out.close()
        path.rename(path.with_name(path.name.removesuffix(OPEN_SUFFIX)))

    def close(self) -> None:
        """Close every file and rename it into place."""
        for key in list(self._files):
            self._close(key)


class LogSink:
    """One capture line per record on a stream (Lambda: stdout, read by CloudWatch Logs)."""

    kind = "log"

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream

    def write(self, records: Sequence[CaptureRecord]) -> None:
        """Write the lines and flush the stream."""
        out = self.stream or sys.stdout
        out.write("".join(record.to_json() + "\n" for record in records))
        out.flush()

    def close(self) -> None:
        """Flush the stream."""
        (self.stream or sys.stdout).flush()


#: PutRecordBatch's own limits: 500 records and 4 MiB per call, 1,000 KiB per record.
FIREHOSE_MAX_RECORDS = 500
FIREHOSE_MAX_BYTES = 4 * 1024 * 1024


class FirehoseSink:
    """``PutRecordBatch`` to a Kinesis Data Firehose stream (records as capture lines)."""

    kind = "firehose"

    def __init__(
        self,
        stream: str,
        client: Any = None,
        region: str | None = None,
        endpoint_url: str | None = None,
    ) -> None:
        self.stream = stream
        self._client = client
        self.region, self.endpoint_url = region, endpoint_url

    @property
    def client(self) -> Any:
        """The Firehose client (created on first use: boto3 only where this sink is chosen)."""
        if self._client is None:
            import boto3  # lazy: only the firehose sink needs boto3 (the API package has none)

            self._client = boto3.client(
                "firehose", region_name=self.region, endpoint_url=self.endpoint_url
            )
        return self._client

    def write(self, records: Sequence[CaptureRecord]) -> None:
        """Send the records in batches within the API's limits; raise naming failed ones."""
        failed = 0
        for batch in _firehose_batches(records):
            answer = self.client.put_record_batch(
                DeliveryStreamName=self.stream, Records=[{"Data": data} for data in batch]
            )
            failed += int(answer.get("FailedPutCount", 0))
        if failed:
            raise RuntimeError(f"firehose refused {failed} of {len(records)} capture records")

    def close(self) -> None:
        """Nothing is held between batches."""


def _firehose_batches(records: Iterable[CaptureRecord]) -> Iterable[list[bytes]]:
    batch: list[bytes] = []
    size = 0
    for record in records:
        data = (record.to_json() + "\n").encode("utf-8")
        if batch and (len(batch) == FIREHOSE_MAX_RECORDS or size + len(data) > FIREHOSE_MAX_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(data)
        size += len(data)
    if batch:
        yield batch


# -- the capturer ---------------------------------------------------------------------------------
@dataclass
class CaptureCounters:
    """What capture did in this process since it started (``/health``'s capture section)."""

    offered: int = 0  # answered instances handed to capture
    sampled_out: int = 0  # left out by sampling
    dropped: int = 0  # the queue was full: counted, not kept
    written: int = 0  # delivered to the sink
    failed: int = 0  # the sink raised for them (or they could not be built)
    shadow_scored: int = 0  # instances the shadow model scored (its records, once written)
    shadow_failed: int = 0  # instances the shadow could not score: counted, production unharmed

    def to_dict(self) -> dict[str, int]:
        """JSON-able form."""
        return asdict(self)


_OPEN: weakref.WeakSet[Capture] = weakref.WeakSet()


@atexit.register
def close_all() -> None:
    """Flush and close every capture of this process (atexit; gunicorn's worker exit)."""
    for capture in list(_OPEN):
        capture.close()


class ShadowSource(Protocol):
    """Where the capture thread gets a use case's shadow model (``api.model_cache.ShadowCache``)."""

    def current(self) -> Any:
        """The shadow model to score with now, or None (no shadow, or it cannot be loaded)."""


class Answered(NamedTuple):
    """One answered instance, as :meth:`Capture.offer` queues it (as a plain tuple of these
    fields: the request pays for the append only); the capture thread builds its record, and
    its shadow's from a copy."""

    model: Any
    request: Any
    answer: Mapping[str, Any]
    #: The feature record the scorer used (``predictor.Scored.features``).
    features: dict[str, Any]
    request_id: str
    instance: int
    served_at: float
    latency_ms: float
    role: str = PRODUCTION
    #: The use case's shadow source: the same request is scored with its model too.
    shadow: ShadowSource | None = None

    def record(self) -> CaptureRecord:
        """The capture record of this answer (:func:`record_of`)."""
        return record_of(
            self.model,
            self.request,
            self.answer,
            request_id=self.request_id,
            instance=self.instance,
            served_at=self.served_at,
            latency_ms=self.latency_ms,
            role=self.role,
            features=self.features,
        )


def _worth_logging(count: int) -> bool:
    # A failure repeated per record is logged the first time and every 1000th after.
    return count == 1 or count % 1000 == 0


def _greenlet_threads() -> bool:
    """True when gevent has monkey-patched threading (gunicorn's gevent workers)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("threading"))


def _score(model: Any, request: Any) -> tuple[Mapping[str, Any], dict[str, Any]]:
    # lazy: the scorer (pydantic) only where a shadow is scored; the collector imports capture
    from headwater.serving.predictor import score

    return score(model, request)


class Capture:
    """Hands answered predictions to a sink from a background thread, bounded and sampled."""

    def __init__(
        self,
        sink: Sink,
        *,
        sample_rate: float = 1.0,
        queue_size: int = 10_000,
        batch_size: int = 500,
        flush_seconds: float = 0.5,
        rng: Callable[[], float] = random.random,
        score: Callable[[Any, Any], tuple[Mapping[str, Any], dict[str, Any]]] = _score,
    ) -> None:
        self.sink = sink
        #: Scores a validated request with a model (the shadow's): the API's own ``score``,
        #: giving the answer and the features it scored.
        self.score = score
        self.sample_rate = sample_rate
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self.counters_ = CaptureCounters()
        self._rng = rng
        # A deque, not a queue.Queue: appending takes no lock and wakes no thread, so the
        # request pays ~0.1 us; the thread drains it every flush_seconds (measured: waking the
        # thread per record cost the request 0.12 ms of p50 in GIL hand-overs).
        self._items: collections.deque[tuple[Any, ...]] = collections.deque()
        self._ids = itertools.count()
        self._process = uuid.uuid4().hex[:12]
        self._pid = os.getpid()
        self._wake = threading.Event()  # set by offer() when the queue fills, and by close()
        self._wake_at = max(1, min(batch_size, queue_size // 4))
        self._lock = threading.Lock()  # one writer at a time: the thread, or close()
        self._thread: threading.Thread | None = None
        self._cooperative = False  # threads are gevent's greenlets (set when the thread starts)
        self._closed = False
        _OPEN.add(self)

    def request_id(self) -> str:
        """A new request id, unique across processes (a random process token and a counter)."""
        return f"{self._process}-{next(self._ids)}"

    def offer(
        self,
        model: Any,
        request: Any,
        answer: Mapping[str, Any],
        *,
        features: dict[str, Any],
        request_id: str,
        instance: int,
        served_at: float,
        latency_ms: float,
        role: str = PRODUCTION,
        shadow: ShadowSource | None = None,
    ) -> bool:
        """Queue one answered instance; never blocks, never raises. True when it was kept.

        ``features``: the feature record the scorer used (``predictor.score``), recorded as
        it is. ``shadow``: the use case's shadow
        source; the capture thread scores the same request with its model and records that
        answer too (role ``shadow``).
        """
        counters = self.counters_
        counters.offered += 1
        if self._closed:
            counters.dropped += 1
            return False
        if self.sample_rate < 1.0 and self._rng() >= self.sample_rate:
            counters.sampled_out += 1
            return False
        queued = len(self._items)
        if queued >= self.queue_size:
            counters.dropped += 1
            if _worth_logging(counters.dropped):
                logger.warning(
                    "capture queue full (%d records): %d records dropped so far",
                    self.queue_size,
                    counters.dropped,
                )
            return False
        # Answered's fields in order, as a plain tuple: a NamedTuple built here costs the request
        # ~6x as much (measured with timeit); the capture thread makes it one (_take).
        self._items.append(
            (
                model,
                request,
                answer,
                features,
                request_id,
                instance,
                served_at,
                latency_ms,
                role,
                shadow,
            )
        )
        self._ensure_thread()
        if queued >= self._wake_at:
            # Past a quarter of the queue, the drain is woken at once rather than at its next
            # tick. Under gevent workers it is a greenlet, and a keep-alive connection whose
            # next request is already waiting is served without ever yielding to the hub: the
            # drain never ran (300-record queues overflowed at 1,000 requests/s), so this
            # request yields once to let it write (what the worker would pay anyway).
            self._wake.set()
            if self._cooperative:
                time.sleep(0)
        return True

    def _ensure_thread(self) -> None:
        # Started on first use, in the process that serves (after gunicorn's fork).
        if self._thread is None or self._pid != os.getpid():
            self._pid = os.getpid()
            self._cooperative = _greenlet_threads()
            self._thread = threading.Thread(target=self._run, name="headwater-capture", daemon=True)
            self._thread.start()

    def counters(self) -> dict[str, Any]:
        """The counters, plus the records waiting in the queue."""
        return {**self.counters_.to_dict(), "queued": len(self._items)}

    def _take(self) -> list[Answered]:
        items: list[Answered] = []
        try:
            while len(items) < self.batch_size:
                items.append(Answered._make(self._items.popleft()))  # atomic beside append
        except IndexError:
            pass
        return items

    def _write(self, items: list[Answered]) -> None:
        records = []
        for item in items:
            try:
                records.append(item.record())
            except Exception:  # a record that cannot be built must not stop the others
                self.counters_.failed += 1
                logger.exception("capture record of %s could not be built", item.request_id)
            if item.shadow is not None:
                paired = self._shadow_record(item, item.shadow)
                if paired is not None:
                    records.append(paired)
        if not records:
            return
        try:
            self.sink.write(records)
        except Exception as exc:  # any sink error: counted and logged, capture goes on
            self.counters_.failed += len(records)
            logger.error(
                "capture sink %s failed for %d records: %s: %s",
                self.sink.kind,
                len(records),
                type(exc).__name__,
                exc,
            )
        else:
            self.counters_.written += len(records)

    def _shadow_record(self, production: Answered, source: ShadowSource) -> CaptureRecord | None:
        """The shadow's record of the same request (None: no shadow now, or it failed); its
        latency is the shadow's scoring alone."""
        try:
            model = source.current()
            if model is None or model.version == production.model.version:
                return None  # off, not loaded (its error is on /health), or promoted since
            started = time.perf_counter()
            answer, features = self.score(model, production.request)
            latency_ms = (time.perf_counter() - started) * 1000
            shadow = production._replace(
                model=model,
                answer=answer,
                features=features,
                latency_ms=latency_ms,
                role=SHADOW,
                shadow=None,
            )
            record = shadow.record()
        except Exception as exc:  # the shadow's failure is counted; production's record stays
            counters = self.counters_
            counters.shadow_failed += 1
            if _worth_logging(counters.shadow_failed):
                logger.warning(
                    "shadow scoring failed for %s instance %d (%d failures so far): %s: %s",
                    production.request_id,
                    production.instance,
                    counters.shadow_failed,
                    type(exc).__name__,
                    exc,
                )
            return None
        self.counters_.shadow_scored += 1
        return record

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            if self._closed:
                return  # close() writes what is left, in its own thread
            with self._lock:
                while items := self._take():
                    self._write(items)
                rotate = getattr(self.sink, "rotate", None)
                if rotate is not None:
                    try:
                        rotate()
                    except Exception:
                        logger.exception("capture sink %s could not rotate", self.sink.kind)

    def flush(self) -> None:
        """Write everything queued now, in the calling thread."""
        with self._lock:
            while items := self._take():
                self._write(items)

    def close(self) -> None:
        """Stop the thread, write what is queued and close the sink (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(self.flush_seconds + 5)
        self.flush()
        with self._lock:
            try:
                self.sink.close()
            except Exception:
                logger.exception("capture sink %s could not close", self.sink.kind)
        _OPEN.discard(self)
        # What this process captured, once, as it stops (a worker's loss is visible in its log).
        logger.info("capture closed: %s", json.dumps(self.counters(), sort_keys=True))


#: The sink kinds (``api.capture.sink``): kind -> factory of (capture settings, lake URI, AWS).
SINKS: dict[str, Callable[..., Sink]] = {
    "spool": lambda settings, lake_uri, aws: SpoolSink(_spool_root(lake_uri)),
    "log": lambda settings, lake_uri, aws: LogSink(),
    "firehose": lambda settings, lake_uri, aws: FirehoseSink(
        _stream_of(settings), region=aws.region, endpoint_url=aws.endpoint_url
    ),
}


def _spool_root(lake_uri: str) -> Path:
    root = layout.local_root(lake_uri)
    if root is None:
        raise ValueError(f"the spool capture sink needs a file:// lake, not {lake_uri}")
    return root


def _stream_of(settings: Any) -> str:
    if not settings.firehose_stream:
        raise ValueError("the firehose capture sink needs api.capture.firehose_stream")
    return settings.firehose_stream


def create_capture(settings: Any) -> Capture | None:
    """The capture a stage's settings ask for (``api.capture``), or None when it is off.

    Raises:
        ValueError: the sink is unknown or cannot work with these settings.
    """
    options = settings.api.capture
    if not options.enabled:
        return None
    try:
        factory = SINKS[options.sink]
    except KeyError:
        raise ValueError(
            f"unknown capture sink {options.sink!r} (known: {', '.join(SINKS)})"
        ) from None
    return Capture(
        factory(options, settings.lake.uri, settings.aws),
        sample_rate=options.sample_rate,
        queue_size=options.queue_size,
        flush_seconds=options.flush_seconds,
    )
