"""The PRODUCTION pointer is re-read at most every N seconds; swaps are atomic.

On the test model (its use case: tests/conftest.py's MODEL) and its documented example.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from api.model_cache import ModelCache, ShadowCache
from headwater.core.usecase import get_usecase
from headwater.serving.predictor import ServingModel, load_serving_model
from headwater.serving.store import ModelStore, ProductionPointer, ShadowPointer
from tests.conftest import MODEL

NEW = "20261201T000000Z-second"
URL, MODEL_URL = f"/v1/{MODEL}/predictions", f"/v1/{MODEL}/model"
PROBABILITY = get_usecase(MODEL).serving.answer.probability  # the answer's probability key


def version_of(client: Any) -> str:
    return client.get("/health").get_json()["models"][MODEL]["model"]["version"]


def test_promotion_is_picked_up_after_the_interval(
    app_for: Any,
    model_lake: str,
    publish: Any,
    clock: Any,
    base_version: str,
    example: dict[str, Any],
) -> None:
    client = app_for(model_lake, RELOAD_SECONDS=30, CLOCK=clock).test_client()
    before = client.post(URL, json=example).get_json()

    # When a new version is promoted
    publish(model_lake, NEW, shift=1.0)

    # Then it is not read before the interval is over
    clock.advance(29)
    assert version_of(client) == base_version
    # And is served once it is
    clock.advance(1)
    after = client.post(URL, json=example).get_json()
    assert after["model"]["version"] == NEW
    assert after[PROBABILITY] > before[PROBABILITY]  # intercept moved up
    assert client.get(MODEL_URL).get_json()["version"] == NEW


def test_rollback_is_picked_up_too(
    app_for: Any, model_lake: str, publish: Any, clock: Any, base_version: str
) -> None:
    from headwater.data.lake import open_lake
    from headwater.registry.registry import Registry

    publish(model_lake, NEW)
    client = app_for(model_lake, RELOAD_SECONDS=5, CLOCK=clock).test_client()
    assert version_of(client) == NEW

    Registry(open_lake(model_lake), MODEL).rollback("bad model")
    clock.advance(5)

    assert version_of(client) == base_version


def test_first_promotion_ends_the_503s(
    app_for: Any, lake_uri: str, publish: Any, clock: Any, example: dict[str, Any]
) -> None:
    client = app_for(lake_uri, RELOAD_SECONDS=10, CLOCK=clock).test_client()
    assert client.post(URL, json=example).status_code == 503

    publish(lake_uri)
    clock.advance(10)

    assert client.post(URL, json=example).status_code == 200


@pytest.mark.parametrize(
    ("damage", "error"),
    [
        ({"skip": ("lookups.json",)}, "lookups.json does not exist"),
        ({"replace": {"export.json": b"{not json"}}, "not valid JSON"),
        ({"replace": {"export.json": b'{"format": "onnx"}'}}, "not a headwater.spark-pipeline"),
        ({"replace": {"lookups.json": b'{"no_such_table": {}}'}}, "malformed lookups"),
        ({"replace": {"lookups.json": b'{"default_weather": {}}'}}, "cannot score the use case"),
    ],
)
def test_a_broken_version_never_replaces_a_working_one(
    app_for: Any,
    model_lake: str,
    publish: Any,
    clock: Any,
    base_version: str,
    example: dict[str, Any],
    damage: dict[str, Any],
    error: str,
) -> None:
    client = app_for(model_lake, RELOAD_SECONDS=1, CLOCK=clock).test_client()

    # When a broken version is promoted
    publish(model_lake, NEW, **damage)
    clock.advance(1)

    # Then the working one keeps answering, and /health says what went wrong
    response = client.post(URL, json=example)
    assert response.status_code == 200
    assert response.get_json()["model"]["version"] == base_version
    health = client.get("/health").get_json()["models"][MODEL]
    assert health["model"]["version"] == base_version
    assert error in health["error"]

    # And once a good version is promoted, it is served and the error clears
    publish(model_lake, "20261202T000000Z-fixed")
    clock.advance(1)
    health = client.get("/health").get_json()["models"][MODEL]
    assert health["model"]["version"] == "20261202T000000Z-fixed"
    assert health["error"] is None


def test_requests_keep_the_old_model_while_the_new_one_loads(
    model_lake: str, publish: Any, clock: Any, base_version: str
) -> None:
    # Given a load that takes as long as the test wants
    loading, release = threading.Event(), threading.Event()

    def slow_loader(store: ModelStore, pointer: ProductionPointer) -> ServingModel:
        if pointer.version == NEW:
            loading.set()
            release.wait(10)
        return load_serving_model(store, pointer, get_usecase(MODEL))

    cache = ModelCache(ModelStore(model_lake, MODEL), 1, loader=slow_loader, clock=clock)
    assert cache.current().version == base_version
    publish(model_lake, NEW)
    clock.advance(1)

    # When one request is loading the new version
    loader = threading.Thread(target=cache.current)
    loader.start()
    assert loading.wait(10)

    # Then the others are answered at once, by the old model
    assert cache.current().version == base_version
    release.set()
    loader.join(10)
    assert cache.current().version == NEW


def test_concurrent_requests_never_see_a_mixed_model(
    app_for: Any, model_lake: str, publish: Any, base_version: str, example: dict[str, Any]
) -> None:
    # Given two versions whose answers differ, and the pointer flipping between them
    publish(model_lake, NEW, shift=2.0)
    app = app_for(model_lake, RELOAD_SECONDS=0)
    client = app.test_client()
    expected = {NEW: client.post(URL, json=example).get_json()[PROBABILITY]}
    publish(model_lake, base_version)
    expected[base_version] = client.post(URL, json=example).get_json()[PROBABILITY]
    assert expected[NEW] != expected[base_version]

    seen: list[tuple[str, float]] = []
    failures: list[Any] = []
    stop = threading.Event()

    def hammer() -> None:
        local = app.test_client()
        while not stop.is_set():
            response = local.post(URL, json={"instances": [example] * 5})
            if response.status_code != 200:
                failures.append(response.get_json())
                return
            answers = response.get_json()["predictions"]
            versions = {a["model"]["version"] for a in answers}
            if len(versions) != 1:
                failures.append(versions)
            seen.extend((a["model"]["version"], a[PROBABILITY]) for a in answers)

    from headwater.data.lake import open_lake
    from headwater.registry.registry import Registry

    registry = Registry(open_lake(model_lake), MODEL)
    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        # When promotions flip production back and forth while requests are served
        for i in range(20):
            registry.promote(NEW if i % 2 == 0 else base_version, "flip")
            time.sleep(0.01)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)

    # Then every answer came whole from one version: its number is that version's number
    assert not failures
    assert {version for version, _ in seen} == set(expected)
    for version, probability in seen:
        assert probability == expected[version]


def test_health_is_degraded_naming_the_version_the_pointer_names_but_cannot_be_loaded(
    app_for: Any, model_lake: str, publish: Any, clock: Any, base_version: str
) -> None:
    from headwater.data.lake import open_lake
    from headwater.registry.registry import Registry

    # Given a worker serving a second version
    publish(model_lake, NEW)
    client = app_for(model_lake, RELOAD_SECONDS=1, CLOCK=clock).test_client()
    assert version_of(client) == NEW

    # When production is rolled back, then a broken version is promoted (bypassing the CLI)
    Registry(open_lake(model_lake), MODEL).rollback("bad model")
    broken = publish(model_lake, "20261203T000000Z-broken", skip=("lookups.json",))
    clock.advance(1)

    # Then /health says degraded, naming the version production names and why it is not served
    health = client.get("/health").get_json()
    assert health["status"] == "degraded"
    entry = health["models"][MODEL]
    assert entry["production"] == broken
    assert f"production names {broken}, which cannot be loaded" in entry["message"]
    assert "lookups.json does not exist" in entry["message"]
    others = [m for name, m in health["models"].items() if name != MODEL]
    assert others and all(m["message"] is None for m in others)  # the other use cases are fine
    # And the worker serves the production before it (the pointer's history), not the version
    # it happened to hold, which production named neither before nor now
    assert entry["model"]["version"] == base_version
    assert f"serving {base_version}, the previous production" in entry["message"]


def test_a_worker_starting_after_a_broken_promote_serves_the_previous_production(
    app_for: Any, model_lake: str, publish: Any, base_version: str, example: dict[str, Any]
) -> None:
    # Given a broken version promoted over the working one (bypassing the CLI's checks)
    broken = publish(model_lake, "20261203T000000Z-broken", skip=("lookups.json",))

    # When a new worker starts
    client = app_for(model_lake).test_client()

    # Then it answers with the previous production instead of 503, and says so on /health
    response = client.post(URL, json=example)
    assert response.status_code == 200
    assert response.get_json()["model"]["version"] == base_version
    health = client.get("/health").get_json()
    assert health["status"] == "degraded"
    assert health["models"][MODEL]["production"] == broken
    assert health["models"][MODEL]["model"]["version"] == base_version


def test_a_version_served_from_the_history_shows_no_promotion_time_rather_than_an_empty_one(
    app_for: Any, model_lake: str, publish: Any, base_version: str
) -> None:
    # Given a broken version promoted over the working one
    publish(model_lake, "20261203T000000Z-broken", skip=("lookups.json",))

    # When a worker falls back to the previous production
    info = app_for(model_lake).test_client().get(MODEL_URL).get_json()

    # Then the model's description says its promotion time is unknown (null), not ""
    assert info["version"] == base_version
    assert info["promoted_at"] is None


def test_the_fallback_skips_a_version_rejected_since_it_was_in_production(
    app_for: Any, model_lake: str, publish: Any, base_version: str
) -> None:
    from headwater.data.lake import open_lake
    from headwater.registry.registry import Registry

    # Given production before a broken version was one rejected since (as a rollback skips it)
    publish(model_lake, NEW)
    broken = publish(model_lake, "20261203T000000Z-broken", skip=("lookups.json",))
    registry = Registry(open_lake(model_lake), MODEL)
    assert registry.production().history == (NEW, base_version)
    registry.reject(NEW, "found wrong after it was replaced")

    # When a worker falls back
    client = app_for(model_lake).test_client()

    # Then it serves the production before the rejected one
    entry = client.get("/health").get_json()["models"][MODEL]
    assert entry["production"] == broken
    assert entry["model"]["version"] == base_version


def test_health_calls_a_version_older_than_the_previous_production_an_earlier_one(
    app_for: Any, model_lake: str, publish: Any, base_version: str
) -> None:
    # Given two broken versions promoted one after the other over the working one
    publish(model_lake, "20261202T000000Z-broken", skip=("lookups.json",))
    second = publish(model_lake, "20261203T000000Z-broken", skip=("lookups.json",))

    # When a worker falls back past the first to the working one
    entry = app_for(model_lake).test_client().get("/health").get_json()["models"][MODEL]

    # Then /health does not call it the previous production (that is the first broken one)
    assert (entry["production"], entry["model"]["version"]) == (second, base_version)
    assert f"serving {base_version}, an earlier production" in entry["message"]
    assert "previous production" not in entry["message"]


def test_with_no_loadable_version_in_the_history_the_answer_is_503_naming_the_cause(
    app_for: Any, lake_uri: str, publish: Any, example: dict[str, Any]
) -> None:
    # Given a first promotion that is broken: there is nothing to fall back to
    publish(lake_uri, "20261203T000000Z-broken", skip=("lookups.json",))

    response = app_for(lake_uri).test_client().post(URL, json=example)

    assert response.status_code == 503
    assert "lookups.json does not exist" in response.get_json()["error"]["message"]


def test_a_served_file_changed_after_promotion_is_not_served(
    app_for: Any, model_lake: str, publish: Any, base_version: str, example: dict[str, Any]
) -> None:
    import json

    from headwater.core.layout import EXPORT, model_parts
    from headwater.data.lake import open_lake

    # Given a second version promoted, then its export rewritten in place (a valid model, its
    # intercept moved: what a stray writer to the version's prefix could leave)
    publish(model_lake, NEW)
    lake = open_lake(model_lake)
    export = json.loads(lake.read_bytes(*model_parts(MODEL, NEW, EXPORT)))
    export["pipelines"]["classifier"]["stages"][-1]["intercept"] += 3.0
    lake.write_bytes(json.dumps(export).encode(), *model_parts(MODEL, NEW, EXPORT))

    # When a worker loads production
    client = app_for(model_lake).test_client()

    # Then it refuses the changed file, naming it, and serves the production before it
    response = client.post(URL, json=example)
    assert response.get_json()["model"]["version"] == base_version
    health = client.get("/health").get_json()
    assert health["status"] == "degraded"
    error = health["models"][MODEL]["error"]
    assert f"{NEW}/{EXPORT}" in error
    assert "changed since it was promoted" in error


def test_a_served_file_absent_at_promotion_and_written_later_is_not_served(
    app_for: Any, model_lake: str, publish: Any, base_version: str, model_documents: Any
) -> None:
    import json

    from headwater.core.layout import LOOKUPS, model_parts
    from headwater.data.lake import open_lake

    # Given a version promoted without its lookups, then its lookups written (a stray writer)
    broken = publish(model_lake, "20261203T000000Z-broken", skip=(LOOKUPS,))
    lookups = json.dumps(model_documents[LOOKUPS]).encode()
    open_lake(model_lake).write_bytes(lookups, *model_parts(MODEL, broken, LOOKUPS))

    # When a worker loads production
    client = app_for(model_lake).test_client()

    # Then it refuses the file nobody verified, saying why, and serves the production before it
    health = client.get("/health").get_json()
    entry = health["models"][MODEL]
    assert entry["model"]["version"] == base_version
    assert f"{broken}/{LOOKUPS} was absent when version {broken} was promoted" in entry["error"]
    assert "refusing to serve it" in entry["error"]


class OnePointer:
    """A store whose production and shadow pointers both name version ``v1``."""

    name = MODEL

    def production(self) -> ProductionPointer:
        return ProductionPointer("v1")

    def shadow(self) -> ShadowPointer:
        return ShadowPointer("v1")


@pytest.mark.parametrize(
    ("cache_type", "waits"),
    [(ModelCache, True), (ShadowCache, False)],
    ids=["production", "shadow"],
)
def test_only_production_waits_for_its_first_model_while_another_caller_loads_it(
    cache_type: type[ModelCache | ShadowCache], waits: bool
) -> None:
    # Given a first load that takes as long as the test wants, under way in another thread
    loading, release = threading.Event(), threading.Event()
    loaded = SimpleNamespace(name=MODEL, version="v1")

    def slow_loader(store: Any, pointer: ProductionPointer) -> Any:
        loading.set()
        release.wait(10)
        return loaded

    cache = cache_type(OnePointer(), 60, loader=slow_loader)  # type: ignore[arg-type]
    first = threading.Thread(target=cache.current)
    first.start()
    assert loading.wait(10)

    # When another caller asks meanwhile
    answers: list[Any] = []
    second = threading.Thread(target=lambda: answers.append(cache.current()))
    second.start()
    second.join(0.5)

    # Then a request waits for production's first model (rather than answer 503), while the
    # capture thread never waits for the shadow's: it goes on without one
    assert second.is_alive() is waits
    assert answers == ([] if waits else [None])
    release.set()
    first.join(10)
    second.join(10)
    assert answers == ([loaded] if waits else [None])
    assert cache.current() is loaded
