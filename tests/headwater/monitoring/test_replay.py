"""The replay's pure parts: rows to requests, shifts, batching, sending, counting, errors."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pyarrow as pa
import pytest

from headwater.core import layout
from headwater.core.usecase import AnswerShape, ServingSpec, Shift, Window
from headwater.monitoring.replay import (
    Answer,
    ApiUnreachable,
    HttpTransport,
    Progress,
    RateLimit,
    ReplayError,
    ReplayOptions,
    batches,
    check_api,
    clean_rows,
    describe_error,
    replay,
    requests_of_rows,
    send,
    wait_for_api,
)


def _bump(request: Mapping[str, Any]) -> dict[str, Any]:
    return {**request, "hour": request["hour"] + 100}


SPEC = ServingSpec(
    request_model=dict,
    example={},
    answer=AnswerShape("echo", "p", "yes", "x"),
    features_record=lambda request, lookups: ({}, []),
    describe=lambda request: {},
    request_of_row=lambda row: {"meter": row["meter"], "hour": row["hour"]},
    shifts={"later": Shift("every hour 100 hours later", _bump)},
)


class FakeUseCase:
    """Just what a replay reads of a use case: its name, clean dataset, date column, serving."""

    name = "meters"
    clean_dataset = "readings"

    class training:  # noqa: N801 - stands in for a TrainingSpec
        date_column = "date"

    serving = SPEC


class FakeLake:
    """Published clean partitions in memory; a missing one raises as the lake does."""

    def __init__(self, partitions: Mapping[str, list[dict[str, Any]]]) -> None:
        self.partitions = partitions
        self.read_keys: list[str] = []

    def read(self, zone: str, dataset: str, partition: str) -> tuple[Any, Any]:
        assert (zone, dataset) == (layout.CLEAN, layout.dataset("meters", "readings"))
        self.read_keys.append(partition)
        if partition not in self.partitions:
            raise LookupError(f"partition {partition} is not published")
        return pa.Table.from_pylist(self.partitions[partition]), None


class FakeApi:
    """Answers like the API: 200 with one prediction per instance; 400 for a bad instance."""

    def __init__(self, health: Any = None, delay: float = 0.0) -> None:
        self.health = health or {"models": {"meters": {"loaded": True}}}
        self.delay = delay
        self.posts: list[tuple[str, list[dict[str, Any]]]] = []
        self.pending = self.most_pending = 0
        self.lock = threading.Lock()

    def get(self, path: str) -> Answer:
        assert path == "/health"
        return Answer(200, self.health)

    def post(self, path: str, body: Mapping[str, Any]) -> Answer:
        with self.lock:
            self.pending += 1
            self.most_pending = max(self.most_pending, self.pending)
            self.posts.append((path, body["instances"]))
        time.sleep(self.delay)
        with self.lock:
            self.pending -= 1
        instances = body["instances"]
        if any(i.get("meter") == "bad" for i in instances):
            error = {"status": 400, "code": "invalid_request", "message": "meter: bad"}
            return Answer(400, {"error": error})
        if any(i.get("meter") == "boom" for i in instances):
            return Answer(0, error="ConnectionError: reset by peer")
        return Answer(200, {"predictions": [{"p": 0.5} for _ in instances]})


def rows(n: int, day: date = date(2013, 1, 1), meter: str = "m1") -> list[dict[str, Any]]:
    return [{"date": day, "hour": h, "meter": meter, "load_kw": 9.0} for h in range(n)]


# -- rows to requests ---------------------------------------------------------------------------
def test_each_row_becomes_the_use_cases_request_without_the_label() -> None:
    requests = list(requests_of_rows(rows(2), SPEC))

    assert requests == [{"meter": "m1", "hour": 0}, {"meter": "m1", "hour": 1}]


def test_a_shift_changes_every_request_and_not_the_rows() -> None:
    given = rows(2)

    shifted = list(requests_of_rows(given, SPEC, "later"))

    assert [r["hour"] for r in shifted] == [100, 101]
    assert [r["hour"] for r in given] == [0, 1]


def test_an_unknown_shift_names_the_declared_ones() -> None:
    with pytest.raises(ReplayError, match=r"unknown shift 'heat' \(this use case declares: later"):
        list(requests_of_rows(rows(1), SPEC, "heat"))


def test_a_use_case_without_request_of_row_cannot_be_replayed() -> None:
    bare = ServingSpec(dict, {}, SPEC.answer, SPEC.features_record, SPEC.describe)

    with pytest.raises(ReplayError, match="declares no ServingSpec.request_of_row"):
        list(requests_of_rows(rows(1), bare))


def test_clean_rows_reads_each_partition_of_the_period_and_keeps_its_days() -> None:
    lake = FakeLake(
        {
            "month=2013-01": rows(2, date(2013, 1, 30)) + rows(1, date(2013, 1, 31)),
            "month=2013-02": rows(1, date(2013, 2, 1)) + rows(3, date(2013, 2, 2)),
        }
    )

    found = list(clean_rows(lake, FakeUseCase(), date(2013, 1, 31), date(2013, 2, 1), "month"))

    assert lake.read_keys == ["month=2013-01", "month=2013-02"]
    assert [(r["date"], r["hour"]) for r in found] == [
        (date(2013, 1, 31), 0),
        (date(2013, 2, 1), 0),
    ]


def test_clean_rows_of_an_unpublished_partition_raise() -> None:
    lake = FakeLake({"month=2013-01": rows(1)})

    with pytest.raises(LookupError, match="2013-02"):
        list(clean_rows(lake, FakeUseCase(), date(2013, 1, 1), date(2013, 2, 28), "month"))


@pytest.mark.parametrize(
    ("n", "size", "sizes"),
    [(45, 20, [20, 20, 5]), (40, 20, [20, 20]), (0, 20, []), (3, 1, [1] * 3)],
)
def test_batches_are_full_but_the_last(n: int, size: int, sizes: list[int]) -> None:
    found = list(batches(range(n), size))

    assert [len(b) for b in found] == sizes
    assert [x for b in found for x in b] == list(range(n))


def test_a_batch_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        list(batches([1], 0))


# -- sending and counting -----------------------------------------------------------------------
def test_send_counts_answered_rejected_and_failed_instances_and_names_the_errors() -> None:
    api = FakeApi()
    good = [{"meter": "m1", "hour": h} for h in range(5)]
    bad = [{"meter": "bad", "hour": 0}, {"meter": "m1", "hour": 1}]
    lost = [{"meter": "boom", "hour": 0}]

    counts, errors, _ = send([good, bad, good, lost], api, "/v1/meters/predictions")

    assert counts == {"requests": 4, "instances": 13, "answered": 10, "rejected": 2, "failed": 1}
    assert dict(errors) == {
        "HTTP 400 invalid_request: meter: bad": 1,
        "no answer: ConnectionError": 1,
    }
    assert {path for path, _ in api.posts} == {"/v1/meters/predictions"}
    assert sorted(len(instances) for _, instances in api.posts) == [1, 2, 5, 5]


def test_send_keeps_at_most_concurrency_requests_pending_and_uses_them() -> None:
    api = FakeApi(delay=0.02)
    work = [[{"meter": "m1", "hour": h}] for h in range(24)]

    send(work, api, "/p", concurrency=4)

    assert api.most_pending == 4


def test_progress_is_reported_while_sending_and_once_at_the_end() -> None:
    seen: list[Progress] = []
    ticks = iter(range(1000))

    send(
        [[{"meter": "m1", "hour": h}] for h in range(6)],
        FakeApi(),
        "/p",
        concurrency=1,
        progress=seen.append,
        progress_seconds=2,
        clock=lambda: float(next(ticks)),
    )

    # the clock advances 1 s per reading: a report every other request, then the final one
    assert [p.sent for p in seen] == [2, 4, 6, 6]
    assert seen[-1].total == 6 and seen[-1].answered == 6 and seen[-1].errors == 0


def test_a_rate_limit_spaces_the_calls_evenly() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))

    limit = RateLimit(4.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        limit.wait()

    assert slept == [0.25, 0.5]


def test_no_rate_limit_never_sleeps() -> None:
    limit = RateLimit(None, sleep=lambda s: pytest.fail("slept"))

    limit.wait()


@pytest.mark.parametrize(
    ("answer", "described"),
    [
        (
            Answer(503, {"error": {"code": "no_model", "message": "none"}}),
            "HTTP 503 no_model: none",
        ),
        (Answer(502, "<html>bad gateway</html>"), "HTTP 502"),
        (Answer(0, error="ReadTimeout: read timed out"), "no answer: ReadTimeout"),
    ],
)
def test_errors_are_named_by_status_and_code(answer: Answer, described: str) -> None:
    assert describe_error(answer) == described


# -- the API's health before anything is sent ----------------------------------------------------
def test_an_api_that_does_not_answer_names_its_url_and_headwater_serve() -> None:
    down = HttpTransport("http://127.0.0.1:9", timeout=2)

    with pytest.raises(ApiUnreachable) as caught:
        check_api(down, "http://127.0.0.1:9", "meters")

    assert "http://127.0.0.1:9" in str(caught.value)
    assert "`headwater serve`" in str(caught.value)


def test_an_api_that_serves_another_use_case_says_what_it_serves() -> None:
    api = FakeApi(health={"models": {"other": {"loaded": True}}})

    with pytest.raises(ReplayError, match=r"does not serve 'meters' \(it serves: other\)"):
        check_api(api, "http://x", "meters")


def test_an_api_without_the_use_cases_model_loaded_says_so() -> None:
    api = FakeApi(health={"models": {"meters": {"loaded": False, "message": "no model"}}})

    with pytest.raises(ReplayError, match="no model of 'meters' loaded: no model"):
        check_api(api, "http://x", "meters")


# -- the whole replay ----------------------------------------------------------------------------
def test_replay_sends_every_row_of_the_period_in_batches_and_reports() -> None:
    lake = FakeLake({"month=2013-01": rows(24) + rows(24, date(2013, 1, 2), "bad")})
    api = FakeApi()
    options = ReplayOptions("meters", date(2013, 1, 1), date(2013, 1, 2), batch_size=10)

    report = replay(lake, FakeUseCase(), options, "month", api)

    assert (report.rows, report.requests, report.instances) == (48, 5, 48)
    # the batch of hours 20-23 of day 1 and 0-5 of day 2 holds a bad instance: rejected whole
    assert (report.answered, report.rejected, report.failed) == (20, 28, 0)
    assert report.errors == {"HTTP 400 invalid_request: meter: bad": 3}
    assert report.to_dict()["instances"] == 48
    assert "answered 20, rejected 28, failed 0" in report.summary()


def test_replay_of_an_empty_period_says_to_run_the_pipeline_first() -> None:
    lake = FakeLake({"month=2013-01": rows(2)})
    options = ReplayOptions("meters", date(2013, 1, 20), date(2013, 1, 21))

    with pytest.raises(ReplayError, match="no clean rows .* run `headwater run`"):
        replay(lake, FakeUseCase(), options, "month", FakeApi())


def test_replay_refuses_an_unknown_shift_before_contacting_the_api() -> None:
    options = ReplayOptions("meters", date(2013, 1, 1), date(2013, 1, 1), shift="nope")
    down = HttpTransport("http://127.0.0.1:9", timeout=2)

    with pytest.raises(ReplayError, match="unknown shift"):
        replay(FakeLake({}), FakeUseCase(), options, "month", down)


# -- real HTTP ----------------------------------------------------------------------------------
@pytest.fixture
def http_api() -> Iterator[tuple[str, list[Any]]]:
    """A tiny HTTP server answering /health and predictions as the API does; keeps the bodies."""
    received: list[Any] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self._answer(200, {"models": {"meters": {"loaded": True}}})

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((self.path, body))
            if any(i["meter"] == "bad" for i in body["instances"]):
                self._answer(400, {"error": {"code": "invalid_request", "message": "bad"}})
            else:
                self._answer(200, {"predictions": [{} for _ in body["instances"]]})

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def test_http_transport_posts_json_batches_and_reads_the_answers(
    http_api: tuple[str, list[Any]],
) -> None:
    url, received = http_api
    lake = FakeLake({"month=2013-01": rows(5) + rows(1, meter="bad")})
    options = ReplayOptions("meters", date(2013, 1, 1), date(2013, 1, 1), url=url, batch_size=5)

    report = replay(lake, FakeUseCase(), options, "month", HttpTransport(url))

    assert (report.answered, report.rejected, report.failed) == (5, 1, 0)
    assert sorted(received, key=lambda r: len(r[1]["instances"])) == [
        ("/v1/meters/predictions", {"instances": [{"meter": "bad", "hour": 0}]}),
        ("/v1/meters/predictions", {"instances": [{"meter": "m1", "hour": h} for h in range(5)]}),
    ]


class Flaky:
    """An API that is not reachable for its first ``down`` health checks."""

    def __init__(self, down: int) -> None:
        self.down, self.checks = down, 0

    def get(self, path: str) -> Answer:
        self.checks += 1
        if self.checks <= self.down:
            return Answer(0, error="ConnectionError: refused")
        return Answer(200, {"models": {"meters": {"loaded": True}}})


def test_waiting_for_the_api_retries_until_it_answers() -> None:
    api, now = Flaky(down=3), [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    wait_for_api(api, "http://x", "meters", 5.0, clock=lambda: now[0], sleep=sleep)

    assert api.checks == 4 and now[0] == 0.75


def test_waiting_for_the_api_gives_up_after_its_deadline() -> None:
    api, now = Flaky(down=100), [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(ApiUnreachable, match="http://x"):
        wait_for_api(api, "http://x", "meters", 1.0, clock=lambda: now[0], sleep=sleep)
    assert api.checks == 5


def test_waiting_does_not_retry_an_api_that_answers_without_the_use_case() -> None:
    api = FakeApi(health={"models": {}})

    with pytest.raises(ReplayError, match="does not serve"):
        wait_for_api(api, "http://x", "meters", 60.0, sleep=lambda s: pytest.fail("retried"))


def test_clean_rows_carry_the_use_cases_lag_windows_across_the_partition_before() -> None:
    # Given two daily partitions of hourly readings and a one-hour lag window
    class Training:
        date_column = "day"
        windows = (Window("before", "value", "lag", "at", span=timedelta(hours=1)),)

    class Case:
        name, clean_dataset, training = "meters", "readings", Training

    def rows(day: int) -> list[dict[str, Any]]:
        return [
            {"day": date(2013, 1, day), "at": datetime(2013, 1, day, h), "value": 10 * day + h}
            for h in (0, 23)
        ]

    class WindowedLake(FakeLake):
        def manifest(self, zone: str, dataset: str, partition: str) -> object | None:
            return partition if partition in self.partitions else None

    lake = WindowedLake({"date=2013-01-01": rows(1), "date=2013-01-02": rows(2)})
    # When the second day is read
    got = list(clean_rows(lake, Case, date(2013, 1, 2), date(2013, 1, 2), "day"))
    # Then midnight's lag is the hour before, from the day before; 23:00 has none (22:00 absent)
    assert [(r["value"], r["before"]) for r in got] == [(20, 33), (43, None)]
