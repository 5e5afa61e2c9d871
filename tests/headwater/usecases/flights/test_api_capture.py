"""The API records each flight as the model saw it: an unseen carrier flagged, derived features
(the capture on any use case: tests/api/test_capture.py)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from flask import Flask

from headwater.core.usecase import get_usecase
from headwater.serving.capture import Capture

# The API tests' fixtures (tests/api/conftest.py), api_env autouse as there.
from tests.api.conftest import api_env, app_for  # noqa: F401
from tests.api.test_capture import ListSink

# ruff: noqa: F811 (those fixtures are the tests' arguments)


def test_every_instance_of_a_batch_is_recorded_as_the_model_saw_it(
    app_for: Callable[..., Flask], model_lake: str, flight: dict[str, Any], base_version: str
) -> None:
    # Given an app capturing into a list
    sink = ListSink()
    capture = Capture(sink)
    client = app_for(model_lake, CAPTURE=capture).test_client()
    other = copy.deepcopy(flight) | {"carrier": "ZZ"}  # unseen in training
    # When a batch of two and a single instance are answered
    batch = client.post("/v1/flights/predictions", json={"instances": [flight, other]}).get_json()
    single = client.post("/v1/flights/predictions", json=flight).get_json()
    capture.close()
    # Then three records, the batch's two sharing one request id, in order
    assert len(sink.records) == 3
    first, second, third = sink.records
    assert first.request_id == second.request_id != third.request_id
    assert (first.instance, second.instance, third.instance) == (0, 1, 0)
    # with the answer's own numbers and flags
    answers = [*batch["predictions"], single]
    shape = get_usecase("flights").serving.answer
    for record, answer in zip(sink.records, answers, strict=True):
        assert record.usecase == "flights" and record.model_version == base_version
        assert record.probability == answer[shape.probability]
        assert record.estimate == answer[shape.estimate]
        assert record.decision == answer[shape.decision]
        assert record.defaulted == answer["defaulted"] and record.unseen == answer["unseen"]
        assert record.latency_ms > 0 and record.role == "production"
    assert "carrier" in second.unseen and "carrier" not in first.unseen
    # and the features the model scored: derived ones, not the raw body
    assert set(first.features) - set(flight), "derived features are recorded"
    assert first.features["carrier"] == flight["carrier"]
