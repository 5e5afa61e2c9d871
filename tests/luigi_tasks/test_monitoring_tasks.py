"""CollectPredictions: captured lines into predictions partitions, through Luigi, idempotently."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import luigi
import pytest

from headwater.core import layout
from headwater.core.config import Settings, load_settings
from headwater.data.lake import open_lake
from headwater.monitoring.collect import read_predictions
from headwater.serving.capture import CaptureRecord
from luigi_tasks.monitoring import CollectCaptured, CollectPredictions
from luigi_tasks.training import RunAll


def stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capture: bool) -> Settings:
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    (config / "test.toml").write_text(
        f"""
usecases = ["flights"]
[lake]
uri = "file://{tmp_path}/lake"
[partitioning]
grain = "day"
[api.capture]
enabled = {"true" if capture else "false"}
[usecase.flights]
""",
        encoding="utf-8",
    )
    monkeypatch.setenv("HEADWATER_CONFIG_DIR", str(config))
    monkeypatch.setenv("HEADWATER_STAGE", "test")
    return load_settings()


def line(i: int, served_at: str) -> str:
    return CaptureRecord(
        request_id=f"r{i}",
        instance=0,
        usecase="flights",
        model_version="v1",
        served_at=served_at,
        features={"carrier": "UA"},
        probability=0.2,
        decision=False,
        estimate=1.0,
        threshold=0.5,
    ).to_json()


def spool(root: Path, day: str, hour: str, name: str, lines: list[str]) -> None:
    folder = root.joinpath(*layout.capture_parts("flights", day, hour))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(x + "\n" for x in lines))


def test_collect_captured_publishes_each_captured_partition_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given capture on two (New York) days, one line delivered twice
    settings = stage(tmp_path, monkeypatch, capture=True)
    root = tmp_path / "lake"
    spool(root, "2013-03-01", "15", "a.jsonl", [line(1, "2013-03-01T15:00:00.000000+00:00")] * 2)
    spool(root, "2013-03-02", "15", "a.jsonl", [line(2, "2013-03-02T15:00:00.000000+00:00")])
    # When the wrapper runs, twice
    for run_id in ("run1", "run2"):
        task = CollectCaptured(usecase="flights", run_id=run_id, state_dir=str(tmp_path / "runs"))
        assert luigi.build([task], local_scheduler=True, workers=1)
    # Then the days with records hold them once each (a day before is collected, empty)
    lake = open_lake(settings.lake.uri)
    published = lake.partitions(layout.PREDICTIONS, "flights")
    assert published == ["date=2013-02-28", "date=2013-03-01", "date=2013-03-02"]
    assert [r.request_id for r in read_predictions(lake, "flights", "date=2013-03-01")] == ["r1"]
    assert [r.request_id for r in read_predictions(lake, "flights", "date=2013-03-02")] == ["r2"]
    # and a settled partition is not collected again (published after its day ended)
    assert CollectPredictions(usecase="flights", partition="2013-03-01").complete()


@pytest.mark.parametrize("capture", [True, False])
def test_a_full_run_collects_only_when_capture_is_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capture: bool
) -> None:
    stage(tmp_path, monkeypatch, capture=capture)
    wrapper = RunAll(usecases=("flights",), start=date(2013, 1, 1), end=date(2013, 1, 31))
    families = [t.task_family for t in wrapper.requires()]
    assert ("CollectCaptured" in families) is capture
    assert "CollectCaptured" not in [
        t.task_family
        for t in RunAll(
            usecases=("flights",), start=date(2013, 1, 1), end=date(2013, 1, 31), until="clean"
        ).requires()
    ]
