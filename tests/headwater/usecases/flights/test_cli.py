"""The ``headwater`` command line on the flights use case's HTTP weather source: a run whose
extraction fails, ``serve-source`` serving it, and an option of its source kind refused (the
command line on any use case: tests/cli/test_cli.py)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

import cli
from headwater.core.config import Settings
from tests.cli.test_cli import free_port, invoke, restore_logging  # noqa: F401

# ruff: noqa: F811 (restore_logging: the fixture, imported)


@pytest.mark.slow
def test_run_with_a_failed_task_exits_1_naming_it(
    make_stage: Callable[..., Settings], restore_logging: None
) -> None:
    # Given a weather API that refuses connections
    port = free_port()
    make_stage(
        usecase__flights__sources__weather__base_url=f"http://127.0.0.1:{port}/v1/archive",
        usecase__flights__sources__weather__max_retries=0,
    )

    # When a day of flights runs
    result = invoke("run", "--start", "2013-01-01", "--until", "extract", "--usecase", "flights")

    # Then the command fails and the printed report names the task and the error
    assert result.exit_code == 1, result.output
    assert "FAILED: 1 task(s) failed, flights," in result.output
    failed = re.findall(r"^  - (ExtractPartition [^:]+): (.*)$", result.output, flags=re.MULTILINE)
    assert [task for task, _ in failed] == ["ExtractPartition flights weather 2013-01-01"]
    assert f"127.0.0.1:{port}" in failed[0][1]


def test_serve_source_serves_a_use_cases_http_source_until_interrupted(
    make_stage: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the flights weather source, and a wait that asks the server, then is interrupted
    # (patching time.sleep itself would reach every thread of the process)
    make_stage()
    port = free_port()
    answers: list[Any] = []

    def interrupted() -> None:
        answers.append(requests.get(f"http://127.0.0.1:{port}/health", timeout=5).json())
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "wait_until_interrupted", interrupted)

    # When it is served on a port
    result = invoke(
        "serve-source", "--usecase", "flights", "--source", "weather", "--port", str(port)
    )

    # Then it answered while serving, and stopped on Ctrl-C
    assert result.exit_code == 0, result.output
    assert answers == [{"status": "ok"}]
    assert f"serving http://127.0.0.1:{port}" in result.output
    assert "stopped" in result.output
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/health", timeout=2)


def test_an_option_of_the_http_source_kind_is_refused_naming_key_and_value(
    make_stage: Callable[..., Settings], tmp_path: Path
) -> None:
    # Given the weather source's window set to zero days
    make_stage(usecase__flights__sources__weather__window_days="0")

    # When a run starts
    result = invoke("run", "--start", "2013-01-01", "--end", "2013-01-03")

    # Then it stops at once, naming the key, the value and the rule
    assert result.exit_code == 2, result.output
    assert (
        "usecase.flights.sources.weather.window_days = '0': Input should be greater than "
        "or equal to 1"
    ) in result.output
    assert not (tmp_path / "lake").exists()


def test_serve_source_checks_the_sources_credential_and_says_where(
    make_stage: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the weather source sending a token from a variable nobody exported
    monkeypatch.delenv("HEADWATER_TEST_SERVE_TOKEN", raising=False)
    make_stage(
        usecase__flights__sources__weather__auth__header="X-Weather-Token",
        usecase__flights__sources__weather__auth__value="env:HEADWATER_TEST_SERVE_TOKEN",
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1/archive"
    query = {"latitude": "40.64", "longitude": "-73.78", "start_date": "2013-01-01",
             "end_date": "2013-01-01", "hourly": "temperature_2m"}  # fmt: skip
    statuses: list[int] = []
    tokens: list[str] = []

    def interrupted() -> None:
        statuses.append(requests.get(url, params=query, timeout=5).status_code)
        printed = [line for line in tokens if "export" in line]
        token = printed[0].rpartition("HEADWATER_TEST_SERVE_TOKEN=")[2].rstrip(")")
        sent = requests.get(url, params=query, headers={"X-Weather-Token": token}, timeout=5)
        statuses.append(sent.status_code)
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "wait_until_interrupted", interrupted)
    monkeypatch.setattr(cli.typer, "echo", lambda text="", **kw: tokens.append(str(text)))

    # When it is served
    invoke("serve-source", "--usecase", "flights", "--source", "weather", "--port", str(port))

    # Then it says where the credential goes and the generated value, and checks it
    assert any("header 'X-Weather-Token' (generated: export" in line for line in tokens), tokens
    assert statuses == [401, 200]
