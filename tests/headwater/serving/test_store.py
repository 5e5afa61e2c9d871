"""The read-only model store: what the registry writes, read without pyarrow (file and S3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from headwater.serving.store import DecisionKind, ModelStore, ModelStoreError, decision_kind
from tests.conftest import model_directories

REGION = "us-east-1"


@pytest.fixture(params=sorted(model_directories()))
def usecase(request: pytest.FixtureRequest) -> str:
    """Each use case that has a test model."""
    return str(request.param)


@pytest.fixture(params=["file", "s3"])
def store_lake(request: pytest.FixtureRequest, lake_uri: str) -> dict[str, Any]:
    """The same lake on local disk and on a bucket of the moto server."""
    if request.param == "file":
        return {"uri": lake_uri}
    uri = request.getfixturevalue("s3_lake_uri")
    return {"uri": uri, "region": REGION, "endpoint_url": request.getfixturevalue("moto_endpoint")}


def test_reads_what_the_registry_wrote(
    store_lake: dict[str, Any], publish_model: Any, test_models: dict[str, Any], usecase: str
) -> None:
    uri, options = store_lake["uri"], {k: v for k, v in store_lake.items() if k != "uri"}
    store = ModelStore(uri, usecase, **options)
    assert store.production() is None

    version = publish_model(uri, usecase=usecase, **options)

    pointer = store.production()
    assert pointer is not None and pointer.version == version and pointer.promoted_at
    assert store.is_complete(version)
    assert store.read_json(version, "metrics.json") == test_models[usecase]["metrics.json"]
    with pytest.raises(ModelStoreError, match="decision.txt does not exist"):
        store.read_json(version, "decision.txt")
    assert not store.is_complete("20200101T000000Z-absent")


def test_decision_is_the_kind_of_the_latest_decision_or_none(
    store_lake: dict[str, Any], publish_model: Any, usecase: str
) -> None:
    from headwater.core.layout import DECISION, model_parts
    from headwater.data.lake import open_lake
    from headwater.registry.registry import Registry

    uri, options = store_lake["uri"], {k: v for k, v in store_lake.items() if k != "uri"}
    store = ModelStore(uri, usecase, **options)
    first = publish_model(uri, usecase=usecase, **options)
    later = {"usecase": usecase, "promote": False, **options}
    second = publish_model(uri, "20261201T000000Z-second", **later)
    third = publish_model(uri, "20261202T000000Z-third", **later)
    lake = open_lake(uri, **options)
    Registry(lake, usecase).reject(second, "worse")
    lake.write_bytes(b"{not json", *model_parts(usecase, third, DECISION))

    assert store.decision(first) is DecisionKind.PROMOTED
    assert store.decision(second) is DecisionKind.REJECTED
    assert store.decision(third) is None  # unreadable: no decision known
    assert store.decision("20200101T000000Z-absent") is None


def test_decision_kinds_are_read_as_the_enum_and_an_unknown_kind_as_none() -> None:
    # The gate re-exports the serving side's enum: one definition of the kinds
    from headwater.registry.gate import DecisionKind as GateKind

    assert GateKind is DecisionKind
    assert decision_kind({"decision": "held"}) is DecisionKind.HELD
    assert decision_kind({"decision": "promoted-ish"}) is None
    assert decision_kind({"decision": 3}) is None and decision_kind(None) is None


def test_relative_file_uri_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, publish_model: Any, usecase: str
) -> None:
    version = publish_model(f"file://{tmp_path}/var/lake", usecase=usecase)
    monkeypatch.chdir(tmp_path)
    assert ModelStore("file://var/lake", usecase).production().version == version


@pytest.mark.parametrize(
    ("pointer", "message"),
    [
        (b"{", "is corrupt"),
        (b'{"promoted_at": "x"}', "is corrupt"),
        (b'{"version": "../../etc"}', "is corrupt"),
        (b'{"version": 7}', "is corrupt"),
        (b'{"version": "v1", "history": ["../v0"]}', "is corrupt"),
        (b'{"version": "v1", "history": "v0"}', "is corrupt"),
    ],
)
def test_corrupt_pointer(tmp_path: Path, pointer: bytes, message: str) -> None:
    folder = tmp_path / "lake" / "models" / "m"
    folder.mkdir(parents=True)
    (folder / "PRODUCTION.json").write_bytes(pointer)
    with pytest.raises(ModelStoreError, match=message):
        ModelStore(f"file://{tmp_path}/lake", "m").production()


@pytest.mark.parametrize("uri", ["http://host/lake", "lake", "s3:///prefix"])
def test_unsupported_uri(uri: str) -> None:
    with pytest.raises(ModelStoreError):
        ModelStore(uri, "m")


def test_serving_verifies_every_serving_file_the_layout_names(
    model_lake: str, test_models: dict[str, Any], usecase: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from headwater.core import layout
    from headwater.core.usecase import get_usecase
    from headwater.serving.predictor import load_serving_model

    # Given one more serving file in the layout, recorded in the pointer with another checksum
    monkeypatch.setattr(layout, "SERVING_FILES", (*layout.SERVING_FILES, layout.METRICS))
    store = ModelStore(model_lake, usecase)
    base_version = test_models[usecase]["export.json"]["metadata"]["version"]
    pointer = store.production()
    assert pointer is not None and pointer.version == base_version
    recorded = {**pointer.checksums[base_version], layout.METRICS: "0" * 64}
    pointer = replace(pointer, checksums={base_version: recorded})

    # When serving loads the version, then it verifies that file too (the tuple is the one list)
    with pytest.raises(ModelStoreError, match="metrics.json changed since it was promoted"):
        load_serving_model(store, pointer, get_usecase(usecase))


@pytest.mark.parametrize("name", ["../m", "", "a/b"])
def test_names_cannot_climb_out(name: str, tmp_path: Path) -> None:
    with pytest.raises(ModelStoreError):
        ModelStore(f"file://{tmp_path}", name)
    store = ModelStore(f"file://{tmp_path}", "m")
    with pytest.raises(ModelStoreError):
        store.read_json(name or "..", "export.json")
