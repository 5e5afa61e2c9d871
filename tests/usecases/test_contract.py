"""The use-case conformance suite: every registered use case, and a test-only one, end to end.

Each use case goes through the same platform path with nothing but its own package and
configuration: demo data, extraction, contracts and cleaning with exact reconciliation,
training on a small range through the generic Spark job, export parity against Spark, the
quality gate, and serving through the Flask app with the use case's OpenAPI example, every
real response validated against the OpenAPI document.

Test-only use cases are discovered: every ``tests/usecases/*/usecase.toml`` holds the
``[usecase.<name>]`` table of a stage file (its module lives beside it) and a
``[conformance.<name>]`` range. ``meters`` (``tests/usecases/minimal/``) is one: it passing
here, with no edit outside its own directory, is the proof that the contract is complete.
"""

from __future__ import annotations

import tomllib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from headwater.core import layout
from headwater.core.config import Settings
from headwater.core.partitions import partitions_between
from headwater.data.pipeline import (
    clean_partition,
    extract_partition,
    extract_snapshot,
    lake_for,
    usecase_of,
)
from headwater.model.spark_training import PARITY_TOLERANCE, TrainOptions, train
from headwater.registry.registry import Registry, decide, new_version

pytestmark = pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")


@dataclass(frozen=True)
class Case:
    """A small range of a use case's demo data that trains and holds out something."""

    start: date
    end: date


# The shipped use cases, on small ranges of their demo data.
SHIPPED = {
    "flights": Case(date(2013, 1, 1), date(2013, 1, 31)),
    "bikeshare": Case(date(2011, 1, 1), date(2011, 3, 31)),
}


def _test_only() -> dict[str, tuple[Path, dict[str, Any], Case]]:
    """Use cases declared by ``tests/usecases/*/usecase.toml``: directory, table, range."""
    found = {}
    for path in sorted(Path(__file__).parent.glob("*/usecase.toml")):
        body = tomllib.loads(path.read_text(encoding="utf-8"))
        for name, table in body["usecase"].items():
            window = body["conformance"][name]
            found[name] = (path.parent, table, Case(window["start"], window["end"]))
    return found


TEST_ONLY = _test_only()
CASES = {**SHIPPED, **{name: case for name, (_, _, case) in TEST_ONLY.items()}}


def _test_only_table(
    name: str, root: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, Any], str | None]:
    """A test-only use case's own table: its module importable, SQLite files under ``root``."""
    directory, table, _ = TEST_ONLY[name]
    monkeypatch.syspath_prepend(str(directory))
    sources = {}
    for source, config in table["sources"].items():
        url = config.get("url", "")
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            url = f"sqlite:///{root / url.removeprefix('sqlite:///')}"
        sources[source] = {**config, "url": url} if url else dict(config)
    return sources, table.get("module")


def _sources(request: pytest.FixtureRequest, name: str) -> tuple[dict[str, Any], str | None]:
    """A shipped use case's sources pointed at the session's demo fixtures."""
    if name == "flights":
        db, weather = request.getfixturevalue("demo_db"), request.getfixturevalue("weather_server")
        sql = {"kind": "sql", "url": db}
        return {
            "flights": {**sql, "table": "flights", "date_column": "flight_date"},
            "planes": {**sql, "table": "planes"},
            "weather": {"kind": "openmeteo", "base_url": weather.url, "rate_limit_per_second": 200},
        }, None
    if name == "bikeshare":
        db = request.getfixturevalue("bike_db")
        weather = request.getfixturevalue("bike_weather_server")
        return {
            "rentals": {"kind": "sql", "url": db, "table": "rentals", "date_column": "dteday"},
            "weather": {
                "kind": "json_pages",
                "base_url": weather.url,
                "items_field": "observations",
                "rate_limit_per_second": 200,
            },
        }, None
    raise AssertionError(f"no fixtures for shipped use case {name!r}")


@dataclass
class Published:
    """One use case taken through the platform: its settings, run, version and gate decision."""

    name: str
    settings: Settings
    results: list[Any]
    version: str
    summary: dict[str, Any]


@pytest.fixture(scope="module", params=sorted(CASES))
def published(
    request: pytest.FixtureRequest, spark: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Published]:
    """Extract, clean, snapshot, train, gate and promote one use case on its small range."""
    name = request.param
    case = CASES[name]
    root = tmp_path_factory.mktemp(f"contract-{name}")
    with pytest.MonkeyPatch.context() as monkeypatch:
        if name in TEST_ONLY:
            sources, module = _test_only_table(name, root, monkeypatch)
        else:
            sources, module = _sources(request, name)
        yield _publish(spark, name, case, root, sources, module)


def _publish(
    spark: Any, name: str, case: Case, root: Path, sources: dict[str, Any], module: str | None
) -> Published:
    settings = Settings.model_validate(
        {
            "stage": "test",
            "usecases": [name],
            "usecase": {name: {"module": module, "sources": sources}},
            "lake": {"uri": f"file://{root}/lake"},
            "partitioning": {"grain": "month"},
            "training": {"shuffle_partitions": 2},
        }
    )
    usecase, run_id = usecase_of(settings, name), "contract"
    sql = {n: c for n, c in settings.usecase_config(name).sources.items() if c.kind == "sql"}
    if name in TEST_ONLY:  # the shipped ones' demo databases are session fixtures
        usecase.build_demo_data(sql, replace=True)
    results = []
    for part in partitions_between(case.start, case.end, "month"):
        for source in usecase.sources:
            extract_partition(settings, name, source, part, run_id)
        results.append(clean_partition(settings, name, part, run_id))
    for reference in usecase.references:
        extract_snapshot(settings, name, reference, case.end, run_id)
    version = new_version(run_id=run_id)
    options = TrainOptions(
        lake=settings.lake.uri, version=version, start=case.start, end=case.end, run_id=run_id
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "unclosed <socket.socket", ResourceWarning)
        summary = train(spark, usecase, options)
    registry = Registry(lake_for(settings), name)
    metrics = registry.read_json(version, layout.METRICS)
    gate = settings.usecase_config(name).gate
    decision = decide(metrics["holdout"], None, metric=gate.metric, margin=gate.margin)
    assert decision.promote, decision.reason
    registry.promote(version, decision.reason, expected=None)
    return Published(name, settings, results, version, summary)


def test_demo_data_is_built_where_the_configuration_points(published: Published) -> None:
    usecase = usecase_of(published.settings, published.name)
    sql = {
        name: config
        for name, config in published.settings.usecase_config(published.name).sources.items()
        if config.kind == "sql"
    }
    report = usecase.build_demo_data(sql, replace=False)
    assert report.url in {config.options()["url"] for config in sql.values()}
    for config in sql.values():
        assert Path(config.options()["url"].removeprefix("sqlite:///")).is_file()


def test_every_partition_is_published_and_reconciles_exactly(published: Published) -> None:
    usecase = usecase_of(published.settings, published.name)
    lake = lake_for(published.settings)
    assert published.results, "no partition in the range"
    for result in published.results:
        ledger = result.reconciliation
        assert set(ledger) == set(usecase.sources)
        for counts in ledger.values():
            assert counts["in"] == counts["out"] + counts["quarantined"]
        clean = layout.dataset(published.name, usecase.clean_dataset)
        manifest = lake.manifest(layout.CLEAN, clean, result.partition)
        assert manifest is not None and manifest.rows == result.rows
        for source in usecase.sources:
            dataset = layout.dataset(published.name, source)
            assert lake.manifest(layout.RAW, dataset, result.partition) is not None
            assert lake.manifest(layout.QUARANTINE, dataset, result.partition) is not None
    assert sum(r.rows for r in published.results) > 0


def test_the_clean_data_follows_the_use_case_schema(published: Published) -> None:
    usecase = usecase_of(published.settings, published.name)
    lake = lake_for(published.settings)
    clean = layout.dataset(published.name, usecase.clean_dataset)
    table, _ = lake.read(layout.CLEAN, clean, published.results[0].partition)
    assert table.schema.remove_metadata().equals(usecase.clean_schema().remove_metadata())


def test_training_writes_a_complete_version_in_the_use_case_namespace(
    published: Published,
) -> None:
    lake = lake_for(published.settings)
    version = published.version
    for name in (layout.EXPORT, layout.LOOKUPS, layout.METRICS, layout.LINEAGE, layout.REPORT):
        assert lake.exists(*layout.model_parts(published.name, version, name)), name
    assert lake.exists(*layout.model_parts(published.name, version, layout.SUCCESS))
    metrics = Registry(lake, published.name).read_json(version, layout.METRICS)
    spec = usecase_of(published.settings, published.name).training
    assert metrics["label"]["column"] == spec.label.column
    assert metrics["target"]["unit"] == spec.target.unit
    assert {b.name for b in spec.baselines} <= set(metrics["baselines"])


def test_the_portable_export_scores_as_spark_does(published: Published) -> None:
    parity = published.summary["parity"]
    assert parity["rows"] > 0
    assert parity["max_abs_probability"] <= PARITY_TOLERANCE
    assert parity["max_abs_regression"] <= PARITY_TOLERANCE


def test_the_report_uses_the_use_case_names(published: Published) -> None:
    usecase = usecase_of(published.settings, published.name)
    lake = lake_for(published.settings)
    html = lake.read_bytes(*layout.model_parts(published.name, published.version, layout.REPORT))
    text = html.decode()
    assert usecase.training.label.name in text
    assert usecase.training.target.name in text


@pytest.fixture(scope="module")
def client(published: Published) -> Any:
    """The API over the published lake, with this use case alone enabled."""
    from api import create_app

    return create_app({"SETTINGS": published.settings, "RELOAD_SECONDS": 0}).test_client()


def _violations(document: dict[str, Any], path: str, method: str, status: str, body: Any) -> list:
    """What the documented response schema of ``method path -> status`` finds wrong in ``body``."""
    responses = document["paths"][path][method]["responses"]
    assert status in responses, f"{method.upper()} {path} -> {status} is not documented"
    schema = responses[status]["content"]["application/json"]["schema"]
    validator = Draft202012Validator({**schema, "components": document["components"]})
    return [error.message for error in validator.iter_errors(body)]


def test_the_api_serves_the_promoted_version_with_the_openapi_example(
    published: Published, client: Any
) -> None:
    usecase = usecase_of(published.settings, published.name)
    document = client.get("/openapi.json").get_json()
    path = f"/v1/{published.name}/predictions"
    assert path in document["paths"]

    answer = client.post(path, json=dict(usecase.serving.example))

    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    keys = usecase.serving.answer
    assert 0.0 <= body[keys.probability] <= 1.0
    assert isinstance(body[keys.decision], bool)
    assert body["model"] == {"name": published.name, "version": published.version}
    assert _violations(document, path, "post", "200", body) == []


def test_every_real_response_validates_against_the_openapi_document(
    published: Published, client: Any
) -> None:
    usecase = usecase_of(published.settings, published.name)
    document = client.get("/openapi.json").get_json()
    base = f"/v1/{published.name}"
    example = dict(usecase.serving.example)
    calls = [
        ("post", f"{base}/predictions", {"instances": [example, example]}, "200"),
        ("post", f"{base}/predictions", {"instances": [{}]}, "400"),
        ("get", f"{base}/model", None, "200"),
        ("get", "/health", None, "200"),
    ]
    for method, path, body, status in calls:
        response = getattr(client, method)(path, json=body) if body else client.get(path)
        assert str(response.status_code) == status, (path, response.get_json())
        errors = _violations(document, path, method, status, response.get_json())
        assert errors == [], (path, status, errors)


def test_health_names_the_served_version(published: Published, client: Any) -> None:
    health = client.get("/health").get_json()
    text = repr(health)
    assert published.version in text


def test_every_answer_is_captured_and_collected_once(published: Published) -> None:
    from api import create_app
    from headwater.data.pipeline import timezone_of
    from headwater.monitoring.collect import (
        captured_partitions,
        collect_predictions,
        read_predictions,
    )
    from headwater.serving.capture import Capture, SpoolSink

    # Given the API capturing into the use case's lake
    settings, name = published.settings, published.name
    usecase = usecase_of(settings, name)
    root = layout.local_root(settings.lake.uri)
    assert root is not None
    capture = Capture(SpoolSink(root))
    client = create_app({"SETTINGS": settings, "CAPTURE": capture}).test_client()
    example = dict(usecase.serving.example)
    # When a batch of two is answered, the process stops and the captured days are collected
    response = client.post(f"/v1/{name}/predictions", json={"instances": [example, example]})
    assert response.status_code == 200
    capture.close()
    lake = lake_for(settings)
    records = []
    for part in captured_partitions(lake, name, settings.partitioning.grain):
        collect_predictions(lake, name, part, timezone_of(settings, name), run_id="conformance")
        records += read_predictions(lake, name, part.key)
    # Then both instances are in predictions/<usecase>/, with every model input as scored
    assert sorted(r.instance for r in records) == [0, 1]
    assert {r.model_version for r in records} == {published.version}
    assert all(set(usecase.training.features) <= set(r.features) for r in records)


def test_the_test_only_use_case_is_discovered() -> None:
    # The proof needs at least one use case that lives only under tests/usecases/.
    assert "meters" in TEST_ONLY
    directory, table, _ = TEST_ONLY["meters"]
    assert (directory / f"{table['module']}.py").is_file()
