"""The use-case conformance suite: every enabled use case, and every test-only one, end to end.

Each use case goes through the same platform path with nothing but its own package and
configuration: demo data, extraction, contracts and cleaning with exact reconciliation,
training on a small range through the generic Spark job, export parity against Spark, the
quality gate, and serving through the Flask app with the use case's OpenAPI example, every
real response validated against the OpenAPI document.

Everything comes from the use cases themselves, so this file names none of them:

- which: the use cases the ``local`` stage enables (``config/local.toml``, or the one in
  ``HEADWATER_CONFIG_DIR``), plus every test-only one, a ``tests/usecases/*/usecase.toml``
  holding the ``[usecase.<name>]`` table of a stage file (its module lives beside it);
- their sources: that table, SQLite files moved into a temporary directory, built by the
  use case's own ``build_demo_data``; each source with ``embedded_server = true`` answered
  by the use case's own ``embedded_server`` on a free port;
- their range: the use case's ``conformance`` member (``ConformanceSpec(start, end)``).

The use case of ``tests/usecases/minimal/`` is test-only: it passing here, with no edit outside
its own directory, is the proof that the contract is complete;
``test_any_use_case_joins.py`` proves that a use case enabled from elsewhere joins too.
"""

from __future__ import annotations

import contextlib
import html
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from headwater.core import layout
from headwater.core.config import Settings, SourceConfig, load_settings
from headwater.core.partitions import partitions_between
from headwater.core.usecase import NO_OUTCOME, ConformanceSpec, DemoReport, outcome_of
from headwater.data.pipeline import (
    clean_partition,
    extract_partition,
    extract_snapshot,
    lake_for,
    usecase_of,
)
from headwater.data.sources import register_usecase_kinds, validate_source
from headwater.data.sources.embedded import serve_stand_in
from headwater.model.spark_training import PARITY_TOLERANCE, TrainOptions, train
from headwater.registry.gate import decide
from headwater.registry.registry import Registry, new_version
from tests.usecases.registered import STAGE, Candidate, enabled, only_in_tests

pytestmark = pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")

ENABLED, TEST_ONLY = enabled(), only_in_tests()
CANDIDATES = {**ENABLED, **TEST_ONLY}


def _local_sqlite(url: str, root: Path) -> str:
    """A SQLite URL moved under ``root`` (the suite never writes a configured file)."""
    if not url.startswith("sqlite:///"):
        return url
    return f"sqlite:///{root / 'sources' / url.removeprefix('sqlite:///').lstrip('/')}"


def _sources(
    candidate: Candidate, root: Path, stack: contextlib.ExitStack, monkeypatch: pytest.MonkeyPatch
) -> dict[str, dict[str, Any]]:
    """The use case's configured sources: SQLite under ``root``, embedded servers started."""
    usecase = candidate.usecase()
    register_usecase_kinds(usecase)
    sources = {}
    for name, config in candidate.table.get("sources", {}).items():
        config = dict(config)
        if "url" in config:
            config["url"] = _local_sqlite(str(config["url"]), root)
        if config.get("embedded_server"):
            # The use case's own server on a free port, checking the source's credential
            # (generated, as a run does, when its env: variable is unset).
            options = validate_source(SourceConfig.model_validate(config), name)
            stand_in = stack.enter_context(serve_stand_in(usecase, name, options))
            config["base_url"] = stand_in.url
            for variable, value in stand_in.environment.items():
                monkeypatch.setenv(variable, value)
        sources[name] = config
    return sources


@dataclass
class Published:
    """One use case taken through the platform: its settings, run, version and gate decision."""

    name: str
    settings: Settings
    results: list[Any]
    version: str
    summary: dict[str, Any]


@pytest.fixture(scope="module", params=sorted(CANDIDATES))
def published(
    request: pytest.FixtureRequest, spark: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Published]:
    """Build demo data, extract, clean, snapshot, train, gate and promote one use case."""
    candidate = CANDIDATES[request.param]
    case = candidate.conformance()
    root = tmp_path_factory.mktemp(f"contract-{candidate.name}")
    with pytest.MonkeyPatch.context() as monkeypatch, contextlib.ExitStack() as stack:
        if candidate.directory is not None:
            monkeypatch.syspath_prepend(str(candidate.directory))
        sources = _sources(candidate, root, stack, monkeypatch)
        yield _publish(spark, candidate.name, case, root, sources, candidate.table.get("module"))


def _publish(
    spark: Any,
    name: str,
    case: ConformanceSpec,
    root: Path,
    sources: dict[str, Any],
    module: str | None,
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
    # As `headwater demo-data` does: the use case is given all its configured sources.
    usecase.build_demo_data(settings.usecase_config(name).sources, replace=True)
    results = []
    for part in partitions_between(case.start, case.end, "month"):
        for source in usecase.sources:
            extract_partition(settings, name, source, part, run_id)
        results.append(clean_partition(settings, name, part, run_id))
    for reference in usecase.references:
        extract_snapshot(settings, name, reference, case.end, run_id)
    version = new_version(run_id=run_id)
    options = TrainOptions(
        usecase=usecase.name,
        lake=settings.lake.uri,
        version=version,
        start=case.start,
        end=case.end,
        run_id=run_id,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "unclosed <socket.socket", ResourceWarning)
        summary = train(spark, usecase, options)
    registry = Registry(lake_for(settings), name)
    metrics = registry.read_json(version, layout.METRICS)
    gate = settings.usecase_config(name).gate
    decision = decide(metrics["holdout"], None, gate)
    assert decision.promote, decision.reason
    registry.promote(version, decision.reason, expected=None)
    return Published(name, settings, results, version, summary)


def demo_data_problems(report: DemoReport, sources: Mapping[str, Any]) -> list[str]:
    """What a use case's demo build got wrong: it must land where the SQL sources point.

    A use case without a SQL source has no database to build; nothing is asked of it then.
    """
    urls = {config.options()["url"] for config in sources.values() if config.kind == "sql"}
    if not urls:
        return []
    problems = [] if report.url in urls else [f"built {report.url!r}, not one of {sorted(urls)}"]
    for url in sorted(urls):
        if not Path(url.removeprefix("sqlite:///")).is_file():
            problems.append(f"no database at {url!r}")
    return problems


def test_demo_data_is_built_where_the_configuration_points(published: Published) -> None:
    usecase = usecase_of(published.settings, published.name)
    sources = published.settings.usecase_config(published.name).sources

    report = usecase.build_demo_data(sources, replace=False)

    assert demo_data_problems(report, sources) == []


def test_a_use_case_without_a_sql_source_needs_no_demo_database(tmp_path: Path) -> None:
    from headwater.core.config import SourceConfig

    http = {"feed": SourceConfig(kind="json_pages", base_url="http://127.0.0.1:1/feed")}
    missing = f"sqlite:///{tmp_path}/absent.sqlite"
    sql = {"rows": SourceConfig(kind="sql", url=missing, table="rows")}

    assert demo_data_problems(DemoReport(url="", tables={}), http) == []
    assert demo_data_problems(DemoReport(url="", tables={}), sql) == [
        f"built '', not one of {[missing]}",
        f"no database at {missing!r}",
    ]


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
    report = lake.read_bytes(*layout.model_parts(published.name, published.version, layout.REPORT))
    text = report.decode()
    # The report escapes what it shows (a name may hold ', <, > or &).
    assert html.escape(usecase.training.label.name) in text
    assert html.escape(usecase.training.target.name) in text


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


@dataclass(frozen=True)
class WithoutOutcome:
    """A use case with its ``outcome`` left out: one whose outcomes never arrive."""

    usecase: Any

    def __getattr__(self, name: str) -> Any:
        if name == "outcome":
            raise AttributeError(name)
        return getattr(self.usecase, name)


def _monitored(published: Published, usecase: Any) -> tuple[list[Any], set[str]]:
    """The use case's example answered, captured, collected and monitored: served, notes."""
    from datetime import datetime

    from api import create_app
    from headwater.data.pipeline import timezone_of
    from headwater.monitoring.collect import captured_partitions, collect_predictions
    from headwater.monitoring.monitor import configured_thresholds
    from headwater.monitoring.published import monitor_published
    from headwater.serving.capture import Capture, SpoolSink

    settings, name = published.settings, published.name
    root = layout.local_root(settings.lake.uri)
    assert root is not None
    capture = Capture(SpoolSink(root))
    client = create_app({"SETTINGS": settings, "CAPTURE": capture}).test_client()
    response = client.post(f"/v1/{name}/predictions", json={"instances": [usecase.serving.example]})
    assert response.status_code == 200
    capture.close()
    lake, grain = lake_for(settings), settings.partitioning.grain
    thresholds = configured_thresholds(settings.usecase_config(name).monitoring.model_dump())
    served, notes = [], set()
    for part in captured_partitions(lake, name, grain):
        collect_predictions(lake, name, part, timezone_of(settings, name), run_id="conformance")
        monitored = monitor_published(lake, usecase, part, grain, thresholds, datetime(2100, 1, 1))
        served += monitored.served
        notes |= set(monitored.notes)
    return served, notes


@pytest.mark.parametrize("declared", [True, False], ids=["as-declared", "outcome-left-out"])
def test_every_use_case_is_monitored_from_its_captured_answers(
    published: Published, declared: bool
) -> None:
    from datetime import datetime

    from headwater.monitoring.monitor import configured_thresholds
    from headwater.monitoring.published import monitor_published

    # Given the use case as declared, or with its outcome left out (outcomes never arrive)
    settings, name = published.settings, published.name
    usecase = usecase_of(settings, name)
    usecase = usecase if declared else WithoutOutcome(usecase)

    # When its example is answered, collected and monitored
    served, notes = _monitored(published, usecase)

    # Then the answer is monitored, its inputs against the reference, outcomes or not
    assert sum(s.predictions for s in served) >= 1
    assert {s.version for s in served} == {published.version}
    assert all(s.drift is not None for s in served)
    if outcome_of(usecase) is None:  # and monitoring says why there is no live performance
        assert NO_OUTCOME in notes
        assert all(s.classification is None and s.regression is None for s in served)
    # and the range's last partition (its holdout, after production's training window) drifts
    # against production's reference, no traffic needed; its training rows are not judged
    lake, grain = lake_for(settings), settings.partitioning.grain
    thresholds = configured_thresholds(settings.usecase_config(name).monitoring.model_dump())
    last = partitions_between(usecase.conformance.start, usecase.conformance.end, grain)[-1]
    clean = monitor_published(lake, usecase, last, grain, thresholds, datetime(2100, 1, 1))
    assert clean.production == published.version
    assert clean.clean_drift is not None
    assert clean.clean_drift.rows == clean.clean_rows - clean.trained_rows > 0
    # every input, the windows' included (monitoring computes them as training does)
    assert {d.feature for d in clean.clean_drift.features} == set(usecase.training.features)


def test_a_served_prediction_meets_its_outcome_by_key(published: Published) -> None:
    from headwater.monitoring.monitor import NO_KEY

    # Given a use case declaring how a prediction meets its outcome (optional: else skipped)
    usecase = usecase_of(published.settings, published.name)
    outcome = outcome_of(usecase)
    if outcome is None:
        pytest.skip(NO_OUTCOME)
    # Then the example's echo gives the outcome's key, in clean columns
    example_echo = usecase.serving.describe(
        usecase.serving.request_model.model_validate(usecase.serving.example)
    )
    assert set(outcome.key_of_request(example_echo)) == set(outcome.key_columns)
    assert set(outcome.key_columns) <= set(usecase.clean_schema().names)
    # and every monitored answer's key is read from its echo (found, or counted as missing)
    served, _ = _monitored(published, usecase)
    assert served and all(s.outcomes[NO_KEY] == 0 for s in served)


def test_the_test_only_use_cases_are_discovered() -> None:
    # The proof needs at least one use case that lives only under tests/usecases/.
    assert TEST_ONLY
    for candidate in TEST_ONLY.values():
        assert candidate.directory is not None
        assert (candidate.directory / f"{candidate.table['module']}.py").is_file()
        assert candidate.usecase().name == candidate.name


@pytest.mark.parametrize("name", sorted(CANDIDATES))
def test_every_use_case_declares_its_conformance_range(name: str) -> None:
    spec = CANDIDATES[name].conformance()
    assert spec.start <= spec.end
    assert all(word and word == word.strip() for word in spec.vocabulary)


def test_the_enabled_use_cases_come_from_the_stage() -> None:
    assert tuple(ENABLED) == load_settings(STAGE).usecases


def test_every_clean_row_becomes_a_request_the_api_answers(
    published: Published, client: Any
) -> None:
    from headwater.monitoring.replay import batches, clean_rows, requests_of_rows

    # Given every clean row of the conformance range, read as a replay reads it
    usecase = usecase_of(published.settings, published.name)
    spec = usecase.serving
    assert spec.request_of_row is not None, "declare ServingSpec.request_of_row (headwater replay)"
    case = CANDIDATES[published.name].conformance()
    lake = lake_for(published.settings)
    rows = list(clean_rows(lake, usecase, case.start, case.end, "month"))
    assert 0 < len(rows) <= sum(r.rows for r in published.results)  # partitions overhang
    label, target = usecase.training.label.column, usecase.training.target.column
    path = f"/v1/{published.name}/predictions"
    # When each row's request, as it is and under every declared shift, is posted in batches
    for shift in (None, *spec.shifts):
        answered = 0
        for batch in batches(requests_of_rows(rows, spec, shift), 1000):
            response = client.post(path, json={"instances": batch})
            # Then the API answers every one: the requests are what its model reads
            assert response.status_code == 200, (shift, response.get_json())
            answered += len(response.get_json()["predictions"])
        assert answered == len(rows), shift
    # and no request carries the label or the target (known only after the fact)
    first = spec.request_of_row(rows[0])
    assert not {label, target} & set(first)
