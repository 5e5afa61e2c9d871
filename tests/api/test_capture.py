"""The API records every answered prediction, and capture never costs an answer (on the test
model's use case and its documented example)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

import api.blueprints.predictions as predictions
from headwater.core.usecase import get_usecase
from headwater.serving.capture import Capture, CaptureRecord, record_of
from headwater.serving.predictor import Scored
from tests.api.conftest import MODEL_DIRS


class ListSink:
    kind = "spool"

    def __init__(self) -> None:
        self.records: list[CaptureRecord] = []

    def write(self, records: Sequence[CaptureRecord]) -> None:
        self.records.extend(records)

    def close(self) -> None:
        pass


class BrokenSink(ListSink):
    def write(self, records: Sequence[CaptureRecord]) -> None:
        raise OSError("no space left on device")


def test_every_instance_of_a_batch_is_recorded_with_its_answer(
    app_for: Callable[..., Flask],
    model_lake: str,
    model_usecase: str,
    example: dict[str, Any],
    predictions_url: str,
    base_version: str,
) -> None:
    # Given an app capturing into a list
    sink = ListSink()
    capture = Capture(sink)
    client = app_for(model_lake, CAPTURE=capture).test_client()
    # When a batch of two and a single instance are answered
    batch = client.post(predictions_url, json={"instances": [example, example]}).get_json()
    single = client.post(predictions_url, json=example).get_json()
    capture.close()
    # Then three records, the batch's two sharing one request id, in order
    assert len(sink.records) == 3
    first, second, third = sink.records
    assert first.request_id == second.request_id != third.request_id
    assert (first.instance, second.instance, third.instance) == (0, 1, 0)
    # with the answer's own numbers and flags, and the features the model scored
    answers = [*batch["predictions"], single]
    shape = get_usecase(model_usecase).serving.answer
    for record, answer in zip(sink.records, answers, strict=True):
        assert record.usecase == model_usecase and record.model_version == base_version
        assert record.probability == answer[shape.probability]
        assert record.estimate == answer[shape.estimate]
        assert record.decision == answer[shape.decision]
        assert record.defaulted == answer["defaulted"] and record.unseen == answer["unseen"]
        assert record.latency_ms > 0 and record.role == "production"
        assert record.features == first.features and record.features


@pytest.mark.parametrize("usecase", sorted(MODEL_DIRS))
def test_each_record_holds_the_features_its_answer_was_scored_from(
    app_for: Callable[..., Flask], model_lake: str, usecase: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an app capturing into a list, whose scorer's results are watched
    scored: list[tuple[Any, Scored]] = []

    def watched(model: Any, request: Any) -> Scored:
        result = score(model, request)
        scored.append((request, result))
        return result

    score = predictions.score
    monkeypatch.setattr(predictions, "score", watched)
    sink = ListSink()
    capture = Capture(sink)
    app = app_for(model_lake, CAPTURE=capture)
    example = dict(get_usecase(usecase).serving.example)
    # When the use case's example is answered alone and in a batch of two
    client = app.test_client()
    for body in (example, {"instances": [example, example]}):
        assert client.post(f"/v1/{usecase}/predictions", json=body).status_code == 200
    capture.close()
    # Then each record holds the very features object its answer was scored from
    assert len(sink.records) == len(scored) == 3
    for record, (request, (answer, features)) in zip(sink.records, scored, strict=True):
        assert record.features is features
        # and equals the record built by deriving them again from the validated request
        model = app.extensions["headwater_api"].usecases[usecase].models.current()
        again = record_of(
            model,
            request,
            answer,
            features=model.spec.features_record(request, model.lookups)[0],
            request_id=record.request_id,
            instance=record.instance,
            served_at=datetime.fromisoformat(record.served_at).timestamp(),
            latency_ms=record.latency_ms,
        )
        assert again == record


def test_a_failing_sink_never_costs_an_answer(
    app_for: Callable[..., Flask], model_lake: str, example: dict[str, Any], predictions_url: str
) -> None:
    capture = Capture(BrokenSink(), flush_seconds=0.05)
    client = app_for(model_lake, CAPTURE=capture).test_client()
    for _ in range(5):
        assert client.post(predictions_url, json=example).status_code == 200
    capture.flush()
    health = client.get("/health").get_json()
    assert health["capture"]["failed"] == 5 and health["capture"]["written"] == 0
    assert health["capture"]["enabled"] is True
    capture.close()


def test_a_capture_that_raises_never_costs_an_answer(
    app_for: Callable[..., Flask], model_lake: str, example: dict[str, Any], predictions_url: str
) -> None:
    class Exploding(Capture):
        def offer(self, *args: Any, **kwargs: Any) -> bool:
            raise RuntimeError("boom")

    client = app_for(model_lake, CAPTURE=Exploding(ListSink())).test_client()
    assert client.post(predictions_url, json=example).status_code == 200


def test_nothing_is_recorded_for_a_refused_request(
    app_for: Callable[..., Flask], model_lake: str, predictions_url: str
) -> None:
    sink = ListSink()
    capture = Capture(sink)
    client = app_for(model_lake, CAPTURE=capture).test_client()
    assert client.post(predictions_url, json={}).status_code == 400
    capture.close()
    assert sink.records == [] and capture.counters()["offered"] == 0


def test_capture_follows_the_stage_settings_into_the_local_lake(
    app_for: Callable[..., Flask],
    model_lake: str,
    model_usecase: str,
    example: dict[str, Any],
    predictions_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given [api.capture] enabled (by environment, as any setting), spooling under the lake
    monkeypatch.setenv("HEADWATER_API__CAPTURE__ENABLED", "true")
    app = app_for(model_lake)
    client = app.test_client()
    assert client.get("/health").get_json()["capture"]["sink"] == "spool"
    for _ in range(3):
        client.post(predictions_url, json=example)
    # When the process stops gracefully
    app.extensions["headwater_api"].capture.close()
    # Then the lake's capture zone holds the three records, in a closed file
    root = Path(model_lake.removeprefix("file://"))
    files = list((root / "capture" / model_usecase).rglob("*.jsonl"))
    lines = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert len(lines) == 3 and {line["usecase"] for line in lines} == {model_usecase}


def test_capture_is_off_in_health_when_disabled(client: Any) -> None:
    capture = client.get("/health").get_json()["capture"]
    assert capture.pop("enabled") is False
    assert capture and set(capture.values()) == {None}  # every declared key, null when off
