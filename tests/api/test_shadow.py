"""Shadow scoring: the shadow answers the same requests, recorded only; it never costs an answer.

On the test model (its use case: tests/conftest.py's MODEL) and its documented example.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from flask import Flask

from headwater.core.layout import EXPORT, model_parts
from headwater.core.usecase import get_usecase
from headwater.data.lake import open_lake
from headwater.registry.registry import Registry
from headwater.serving.capture import PRODUCTION, SHADOW, Capture, CaptureRecord
from tests.conftest import MODEL

SHADOW_VERSION = "20261201T000000Z-shadow"
URL = f"/v1/{MODEL}/predictions"
PROBABILITY = get_usecase(MODEL).serving.answer.probability  # the answer's probability key


class ListSink:
    kind = "spool"

    def __init__(self) -> None:
        self.records: list[CaptureRecord] = []

    def write(self, records: Sequence[CaptureRecord]) -> None:
        self.records.extend(records)

    def close(self) -> None:
        pass


def registry_of(lake_uri: str) -> Registry:
    return Registry(open_lake(lake_uri), MODEL)


def with_shadow(lake_uri: str, publish: Callable[..., str], shift: float = 1.0) -> str:
    """Publish a second version (its intercept moved) and make it the shadow."""
    publish(lake_uri, SHADOW_VERSION, shift=shift, promote=False)
    registry_of(lake_uri).set_shadow(SHADOW_VERSION, "try it live")
    return SHADOW_VERSION


def by_role(records: list[CaptureRecord], role: str) -> list[CaptureRecord]:
    return [r for r in records if r.role == role]


def test_both_models_are_recorded_and_only_production_answers(
    app_for: Callable[..., Flask],
    model_lake: str,
    publish: Callable[..., str],
    example: dict[str, Any],
    base_version: str,
) -> None:
    # Given production (the base version) and a shadow whose intercept is 1.0 higher
    alone = app_for(model_lake).test_client().post(URL, json=example)
    with_shadow(model_lake, publish)
    sink = ListSink()
    capture = Capture(sink)
    client = app_for(model_lake, CAPTURE=capture).test_client()

    # When a batch of two and a single instance are answered
    batch = client.post(URL, json={"instances": [example, example]})
    single = client.post(URL, json=example)
    capture.close()

    # Then the answers are production's, exactly as without a shadow
    assert single.get_json() == alone.get_json()
    assert {p["model"]["version"] for p in batch.get_json()["predictions"]} == {base_version}
    # and each instance has a production record and a shadow record of the same identity
    production, shadow = by_role(sink.records, PRODUCTION), by_role(sink.records, SHADOW)
    assert len(production) == len(shadow) == 3
    ids = [(r.request_id, r.instance) for r in production]
    assert [(r.request_id, r.instance) for r in shadow] == ids
    assert {r.model_version for r in production} == {base_version}
    assert {r.model_version for r in shadow} == {SHADOW_VERSION}
    # with the shadow's own numbers (its intercept is higher), on the same features
    for mine, theirs in zip(production, shadow, strict=True):
        assert theirs.probability > mine.probability
        assert theirs.features == mine.features
    assert production[2].probability == single.get_json()[PROBABILITY]
    assert capture.counters()["shadow_scored"] == 3


def test_health_names_the_shadow_and_says_it_is_scored(
    app_for: Callable[..., Flask], model_lake: str, publish: Callable[..., str]
) -> None:
    with_shadow(model_lake, publish)
    capture = Capture(ListSink())
    health = app_for(model_lake, CAPTURE=capture).test_client().get("/health").get_json()
    capture.close()

    shadow = health["models"][MODEL]["shadow"]
    assert shadow["state"] == "loaded" and shadow["scored"] is True
    assert shadow["version"] == shadow["loaded"] == SHADOW_VERSION
    others = [m for name, m in health["models"].items() if name != MODEL]
    assert others and {m["shadow"]["state"] for m in others} == {"off"}
    assert health["status"] == "ok"


def test_a_shadow_that_cannot_load_is_reported_and_production_answers(
    app_for: Callable[..., Flask],
    model_lake: str,
    publish: Callable[..., str],
    example: dict[str, Any],
    base_version: str,
) -> None:
    # Given a shadow whose export changed after it was set (its checksum no longer matches)
    with_shadow(model_lake, publish)
    lake = open_lake(model_lake)
    lake.write_bytes(b"{}", *model_parts(MODEL, SHADOW_VERSION, EXPORT))
    sink = ListSink()
    capture = Capture(sink)
    client = app_for(model_lake, CAPTURE=capture).test_client()

    # When a request is answered
    response = client.post(URL, json=example)
    health = client.get("/health").get_json()
    capture.close()

    # Then production answers and is recorded; the shadow is neither scored nor served
    assert response.status_code == 200
    assert response.get_json()["model"]["version"] == base_version
    assert [r.role for r in sink.records] == [PRODUCTION]
    shadow = health["models"][MODEL]["shadow"]
    assert shadow["state"] == "failed" and shadow["loaded"] is None
    assert "changed since it was promoted" in shadow["error"]
    assert health["status"] == "ok"  # production is fine


def test_a_shadow_that_cannot_score_is_counted_and_production_is_recorded(
    app_for: Callable[..., Flask],
    model_lake: str,
    publish: Callable[..., str],
    example: dict[str, Any],
) -> None:
    # Given a shadow whose scoring raises
    with_shadow(model_lake, publish)

    def broken(model: Any, request: Any) -> dict[str, Any]:
        raise ArithmeticError("the shadow overflowed")

    sink = ListSink()
    capture = Capture(sink, score=broken)
    client = app_for(model_lake, CAPTURE=capture).test_client()

    # When two requests are answered
    answers = [client.post(URL, json=example) for _ in range(2)]
    capture.flush()
    health = client.get("/health").get_json()
    capture.close()

    # Then both are answered and recorded, and the shadow's failures counted
    assert [a.status_code for a in answers] == [200, 200]
    assert [r.role for r in sink.records] == [PRODUCTION, PRODUCTION]
    assert health["capture"]["shadow_failed"] == 2 and health["capture"]["shadow_scored"] == 0
    assert health["capture"]["failed"] == 0 and health["capture"]["written"] == 2


def test_the_shadow_is_swapped_in_and_switched_off_like_production(
    app_for: Callable[..., Flask],
    model_lake: str,
    publish: Callable[..., str],
    example: dict[str, Any],
    clock: Any,
) -> None:
    # Given an app started without a shadow
    sink = ListSink()
    capture = Capture(sink)
    client = app_for(model_lake, CAPTURE=capture, RELOAD_SECONDS=30, CLOCK=clock).test_client()

    def roles_of_one_request() -> list[str]:
        sink.records.clear()
        client.post(URL, json=example)
        capture.flush()
        return sorted(r.role for r in sink.records)

    assert roles_of_one_request() == [PRODUCTION]
    # When a shadow is set: not read before the interval is over, scored once it is
    with_shadow(model_lake, publish)
    clock.advance(29)
    assert roles_of_one_request() == [PRODUCTION]
    clock.advance(1)
    assert roles_of_one_request() == [PRODUCTION, SHADOW]
    # When it is switched off, it is no longer scored after the interval
    registry_of(model_lake).clear_shadow()
    clock.advance(30)
    assert roles_of_one_request() == [PRODUCTION]
    assert client.get("/health").get_json()["models"][MODEL]["shadow"]["state"] == "off"
    capture.close()


def test_a_shadow_promoted_to_production_is_not_scored_twice(
    app_for: Callable[..., Flask],
    model_lake: str,
    publish: Callable[..., str],
    example: dict[str, Any],
    clock: Any,
) -> None:
    with_shadow(model_lake, publish)
    sink = ListSink()
    capture = Capture(sink)
    client = app_for(model_lake, CAPTURE=capture, RELOAD_SECONDS=5, CLOCK=clock).test_client()
    registry_of(model_lake).promote(SHADOW_VERSION, "it won live")
    clock.advance(5)

    client.post(URL, json=example)
    capture.close()

    assert [(r.role, r.model_version) for r in sink.records] == [(PRODUCTION, SHADOW_VERSION)]
