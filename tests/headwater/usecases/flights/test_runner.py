"""End to end with real Luigi, the flights use case beside the test-only one and bike share: both
published with one notification, each over its own range, the shipped use cases with their
embedded servers, one use case failing alone (moved from tests/luigi_tasks/test_runner.py)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from datetime import date

import pytest
import requests

from headwater.core import layout
from headwater.core.config import Settings, load_settings
from headwater.core.partitions import partitions_between
from headwater.data.pipeline import lake_for
from luigi_tasks.pipeline import CleanPartition
from luigi_tasks.runner import (
    RunOptions,
    embedded_services,
    run_pipeline,
)
from tests.luigi_tasks import test_runner as runner_tests
from tests.luigi_tasks.test_runner import (
    FIRST,
    LAST,
    METERS,
    STATIONS,
    clean_keys,
    closed_port,
    keys,
    notifications,
    readings_rows,
    records,
    sqlite_count,
)

pytestmark = pytest.mark.slow
crash = runner_tests.crash  # the fixture that makes a function crash in a forked worker


def flights_rows(db_url: str, first: date, last: date) -> int:
    """The flights of first..last, straight from the source database."""
    query = "SELECT COUNT(*) FROM flights WHERE flight_date BETWEEN ? AND ?"
    return sqlite_count(db_url, query, first.isoformat(), last.isoformat())


# --- two use cases, one graph, one notification ------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_a_run_over_two_use_cases_publishes_both_and_notifies_once_with_a_section_each(
    make_stage: Callable[..., Settings], demo_db: str, meters_db: str, workers: int
) -> None:
    # Given an empty lake and a stage enabling flights and the minimal use case
    settings = make_stage()
    parts = partitions_between(FIRST, LAST, "day")

    # When the pipeline runs for three days (every enabled use case: none named)
    report = run_pipeline(settings, RunOptions(FIRST, LAST, workers=workers))

    # Then every task succeeded and the lake holds each use case's days under its own name
    assert report.succeeded, report.body()
    assert (report.failures, report.not_run) == ([], [])
    assert clean_keys(settings, "flights", "flights") == keys(parts)
    assert clean_keys(settings, "meters", "readings") == keys(parts)
    # 3 days x (2 extractions + 1 clean) for flights, 3 x (1 + 1) for the minimal use case
    assert len(records(settings, report.run_id, "done")) == 3 * 3 + 3 * 2
    # And exactly one notification has a section per use case, in the configured order
    [note] = notifications(settings)
    assert note["run_id"] == report.run_id and note["succeeded"] is True
    flights, meters = note["sections"]
    flights_in = flights_rows(demo_db, FIRST, LAST)
    assert flights["usecase"] == "flights"
    assert (flights["partitions"], flights["complete"]) == (3, 3)
    assert flights["rows"]["raw flights"] == flights_in
    assert flights["rows"]["raw weather"] == STATIONS * 24 * 3
    assert flights["rows"]["clean"] + flights["quarantined"] == flights_in
    readings_in = readings_rows(meters_db, FIRST, LAST)
    assert meters["usecase"] == "meters"
    assert meters["title"] == "Meter overload (test-only use case)"
    assert meters["rows"] == {"raw readings": readings_in, "clean": METERS * 24 * 3}
    assert meters["quarantined"] == readings_in - METERS * 24 * 3 == 1  # the row without a load
    assert meters["quarantined_by_source"] == {"readings": 1}
    assert sum(flights["quarantined_by_source"].values()) == flights["quarantined"]
    assert set(flights["quarantined_by_source"]) == {"flights", "weather"}
    assert "succeeded: 6 partitions of flights, meters, 2013-01-01..2013-01-03" in note["subject"]
    body = report.body()
    assert body.index("== flights") < body.index("== meters: Meter overload") < body.index("Logs:")


def test_each_use_case_runs_over_its_own_range_in_one_graph_with_one_notification(
    make_stage: Callable[..., Settings],
) -> None:
    # Given flights over two days and the minimal use case over a third, later day
    settings = make_stage()
    ranges = {"flights": (FIRST, date(2013, 1, 2)), "meters": (LAST, LAST)}

    # When one run covers both
    report = run_pipeline(settings, RunOptions(until="clean", workers=2, ranges=ranges))

    # Then each use case published exactly its own days
    assert report.succeeded, report.body()
    assert clean_keys(settings, "flights", "flights") == ["date=2013-01-01", "date=2013-01-02"]
    assert clean_keys(settings, "meters", "readings") == ["date=2013-01-03"]
    # And the one notification gives each section its own dates and partition count
    [note] = notifications(settings)
    flights, meters = note["sections"]
    assert (flights["date_range"], flights["partitions"]) == ("2013-01-01..2013-01-02", 2)
    assert (meters["date_range"], meters["partitions"]) == ("2013-01-03..2013-01-03", 1)
    assert note["date_range"] == "flights 2013-01-01..2013-01-02, meters 2013-01-03..2013-01-03"
    body = report.body()
    assert "Dates:       2013-01-01..2013-01-02\nPartitions:  2 of 2 clean" in body
    assert "Dates:       2013-01-03..2013-01-03\nPartitions:  1 of 1 clean" in body


@pytest.fixture(scope="module")
def bikeshare_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The bike-share demo source, built once from the vendored data."""
    from headwater.core.config import SourceConfig
    from headwater.core.usecase import get_usecase

    url = f"sqlite:///{tmp_path_factory.mktemp('bikeshare')}/bikeshare.sqlite"
    source = SourceConfig(kind="sql", url=url, table="rentals", date_column="dteday")
    get_usecase("bikeshare").build_demo_data({"rentals": source}, True)
    return url


def test_the_shipped_use_cases_run_together_with_their_embedded_servers(
    make_stage: Callable[..., Settings], bikeshare_db: str
) -> None:
    # Given flights and bike share over days at the turn of 2013 (bike-share data ends with
    # 2012, flights data starts in 2013), bike share's weather API started by the run itself
    port = closed_port()
    prefix = "usecase__bikeshare__sources__"
    settings = make_stage(
        usecases=("flights", "bikeshare"),
        **{
            f"{prefix}rentals__kind": "sql",
            f"{prefix}rentals__url": bikeshare_db,
            f"{prefix}rentals__table": "rentals",
            f"{prefix}rentals__date_column": "dteday",
            f"{prefix}weather__kind": "json_pages",
            f"{prefix}weather__items_field": "observations",
            f"{prefix}weather__base_url": f"http://127.0.0.1:{port}/v1/observations",
            f"{prefix}weather__embedded_server": "true",
            f"{prefix}weather__rate_limit_per_second": "200",
        },
    )
    first, last = date(2012, 12, 31), date(2013, 1, 1)

    # When one run covers both
    report = run_pipeline(settings, RunOptions(first, last, workers=2))

    # Then each use case published both days, empty where it has no data, in one notification
    assert report.succeeded, report.body()
    assert report.usecases == ["flights", "bikeshare"]
    days = ["date=2012-12-31", "date=2013-01-01"]
    assert clean_keys(settings, "flights", "flights") == days
    assert clean_keys(settings, "bikeshare", "rentals") == days
    lake = lake_for(settings)
    rows = {
        (usecase, key): lake.manifest(layout.CLEAN, layout.dataset(usecase, dataset), key).rows
        for usecase, dataset in (("flights", "flights"), ("bikeshare", "rentals"))
        for key in days
    }
    assert rows[("flights", days[0])] == 0 < rows[("flights", days[1])]
    assert rows[("bikeshare", days[1])] == 0 < rows[("bikeshare", days[0])] <= 24
    assert report.section("bikeshare").rows["raw weather"] > 0
    [note] = notifications(settings)
    assert [s["usecase"] for s in note["sections"]] == ["flights", "bikeshare"]


# --- failures ----------------------------------------------------------------------------------


def test_a_failure_in_one_use_case_leaves_the_other_done_and_is_reported_once(
    make_stage: Callable[..., Settings], crash: Callable[[str | None], None]
) -> None:
    # Given a run in which cleaning flights on 2013-01-02 crashes
    settings = make_stage()
    crash("clean:flights:2013-01-02")
    first = run_pipeline(settings, RunOptions(FIRST, LAST, workers=2))

    # Then the run failed naming that task; the minimal use case is complete regardless
    assert not first.succeeded
    failed_task = CleanPartition(usecase="flights", partition="2013-01-02")
    [failure] = first.failures
    assert failure.task == "CleanPartition flights 2013-01-02"
    assert "RuntimeError: simulated crash cleaning flights 2013-01-02" in failure.error
    assert clean_keys(settings, "meters", "readings") == keys(
        partitions_between(FIRST, LAST, "day")
    )
    assert clean_keys(settings, "flights", "flights") == ["date=2013-01-01", "date=2013-01-03"]
    # (named as people read them: family, then the significant parameters)
    assert first.not_run == [
        "Backfill flights 2013-01-01 2013-01-03 clean",
        "RunAll flights,meters clean",
    ]
    [note] = notifications(settings)
    assert (note["succeeded"], note["failures"]) == (
        False,
        [{"task": failure.task, "error": failure.error}],
    )
    assert "FAILED: 1 task(s) failed, flights, meters" in note["subject"]

    # When the cause is gone and the same dates run again
    crash(None)
    second = run_pipeline(settings, RunOptions(FIRST, LAST, workers=2))

    # Then only what had not completed runs
    assert second.succeeded, second.body()
    assert records(settings, second.run_id, "done") == {failed_task.task_id}
    assert [n["run_id"] for n in notifications(settings)] == sorted([first.run_id, second.run_id])


def test_an_unreachable_http_source_fails_only_its_extractions(
    make_stage: Callable[..., Settings],
) -> None:
    # Given a weather API that refuses connections, and no retries
    port = closed_port()
    settings = make_stage(
        usecase__flights__sources__weather__base_url=f"http://127.0.0.1:{port}/v1/archive",
        usecase__flights__sources__weather__max_retries=0,
    )

    # When a day runs
    report = run_pipeline(settings, RunOptions(FIRST, FIRST, workers=2))

    # Then the report names the weather extraction and the HTTP error
    assert not report.succeeded
    assert [f.task for f in report.failures] == ["ExtractPartition flights weather 2013-01-01"]
    assert f"GET http://127.0.0.1:{port}/v1/archive" in report.failures[0].error
    # ... while the flights were still extracted and the other use case finished
    assert clean_keys(settings, "flights", "flights") == []
    assert clean_keys(settings, "meters", "readings") == ["date=2013-01-01"]
    assert report.section("meters").complete == 1


def test_embedded_services_come_from_the_use_cases_only_during_the_run(
    make_stage: Callable[..., Settings],
) -> None:
    # Given the flights weather source asking for its embedded server
    settings = make_stage(
        usecase__flights__sources__weather__base_url=f"http://127.0.0.1:{closed_port()}/v1/archive",
        usecase__flights__sources__weather__embedded_server="true",
    )

    with embedded_services(settings, ["flights", "meters"]) as urls:
        [(variable, served)] = urls.items()
        url = served.removesuffix("/v1/archive")
        assert requests.get(f"{url}/health", timeout=5).json() == {"status": "ok"}
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/health", timeout=5)
    # and a use case whose sources ask for none starts none (meters would raise if asked)
    with embedded_services(settings, ["meters"]):
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{url}/health", timeout=5)


def test_an_embedded_server_whose_port_is_taken_binds_a_free_one_for_the_extraction(
    make_stage: Callable[..., Settings],
) -> None:
    # Given the configured port of the flights weather server already taken (another run)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = make_stage(
            usecase__flights__sources__weather__base_url=f"http://127.0.0.1:{port}/v1/archive",
            usecase__flights__sources__weather__embedded_server="true",
        )
        variable = "HEADWATER_USECASE__FLIGHTS__SOURCES__WEATHER__BASE_URL"
        configured = os.environ[variable]

        # When the run starts its servers (before: OSError: [Errno 98] Address already in use)
        with embedded_services(settings, ["flights"]) as urls:
            # Then the server listens on another port, the one the extraction is handed
            served = urls[variable]
            assert os.environ[variable] == served != configured
            assert served.endswith("/v1/archive") and f":{port}/" not in served
            health = served.removesuffix("/v1/archive") + "/health"
            assert requests.get(health, timeout=5).json() == {"status": "ok"}
            assert load_settings().source("flights", "weather").base_url == served  # type: ignore[union-attr]
        # and the configuration is the stage's again after the run
        assert os.environ[variable] == configured

        # When a whole run goes through that server
        report = run_pipeline(settings, RunOptions(FIRST, FIRST, workers=1))

        # Then it succeeds with the weather extracted
        assert report.succeeded, report.body()
        assert report.section("flights").rows["raw weather"] > 0


def test_an_embedded_server_checks_its_sources_credential_generated_for_the_run(
    make_stage: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the flights weather source sending a token from a variable nobody exported
    monkeypatch.delenv("HEADWATER_TEST_WEATHER_TOKEN", raising=False)
    settings = make_stage(
        usecase__flights__sources__weather__base_url=f"http://127.0.0.1:{closed_port()}/v1/archive",
        usecase__flights__sources__weather__embedded_server="true",
        usecase__flights__sources__weather__auth__header="X-Weather-Token",
        usecase__flights__sources__weather__auth__value="env:HEADWATER_TEST_WEATHER_TOKEN",
    )

    # When the run starts its servers (before: the extraction failed on the unset variable)
    with embedded_services(settings, ["flights"]) as overrides:
        # Then the run exports a generated token, and the server asks for exactly that one
        token = os.environ["HEADWATER_TEST_WEATHER_TOKEN"]
        assert overrides["HEADWATER_TEST_WEATHER_TOKEN"] == token
        url = overrides["HEADWATER_USECASE__FLIGHTS__SOURCES__WEATHER__BASE_URL"]
        query = {"latitude": "40.64", "longitude": "-73.78", "start_date": "2013-01-01",
                 "end_date": "2013-01-01", "hourly": "temperature_2m"}  # fmt: skip
        assert requests.get(url, params=query, timeout=5).status_code == 401
        sent = requests.get(url, params=query, headers={"X-Weather-Token": token}, timeout=5)
        assert sent.status_code == 200, sent.text
    # and the variable is gone after the run
    assert "HEADWATER_TEST_WEATHER_TOKEN" not in os.environ
