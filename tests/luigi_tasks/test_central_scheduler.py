"""The pipeline scheduled by a central luigid (as on the scheduler host), not the local one."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pytest
import requests

from headwater.core import layout
from headwater.core.config import Settings
from headwater.data.pipeline import lake_for, usecase_of
from luigi_tasks.runner import RunOptions, run_pipeline


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def luigid(tmp_path: Path) -> Iterator[str]:
    """A real central scheduler on loopback, stopped after the test."""
    port = _free_port()
    (tmp_path / "luigid").mkdir()
    command = [
        str(Path(sys.executable).with_name("luigid")),
        "--address",
        "127.0.0.1",
        "--port",
        str(port),
        "--logdir",
        str(tmp_path / "luigid"),
        "--state-path",
        str(tmp_path / "luigid-state.pickle"),
    ]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{url}/api/task_list", timeout=1)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail("luigid did not start")
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_run_through_a_central_scheduler_records_both_use_cases_tasks_there(
    make_stage: Callable[..., Settings], luigid: str
) -> None:
    # Given the test stage (two use cases) and a central luigid
    settings = make_stage()
    options = RunOptions(
        date(2013, 1, 1),
        date(2013, 1, 2),
        until="clean",
        workers=2,
        scheduler_url=luigid,
        run_id="central-run",
    )
    # When the pipeline runs against it
    report = run_pipeline(settings, options)
    # Then it succeeds, the lake holds both days of each, and the scheduler knows the tasks
    assert report.succeeded, report.body()
    lake = lake_for(settings)
    assert len(settings.usecases) == 2
    for usecase in settings.usecases:
        dataset = usecase_of(settings, usecase).clean_dataset
        assert lake.partitions(layout.CLEAN, layout.dataset(usecase, dataset)) == [
            "date=2013-01-01",
            "date=2013-01-02",
        ]
    done = requests.get(
        f"{luigid}/api/task_list", params={"data": '{"status": "DONE"}'}, timeout=5
    ).json()["response"]
    families = {task["name"] for task in done.values()}
    assert {"ExtractPartition", "CleanPartition", "Backfill", "RunAll"} <= families
    cleans = [t for t in done.values() if t["name"] == "CleanPartition"]
    assert sorted(t["params"]["usecase"] for t in cleans) == sorted(settings.usecases * 2)
