"""The served API against its own OpenAPI document, fuzzed with schemathesis (WSGI, in process).

Every operation of every enabled use case gets generated valid and invalid requests
(bounded: a fixed number of examples, derandomized, so the run is fast and repeats
exactly); each answer must be no server error, be documented (its status code and
content type), and conform to the documented schema. Invalid input the schema refuses
must be refused, and schema-valid input must be accepted.

Two phases of schemathesis run: fuzzing (random cases, through hypothesis strategies) and
coverage (the schema's boundaries, each just inside and just outside: ``maxItems`` + 1
instances, a number past its ``maximum``...), the latter through schemathesis's own engine
with every check, as ``schemathesis run --phases coverage --checks all`` runs it.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.engine import Status, events, from_schema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    positive_data_acceptance,
]
EXAMPLES = 40  # per operation and generation mode


def operations(app: Flask) -> list[Any]:
    """Every operation the served document lists."""
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    return [result.ok() for result in schema.get_all_operations()]


def test_every_route_of_every_enabled_use_case_is_fuzzed(app: Flask) -> None:
    paths = {operation.path for operation in operations(app)}
    for usecase in app.extensions["headwater_api"].usecases:
        assert {f"/v1/{usecase}/predictions", f"/v1/{usecase}/model"} <= paths
    assert {"/health", "/docs"} <= paths  # schemathesis skips the document's own path


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_api_behaves_as_its_document_says(app: Flask, mode: GenerationMode) -> None:
    failures = []
    for operation in operations(app):

        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case: Any) -> None:
            case.call_and_validate(checks=CHECKS)

        try:
            check()
        except Unsatisfiable:  # no parameter and no body: nothing to make invalid
            assert mode is GenerationMode.NEGATIVE, operation.path
        except Exception as exc:  # collect every operation's failure, then report all
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert not failures, "\n\n".join(failures)


SEED = 20240601  # the coverage phase is mostly an enumeration; the seed fixes what is drawn


def coverage_failures(app: Flask) -> tuple[int, list[str]]:
    """Run schemathesis's coverage phase with every check: (cases run, failures and errors)."""
    config = schemathesis.Config()
    config.update(seed=SEED, max_failures=None)
    project = config.projects.override
    project.phases.update(phases=["coverage"])
    project.checks.update(included_check_names=["all"])
    project.generation.update(deterministic=True, database="none")
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app, config=config)
    cases, found = 0, set()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            cases += len(event.recorder.cases)
            for checks in event.recorder.checks.values():
                for check in checks:
                    if check.status == Status.FAILURE and check.failure_info:
                        failure = check.failure_info.failure
                        found.add(
                            f"{event.recorder.label}: {check.name}: {failure.title}: "
                            f"{failure.message}"
                        )
        elif isinstance(event, events.NonFatalError):
            found.add(f"{event.label}: error: {event.value!r}")
        elif isinstance(event, events.FatalError):
            found.add(f"fatal: {event.exception!r}")
    return cases, sorted(found)


def test_the_schemas_boundaries_behave_as_the_document_says(app: Flask) -> None:
    # Given every operation's boundary cases (e.g. a batch one instance over maxItems)
    cases, failures = coverage_failures(app)
    # Then every check passes on each of them
    assert cases > 100  # the phase ran (both use cases' operations)
    assert not failures, "\n\n".join(failures)
