"""The shadow pointer: set, cleared, refused, swapped only from what the caller read."""

from __future__ import annotations

import hashlib
import json
import threading

import pytest

from headwater.core.layout import EXPORT, LOOKUPS, PROFILE, SHADOW, model_parts
from headwater.data.lake import Lake
from headwater.registry.prune import incomplete_versions
from headwater.registry.registry import (
    ConcurrentShadowError,
    Registry,
    RegistryError,
    VersionNotFoundError,
)
from headwater.serving.store import ABSENT, ModelStore

MODEL = "delay"


@pytest.fixture
def registry(lake: Lake) -> Registry:
    return Registry(lake, MODEL)


def store_of(registry: Registry) -> ModelStore:
    """The API's read-only view of the same lake."""
    lake = registry.lake
    return ModelStore(lake.uri_of(), MODEL, region=lake.region, endpoint_url=lake.endpoint_url)


def complete(registry: Registry, version: str, export: bytes = b'{"v": 1}') -> str:
    registry.lake.write_bytes(export, *model_parts(MODEL, version, EXPORT))
    registry.write_json(version, "metrics.json", {"holdout": {"auc_roc": 0.7}})
    registry.mark_complete(version)
    return version


def test_set_shadow_records_the_version_and_its_serving_files_checksums(
    registry: Registry,
) -> None:
    # Given production v1 and a complete candidate v2 (an export, no lookups, no profile)
    complete(registry, "v1")
    registry.promote("v1", "first")
    complete(registry, "v2", export=b'{"v": 2}')

    # When v2 is made the shadow
    pointer = registry.set_shadow("v2", "try it live")

    # Then the pointer names it, with the sha256 of its export and ABSENT for missing files
    assert registry.shadow() == pointer
    assert (pointer.version, pointer.reason) == ("v2", "try it live")
    assert pointer.checksums == {
        EXPORT: hashlib.sha256(b'{"v": 2}').hexdigest(),
        LOOKUPS: ABSENT,
        PROFILE: ABSENT,
    }
    # and the read-only store (the API's) reads the same pointer
    assert store_of(registry).shadow() == pointer
    # and the listing marks v2 as the shadow, v1 not
    marks = {info.version: (info.status, info.shadow) for info in registry.versions()}
    assert marks == {"v1": ("production", False), "v2": ("candidate", True)}


def test_clear_shadow_switches_it_off_and_says_which_it_was(registry: Registry) -> None:
    complete(registry, "v1")
    registry.set_shadow("v1")

    assert registry.clear_shadow() == "v1"

    assert registry.shadow() is None
    assert store_of(registry).shadow() is None
    assert json.loads(registry.lake.read_bytes(*model_parts(MODEL, SHADOW)))["version"] is None
    # switching off again is a no-op, and says nothing was on
    assert registry.clear_shadow() is None
    assert not any(info.shadow for info in registry.versions())


def test_production_cannot_be_its_own_shadow(registry: Registry) -> None:
    complete(registry, "v1")
    registry.promote("v1", "first")

    with pytest.raises(RegistryError, match="v1 of model delay is in production"):
        registry.set_shadow("v1")
    assert registry.shadow() is None


def test_an_incomplete_or_unknown_version_is_refused(registry: Registry) -> None:
    registry.lake.write_bytes(b"{}", *model_parts(MODEL, "v9", EXPORT))  # no _SUCCESS

    with pytest.raises(VersionNotFoundError, match="incomplete"):
        registry.set_shadow("v9")
    with pytest.raises(VersionNotFoundError, match="no version nope"):
        registry.set_shadow("nope")
    with pytest.raises(VersionNotFoundError, match="not a valid version name"):
        registry.set_shadow(SHADOW)


def test_a_changed_shadow_is_not_overridden(registry: Registry) -> None:
    # Given an operator who read "no shadow", while another set v1
    complete(registry, "v1")
    complete(registry, "v2")
    registry.set_shadow("v1")

    # Then setting v2 from "no shadow" and switching off "v2" are both refused
    with pytest.raises(ConcurrentShadowError, match="the shadow is v1, not off"):
        registry.set_shadow("v2", expected=None)
    with pytest.raises(ConcurrentShadowError, match="it is v1, not v2"):
        registry.clear_shadow(expected="v2")
    assert registry.shadow().version == "v1"
    # and from what it really is, both work
    assert registry.set_shadow("v2", expected="v1").version == "v2"
    assert registry.clear_shadow(expected="v2") == "v2"


def test_racing_setters_each_swap_from_what_they_read(registry: Registry) -> None:
    # Given 8 threads each setting its own version from "no shadow"
    versions = [complete(registry, f"v{i}") for i in range(8)]
    won, lost = [], []

    def set_one(version: str) -> None:
        try:
            registry.set_shadow(version, expected=None)
            won.append(version)
        except ConcurrentShadowError:
            lost.append(version)

    threads = [threading.Thread(target=set_one, args=(v,)) for v in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then exactly one won, and the pointer names it
    assert len(won) == 1 and len(lost) == 7
    assert registry.shadow().version == won[0]


def test_the_shadow_pointer_is_neither_a_version_nor_a_leftover(registry: Registry) -> None:
    complete(registry, "v1")
    registry.set_shadow("v1")

    assert [info.version for info in registry.versions()] == ["v1"]
    assert incomplete_versions(registry) == []


def test_a_corrupt_shadow_pointer_is_named(registry: Registry) -> None:
    registry.lake.write_bytes(b'{"version": "../x"}', *model_parts(MODEL, SHADOW))

    with pytest.raises(RegistryError, match="SHADOW.json is corrupt"):
        registry.shadow()
