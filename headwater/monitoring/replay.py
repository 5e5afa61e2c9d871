"""Replay a period of clean data through the prediction API, as its clients would.

``headwater replay`` (:mod:`cli.replay`) is a thin wrapper over this module. A period's clean
partitions are read through the lake's verified readers (:meth:`headwater.data.lake.Lake.read`:
manifest and checksum), each row becomes the instance a client would have sent
(``ServingSpec.request_of_row``: what is known at request time, never the label), optionally
changed by one of the use case's documented shifts (``ServingSpec.shifts``), and the instances
are posted in batches (``{"instances": [...]}``, as clients batch) over real HTTP by a pool of
threads, each with its own keep-alive session. Every answer is counted: instances answered,
rejected (4xx) and failed (5xx or no answer), with the first error of each kind kept.

Only :class:`HttpTransport` touches the network; tests inject a transport.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from headwater.core import layout
from headwater.core.partitions import Grain, partition_of, partitions_between
from headwater.core.usecase import ServingSpec, UseCase

#: Instances per request: clients batch a few at a time (the API takes up to ``api.max_batch``).
BATCH_SIZE = 20
#: Requests outstanding at once.
CONCURRENCY = 8
#: Seconds before a request is given up (counted as failed).
TIMEOUT_SECONDS = 30.0
#: Seconds between two progress reports.
PROGRESS_SECONDS = 5.0


class ReplayError(RuntimeError):
    """A replay that cannot start: nothing to replay, an unknown shift, the API not reachable."""


class ApiUnreachable(ReplayError):
    """Nothing answers at the API's URL."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            f"the API at {url} is not reachable ({reason}): start it with `headwater serve` "
            "(or pass --url)"
        )
        self.url = url
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.url, self.reason))


@dataclass(frozen=True)
class Answer:
    """What the API answered to one request: its status (0: no answer) and body."""

    status: int
    body: Any = None
    error: str = ""  # why there was no answer (a connection error, a timeout)


class Transport(Protocol):
    """Sends one JSON request to the API (thread-safe)."""

    def get(self, path: str) -> Answer:
        """``GET path``."""
        ...

    def post(self, path: str, body: Mapping[str, Any]) -> Answer:
        """``POST path`` with a JSON body."""
        ...


class HttpTransport:
    """Real HTTP to the API at ``url``: one keep-alive ``requests`` session per thread."""

    def __init__(self, url: str, timeout: float = TIMEOUT_SECONDS) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._local = threading.local()

    def _session(self) -> Any:
        session = getattr(self._local, "session", None)
        if session is None:
            import requests  # lazy: the data extra; only a replay needs it

            session = self._local.session = requests.Session()
        return session

    def _send(self, method: str, path: str, body: Mapping[str, Any] | None) -> Answer:
        import requests  # lazy: the data extra; only a replay needs it

        try:
            response = self._session().request(
                method, f"{self.url}{path}", json=body, timeout=self.timeout
            )
        except requests.RequestException as exc:
            return Answer(0, error=f"{type(exc).__name__}: {exc}")
        try:
            payload = response.json()
        except ValueError:
            payload = response.text[:200]
        return Answer(response.status_code, payload)

    def get(self, path: str) -> Answer:
        """``GET path``; a connection error is an :class:`Answer` with status 0."""
        return self._send("GET", path, None)

    def post(self, path: str, body: Mapping[str, Any]) -> Answer:
        """``POST path``; a connection error is an :class:`Answer` with status 0."""
        return self._send("POST", path, body)


@dataclass(frozen=True)
class Progress:
    """How far a replay has come."""

    sent: int  # instances whose request has been answered (or failed)
    total: int  # instances to send
    answered: int
    errors: int  # instances rejected or failed
    seconds: float

    @property
    def rate(self) -> float:
        """Instances per second so far."""
        return self.sent / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class ReplayReport:
    """What a replay sent and what the API answered."""

    usecase: str
    start: date
    end: date
    shift: str | None
    rows: int  # clean rows read
    requests: int  # HTTP requests sent
    instances: int  # instances in them
    answered: int  # instances answered 200
    rejected: int  # instances of requests answered 4xx
    failed: int  # instances of requests answered 5xx or not at all
    seconds: float
    #: The first error of each kind (``"HTTP 503 model_unavailable: ..."``) and its count
    #: of requests.
    errors: Mapping[str, int] = field(default_factory=dict)

    @property
    def requests_per_second(self) -> float:
        """HTTP requests per second, over the whole replay."""
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def instances_per_second(self) -> float:
        """Instances (predictions) per second, over the whole replay."""
        return self.instances / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, rates included."""
        return {
            "usecase": self.usecase,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "shift": self.shift,
            "rows": self.rows,
            "requests": self.requests,
            "instances": self.instances,
            "answered": self.answered,
            "rejected": self.rejected,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
            "requests_per_second": round(self.requests_per_second, 1),
            "instances_per_second": round(self.instances_per_second, 1),
            "errors": dict(self.errors),
        }

    def summary(self) -> str:
        """One line for the terminal."""
        shifted = f" with shift {self.shift}" if self.shift else ""
        line = (
            f"replayed {self.usecase} {self.start}..{self.end}{shifted}: {self.instances:,} "
            f"instances in {self.requests:,} requests, {self.seconds:.1f} s "
            f"({self.requests_per_second:,.0f} requests/s, {self.instances_per_second:,.0f} "
            f"instances/s); answered {self.answered:,}, rejected {self.rejected:,}, "
            f"failed {self.failed:,}"
        )
        return line


# -- rows to requests ---------------------------------------------------------------------------
class Lake(Protocol):
    """What a replay needs of the lake (:class:`headwater.data.lake.Lake` has it)."""

    def read(self, zone: str, dataset: str, partition: str) -> tuple[Any, Any]:
        """A published partition's Arrow table and manifest, its checksum verified."""
        ...

    def manifest(self, zone: str, dataset: str, partition: str) -> Any:
        """A published partition's manifest, None when it is not published."""
        ...


def clean_rows(
    lake: Lake, usecase: UseCase, start: date, end: date, grain: Grain
) -> Iterator[dict[str, Any]]:
    """The clean rows of ``start..end`` (inclusive), partition by partition, in stored order.

    Each partition is read through its manifest and checksum (the lake's verified reader); a
    partition of the period that is not published raises the lake's error (nothing is replayed
    from a half-built period). Rows of a partition outside the period are skipped.
    """
    # lazy: pandas only for a replay (the CLI imports this module for its defaults)
    import pandas as pd

    # lazy: the windows module imports pandas too (the same reason)
    from headwater.monitoring.windows import with_windows

    dataset = layout.dataset(usecase.name, usecase.clean_dataset)
    column = usecase.training.date_column
    windows = tuple(getattr(usecase.training, "windows", ()))
    for part in partitions_between(start, end, grain):
        table, _ = lake.read(layout.CLEAN, dataset, part.key)
        rows = table.to_pylist()
        if windows:
            # The use case's windows as the training job computes them (a lag reaches into the
            # partition before): what a client knows of the hours before, for request_of_row.
            frame = table.to_pandas()
            before = partition_of(part.start - timedelta(days=1), grain).key
            if lake.manifest(layout.CLEAN, dataset, before) is not None:
                frame = pd.concat([frame, lake.read(layout.CLEAN, dataset, before)[0].to_pandas()])
            rows = with_windows(frame.reset_index(drop=True), windows).iloc[: len(rows)]
            rows = rows.astype(object).where(rows.notna(), None).to_dict("records")
        for row in rows:
            day = row[column]
            if isinstance(day, datetime):
                day = day.date()
            if start <= day <= end:
                yield row


def shift_of(spec: ServingSpec, name: str | None) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """The request transformation of the shift ``name`` (None: requests as they are)."""
    if name is None:
        return dict
    shift = spec.shifts.get(name)
    if shift is None:
        known = ", ".join(sorted(spec.shifts)) or "none"
        raise ReplayError(f"unknown shift {name!r} (this use case declares: {known})")
    return shift.apply


def requests_of_rows(
    rows: Iterable[Mapping[str, Any]], spec: ServingSpec, shift: str | None = None
) -> Iterator[dict[str, Any]]:
    """The instance a client sends for each row, shifted by ``shift`` if one is named."""
    if spec.request_of_row is None:
        raise ReplayError("this use case declares no ServingSpec.request_of_row: nothing to replay")
    change = shift_of(spec, shift)
    for row in rows:
        yield change(spec.request_of_row(row))


def batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """``items`` in lists of ``size`` (the last one shorter)."""
    if size < 1:
        raise ValueError(f"batch size must be at least 1, not {size}")
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# -- sending ------------------------------------------------------------------------------------
def describe_error(answer: Answer) -> str:
    """A short, stable name of a failed request: its status and the API's error code."""
    if answer.status == 0:
        return f"no answer: {answer.error.split(':', 1)[0]}"
    error = answer.body.get("error") if isinstance(answer.body, Mapping) else None
    if isinstance(error, Mapping):
        return f"HTTP {answer.status} {error.get('code', '')}: {error.get('message', '')}"[:300]
    return f"HTTP {answer.status}"


class RateLimit:
    """At most ``per_second`` calls of :meth:`wait` a second, spaced evenly (None: no limit)."""

    def __init__(
        self,
        per_second: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_second is not None and per_second <= 0:
            raise ValueError(f"rate must be positive, not {per_second}")
        self.interval = 1.0 / per_second if per_second else 0.0
        self._clock, self._sleep = clock, sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        """Block until the next call is allowed."""
        if not self.interval:
            return
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            self._sleep(slot - now)


def check_api(transport: Transport, url: str, usecase: str) -> None:
    """Raise unless the API answers ``/health`` and serves a model of ``usecase``."""
    answer = transport.get("/health")
    if answer.status == 0:
        raise ApiUnreachable(url, answer.error.split(":", 1)[0])
    if answer.status != 200 or not isinstance(answer.body, Mapping):
        raise ReplayError(f"the API at {url} answered /health with HTTP {answer.status}")
    served = answer.body.get("models", {}).get(usecase)
    if served is None:
        names = ", ".join(sorted(answer.body.get("models", {}))) or "none"
        raise ReplayError(f"the API at {url} does not serve {usecase!r} (it serves: {names})")
    if not served.get("loaded"):
        raise ReplayError(
            f"the API at {url} has no model of {usecase!r} loaded: {served.get('message')}"
        )


def wait_for_api(
    transport: Transport,
    url: str,
    usecase: str,
    seconds: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    interval: float = 0.25,
) -> None:
    """:func:`check_api`, retried while the API is not reachable yet, for up to ``seconds``.

    For a server started just before (``headwater serve &``); any other refusal is final.
    """
    deadline = clock() + seconds
    while True:
        try:
            check_api(transport, url, usecase)
            return
        except ApiUnreachable:
            if clock() >= deadline:
                raise
        sleep(interval)


def send(
    batches_: Sequence[Sequence[Mapping[str, Any]]],
    transport: Transport,
    path: str,
    *,
    concurrency: int = CONCURRENCY,
    rate: float | None = None,
    progress: Callable[[Progress], None] | None = None,
    progress_seconds: float = PROGRESS_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[dict[str, int], Counter[str], float]:
    """Post every batch to ``path`` (``{"instances": batch}``) from ``concurrency`` threads.

    ``rate`` bounds the requests per second. Returns the instance counts (``requests``,
    ``instances``, ``answered``, ``rejected``, ``failed``), the requests per error kind, and
    the seconds taken. ``progress`` is called at most every ``progress_seconds`` and once at
    the end.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, not {concurrency}")
    total = sum(len(batch) for batch in batches_)
    counts = dict.fromkeys(("requests", "instances", "answered", "rejected", "failed"), 0)
    errors: Counter[str] = Counter()
    lock = threading.Lock()
    limit = RateLimit(rate)
    started = clock()
    last_report = [started]

    def report(force: bool = False) -> None:
        now = clock()
        if progress is None or (not force and now - last_report[0] < progress_seconds):
            return
        last_report[0] = now
        progress(
            Progress(
                sent=counts["instances"],
                total=total,
                answered=counts["answered"],
                errors=counts["rejected"] + counts["failed"],
                seconds=now - started,
            )
        )

    def post(batch: Sequence[Mapping[str, Any]]) -> None:
        limit.wait()
        answer = transport.post(path, {"instances": list(batch)})
        if answer.status == 200:
            kind = "answered"
        elif 400 <= answer.status < 500:
            kind = "rejected"
        else:
            kind = "failed"
        with lock:
            counts["requests"] += 1
            counts["instances"] += len(batch)
            counts[kind] += len(batch)
            if kind != "answered":
                errors[describe_error(answer)] += 1
            report()

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="replay") as pool:
        # map() consumes its results in order, so an exception in a worker surfaces here.
        for _ in pool.map(post, batches_):
            pass
    with lock:
        report(force=True)
    return counts, errors, clock() - started


@dataclass(frozen=True)
class ReplayOptions:
    """What to replay, where to, and how hard."""

    usecase: str
    start: date
    end: date
    url: str = "http://127.0.0.1:8000"
    concurrency: int = CONCURRENCY
    batch_size: int = BATCH_SIZE
    rate: float | None = None  # requests per second (None: as fast as the API answers)
    shift: str | None = None
    wait: float = 0.0  # seconds to wait for the API to come up (0: it must answer at once)


def replay(
    lake: Lake,
    usecase: UseCase,
    options: ReplayOptions,
    grain: Grain,
    transport: Transport,
    progress: Callable[[Progress], None] | None = None,
) -> ReplayReport:
    """Replay the clean rows of ``options.start..end`` of ``usecase`` through the API."""
    spec = usecase.serving
    shift_of(spec, options.shift)  # an unknown shift fails before any reading
    wait_for_api(transport, options.url, usecase.name, options.wait)
    rows = list(clean_rows(lake, usecase, options.start, options.end, grain))
    if not rows:
        raise ReplayError(
            f"no clean rows of {usecase.name} in {options.start}..{options.end}: "
            "run `headwater run` over that period first"
        )
    instances = requests_of_rows(rows, spec, options.shift)
    counts, errors, seconds = send(
        list(batches(instances, options.batch_size)),
        transport,
        f"/v1/{usecase.name}/predictions",
        concurrency=options.concurrency,
        rate=options.rate,
        progress=progress,
    )
    return ReplayReport(
        usecase=usecase.name,
        start=options.start,
        end=options.end,
        shift=options.shift,
        rows=len(rows),
        seconds=seconds,
        errors=dict(errors.most_common()),
        **counts,
    )
