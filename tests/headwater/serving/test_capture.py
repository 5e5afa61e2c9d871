"""Prediction capture: the record, the bounded background writer, the sinks."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from headwater.core.usecase import AnswerShape
from headwater.serving.capture import (
    FORMAT,
    Capture,
    CaptureRecord,
    FirehoseSink,
    LogSink,
    SpoolSink,
    create_capture,
    record_of,
)

SHAPE = AnswerShape(echo="thing", probability="p_late", decision="late", estimate="minutes")


def fake_model(name: str = "demo", version: str = "v1") -> Any:
    """A ServingModel stand-in: features_record derives ``double`` from the request's ``x``."""

    def features_record(request: Any, lookups: Any) -> tuple[dict[str, Any], list[str]]:
        return {"x": request["x"], "double": request["x"] * lookups["factor"]}, []

    spec = SimpleNamespace(answer=SHAPE, features_record=features_record)
    return SimpleNamespace(name=name, version=version, spec=spec, lookups={"factor": 2})


def features_of(request: dict[str, Any]) -> dict[str, Any]:
    """The features the fake model's scorer gives ``request``."""
    model = fake_model()
    return model.spec.features_record(request, model.lookups)[0]


def answer(p: float = 0.25) -> dict[str, Any]:
    return {
        "thing": {"x": 1},
        "p_late": p,
        "late": p >= 0.5,
        "threshold": 0.5,
        "minutes": 12.5,
        "defaulted": ["weather"],
        "unseen": ["meter"],
        "model": {"name": "demo", "version": "v1"},
    }


def offer(capture: Capture, i: int = 0, request_id: str = "r1", **kwargs: Any) -> bool:
    return capture.offer(
        fake_model(),
        {"x": 3},
        answer(),
        features=features_of({"x": 3}),
        request_id=request_id,
        instance=i,
        served_at=1_700_000_000.5,
        **{"latency_ms": 0.3, **kwargs},
    )


@dataclass
class ListSink:
    kind: str = "list"
    records: list[CaptureRecord] = field(default_factory=list)
    closed: bool = False
    gate: threading.Event | None = None

    def write(self, records: Sequence[CaptureRecord]) -> None:
        if self.gate is not None:
            self.gate.wait(10)
        self.records.extend(records)

    def close(self) -> None:
        self.closed = True


class FailingSink(ListSink):
    def write(self, records: Sequence[CaptureRecord]) -> None:
        raise OSError("disk full")


def test_the_record_holds_the_features_the_model_saw_and_the_answer() -> None:
    # When a record is built from an answer
    record = record_of(
        fake_model(),
        {"x": 3},
        answer(0.75),
        features=features_of({"x": 3}),
        request_id="r9",
        instance=2,
        served_at=1_700_000_000.5,
        latency_ms=0.12341,
    )
    # Then it carries the derived features (not the raw body) and the answer's own values
    assert record.features == {"x": 3, "double": 6}
    assert (record.probability, record.decision, record.estimate) == (0.75, True, 12.5)
    assert (record.defaulted, record.unseen, record.out_of_range) == (["weather"], ["meter"], [])
    assert record.served_at == "2023-11-14T22:13:20.500000+00:00"
    assert record.model_version == "v1" and record.usecase == "demo"
    assert record.role == "production" and record.key == ("r9", 2, "production")
    assert record.latency_ms == 0.1234


def test_the_record_keeps_the_scorers_own_features_without_deriving_them_again() -> None:
    # Given a model whose feature derivation counts its calls, and the features it scored
    calls = []
    model = fake_model()
    derive = model.spec.features_record
    model.spec.features_record = lambda request, lookups: (
        calls.append(1) or derive(request, lookups)
    )
    scored = {"x": 3, "double": 6}
    sink = ListSink()
    capture = Capture(sink, flush_seconds=5)
    # When the answer is offered with them, and written
    assert capture.offer(
        model,
        {"x": 3},
        answer(),
        features=scored,
        request_id="r1",
        instance=0,
        served_at=1_700_000_000.5,
        latency_ms=0.3,
    )
    capture.close()
    # Then the record holds that very object, and nothing was derived a second time
    (record,) = sink.records
    assert record.features is scored
    assert calls == []


def test_a_record_survives_its_line() -> None:
    record = record_of(
        fake_model(),
        {"x": 1},
        answer(),
        features=features_of({"x": 1}),
        request_id="a",
        instance=0,
        served_at=0,
        latency_ms=1,
    )
    line = record.to_json()
    assert json.loads(line)["capture"] == FORMAT
    assert CaptureRecord.from_dict(json.loads(line)) == record
    # compact, every field in declaration order after the marker (the line's stable form)
    assert line == json.dumps({"capture": FORMAT, **record.to_dict()}, separators=(",", ":"))


@pytest.mark.parametrize(
    "body", [{"capture": "other/9", "request_id": "x"}, {"capture": FORMAT, "nope": 1}]
)
def test_a_line_that_is_not_a_record_is_refused(body: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        CaptureRecord.from_dict(body)


def test_close_writes_everything_queued_and_closes_the_sink() -> None:
    # Given 50 answers offered
    sink = ListSink()
    capture = Capture(sink, flush_seconds=5)
    for i in range(50):
        assert offer(capture, i)
    # When capture closes (a graceful stop)
    capture.close()
    # Then every record was written, once, and the sink closed
    assert sorted(r.instance for r in sink.records) == list(range(50))
    assert sink.closed
    assert capture.counters() == {
        "offered": 50,
        "sampled_out": 0,
        "dropped": 0,
        "written": 50,
        "failed": 0,
        "shadow_scored": 0,
        "shadow_failed": 0,
        "queued": 0,
    }


def test_the_shadows_record_is_of_the_same_answer_with_its_own_model_score_and_latency() -> None:
    # Given a shadow (v2) that scores fast, and production's answer that took 500 ms
    shadow_model = fake_model(version="v2")
    source = SimpleNamespace(current=lambda: shadow_model)
    sink = ListSink()
    capture = Capture(
        sink,
        flush_seconds=5,
        score=lambda model, request: (answer(0.9), {"x": 3, "double": 6, "shadow": True}),
    )

    # When the answer is offered with the shadow source, and written
    assert offer(capture, 4, "r7", shadow=source, latency_ms=500.0) is True
    capture.close()

    # Then both records share the request's identity and time; the shadow's has its own
    # version, answer and latency (its scoring alone, not the request's)
    production, shadow = sink.records
    assert (production.role, shadow.role) == ("production", "shadow")
    assert shadow.key == ("r7", 4, "shadow") and production.key == ("r7", 4, "production")
    assert shadow.served_at == production.served_at == "2023-11-14T22:13:20.500000+00:00"
    assert (production.model_version, shadow.model_version) == ("v1", "v2")
    assert (production.probability, shadow.probability) == (0.25, 0.9)
    # and each the features its own scorer used
    assert production.features == {"x": 3, "double": 6}
    assert shadow.features == {"x": 3, "double": 6, "shadow": True}
    assert production.latency_ms == 500.0 and 0 <= shadow.latency_ms < 500.0
    assert capture.counters()["shadow_scored"] == 1


def test_a_full_queue_drops_and_counts_without_waiting() -> None:
    # Given a sink that does not return and a queue of 3
    gate = threading.Event()
    sink = ListSink(gate=gate)
    capture = Capture(sink, queue_size=3, batch_size=1, flush_seconds=0.05)
    try:
        kept = [offer(capture, i) for i in range(20)]
        # Then offers past the queue's size return at once, dropped and counted
        counters = capture.counters()
        assert kept.count(False) == counters["dropped"] >= 20 - 3 - 1
        assert counters["queued"] <= 3
    finally:
        gate.set()
        capture.close()
    assert len(sink.records) == kept.count(True)


def test_a_filling_queue_wakes_the_drain_before_its_tick() -> None:
    # Given a capture whose drain ticks every 30 s and a queue of 8 (woken at a quarter: 2)
    sink = ListSink()
    capture = Capture(sink, queue_size=8, batch_size=500, flush_seconds=30)
    try:
        # When three answers are offered (a busy gevent worker starved the tick: it dropped)
        for i in range(3):
            assert offer(capture, i)
        # Then they are written long before the tick, and nothing was dropped
        deadline = time.monotonic() + 5
        while len(sink.records) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(sink.records) == 3
        assert capture.counters()["dropped"] == 0
    finally:
        capture.close()


GEVENT_WORKER = """
from gevent import monkey

monkey.patch_all()
import json, sys, gevent
sys.path[:0] = [sys.argv[1]]
from tests.headwater.serving.test_capture import ListSink, offer
from headwater.serving.capture import Capture

sink = ListSink()
capture = Capture(sink, queue_size=300, flush_seconds=0.1)


def monopolise():
    # A request greenlet that never yields: a keep-alive connection whose next request is
    # always already waiting (gevent's recv returns at once), 1,000 answers in a row
    for i in range(1000):
        offer(capture, i, request_id=str(i))


gevent.spawn(monopolise).join()
capture.close()
print(json.dumps({"written": len(sink.records), **capture.counters()}))
"""


def test_a_greenlet_that_never_yields_does_not_starve_the_drain(tmp_path: Path) -> None:
    # Given gunicorn's gevent worker as it runs (threading patched: the drain is a greenlet)
    import subprocess
    import sys

    script = tmp_path / "worker.py"
    script.write_text(GEVENT_WORKER, encoding="utf-8")
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run(
        [sys.executable, str(script), str(root)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    counts = json.loads(done.stdout.splitlines()[-1])
    # Then the 1,000 answers were all written through a queue of 300 (the CI run dropped 68)
    assert counts["dropped"] == 0
    assert counts["written"] == 1000


def test_one_answer_waits_for_the_tick() -> None:
    # Below a quarter of the queue, the drain is not woken: the request pays no wake-up
    sink = ListSink()
    capture = Capture(sink, queue_size=8, flush_seconds=30)
    try:
        assert offer(capture, 0)
        time.sleep(0.2)
        assert sink.records == []
    finally:
        capture.close()
    assert len(sink.records) == 1


def test_a_failing_sink_is_counted_and_capture_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    capture = Capture(FailingSink(), flush_seconds=0.05)
    for i in range(5):
        assert offer(capture, i)
    capture.close()
    assert capture.counters()["failed"] == 5
    assert capture.counters()["written"] == 0
    assert "disk full" in caplog.text


def test_sampling_keeps_the_configured_share() -> None:
    draws = iter([0.1, 0.9, 0.2, 0.7])
    sink = ListSink()
    capture = Capture(sink, sample_rate=0.5, rng=lambda: next(draws))
    kept = [offer(capture, i) for i in range(4)]
    capture.close()
    assert kept == [True, False, True, False]
    assert capture.counters()["sampled_out"] == 2
    assert [r.instance for r in sink.records] == [0, 2]


def test_request_ids_are_unique_across_captures() -> None:
    a, b = Capture(ListSink()), Capture(ListSink())
    ids = {a.request_id() for _ in range(100)} | {b.request_id() for _ in range(100)}
    assert len(ids) == 200
    a.close()
    b.close()


# -- sinks -------------------------------------------------------------------------------------
def records(n: int, served_at: float = 1_700_000_000.5) -> list[CaptureRecord]:
    return [
        record_of(
            fake_model(),
            {"x": i},
            answer(),
            features=features_of({"x": i}),
            request_id=f"r{i}",
            instance=0,
            served_at=served_at,
            latency_ms=0.1,
        )
        for i in range(n)
    ]


def test_the_spool_writes_an_open_file_per_hour_and_renames_it_when_the_hour_is_over(
    tmp_path: Path,
) -> None:
    # Given the clock within the records' hour (2023-11-14 22:13 UTC)
    now = [1_700_000_000.0]
    sink = SpoolSink(tmp_path, clock=lambda: now[0])
    sink.write(records(3))
    hour = tmp_path / "capture" / "demo" / "2023-11-14" / "22"
    (open_file,) = hour.iterdir()
    # Then the file is still open (not for the collector), and flushed: every line is there
    assert open_file.name.endswith(".jsonl.open")
    assert len(open_file.read_text().splitlines()) == 3
    # When the next hour starts
    now[0] += 3600
    sink.rotate()
    # Then the file is closed under its final name
    (closed,) = hour.iterdir()
    assert closed.name.endswith(".jsonl") and closed.name == open_file.name.removesuffix(".open")
    lines = closed.read_text().splitlines()
    assert [CaptureRecord.from_dict(json.loads(x)).request_id for x in lines] == ["r0", "r1", "r2"]


def test_closing_the_spool_renames_its_current_files(tmp_path: Path) -> None:
    sink = SpoolSink(tmp_path, clock=lambda: 1_700_000_000.0)
    sink.write(records(2))
    sink.close()
    files = list(tmp_path.rglob("*"))
    assert [f.name.endswith(".jsonl") for f in files if f.is_file()] == [True]


def test_the_log_sink_writes_one_capture_line_per_record() -> None:
    stream = io.StringIO()
    LogSink(stream).write(records(2))
    lines = stream.getvalue().splitlines()
    assert [json.loads(line)["request_id"] for line in lines] == ["r0", "r1"]
    assert all(json.loads(line)["capture"] == FORMAT for line in lines)


class FakeFirehose:
    def __init__(self, failed: int = 0) -> None:
        self.calls: list[dict[str, Any]] = []
        self.failed = failed

    def put_record_batch(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        return {"FailedPutCount": self.failed}


def test_firehose_batches_stay_within_the_api_limits() -> None:
    client = FakeFirehose()
    FirehoseSink("capture", client=client).write(records(1201))
    assert [len(call["Records"]) for call in client.calls] == [500, 500, 201]
    assert {call["DeliveryStreamName"] for call in client.calls} == {"capture"}
    first = json.loads(client.calls[0]["Records"][0]["Data"])
    assert first["request_id"] == "r0"


def test_records_firehose_refuses_are_an_error() -> None:
    with pytest.raises(RuntimeError, match="refused 2 of 3"):
        FirehoseSink("capture", client=FakeFirehose(failed=2)).write(records(3))


def settings(**capture: Any) -> Any:
    from headwater.core.config import Settings

    return Settings.model_validate({"lake": {"uri": "file:///tmp/x"}, "api": {"capture": capture}})


def test_capture_is_off_unless_enabled() -> None:
    assert create_capture(settings()) is None
    capture = create_capture(settings(enabled=True, sample_rate=0.25))
    assert capture is not None
    assert capture.sink.kind == "spool" and capture.sample_rate == 0.25
    capture.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"sink": "firehose"}, "firehose_stream"),
    ],
)
def test_a_sink_that_cannot_work_is_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_capture(settings(enabled=True, **options))


def test_the_spool_needs_a_local_lake() -> None:
    from headwater.core.config import Settings

    s3 = Settings.model_validate(
        {"lake": {"uri": "s3://bucket"}, "api": {"capture": {"enabled": True}}}
    )
    with pytest.raises(ValueError, match="file:// lake"):
        create_capture(s3)
