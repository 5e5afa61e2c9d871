"""The training tasks with the flights use case beside the test-only one: a margin of each use
case's own, RunAll over both, the reference snapshot (moved from
tests/luigi_tasks/test_training_tasks.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from headwater.core import layout
from headwater.core.config import Settings
from headwater.data.lake import MANIFEST
from headwater.data.pipeline import lake_for
from luigi_tasks.pipeline import Backfill
from luigi_tasks.training import (
    ExtractSnapshot,
    PromoteModel,
    RunAll,
    TrainModel,
)
from tests.luigi_tasks.test_training_tasks import END, START, MakeStage, gate, registry_of, trained


@pytest.fixture
def settings(make_stage: MakeStage) -> Settings:
    """Flights and the test-only use case, month grain."""
    return make_stage(grain="month", usecase__meters__min_training_rows="1")


@pytest.mark.parametrize(
    ("candidate_auc", "promoted"),
    [(0.725, False), (0.730, False), (0.7301, True), (0.74, True)],
    ids=["gain below margin", "gain equal to margin", "gain just above", "clear gain"],
)
def test_the_margin_is_the_use_cases_own(
    make_stage: MakeStage, tmp_path: Path, candidate_auc: float, promoted: bool
) -> None:
    # Given a margin of 0.01 for the minimal use case only
    settings = make_stage(grain="month", usecase__meters__gate__margin="0.01")
    for usecase in ("flights", "meters"):
        production = trained(settings, "20130312T000000Z-prod", 0.72, usecase=usecase)
        registry_of(settings, usecase).promote(production, "seeded")
        trained(
            settings, "20130313T000000Z-cand", candidate_auc, (production, 0.72), usecase=usecase
        )

    # When each use case's gate runs on the same numbers
    for usecase in ("flights", "meters"):
        gate("20130313T000000Z-cand", tmp_path, usecase=usecase)

    # Then the minimal use case applied its margin, flights its own (none: any gain promotes)
    meters = registry_of(settings, "meters")
    assert (meters.production().version == "20130313T000000Z-cand") is promoted
    assert "margin 0.01" in meters.read_json("20130313T000000Z-cand", layout.DECISION)["reason"]
    assert registry_of(settings, "flights").production().version == (
        "20130313T000000Z-cand" if candidate_auc > 0.72 else "20130312T000000Z-prod"
    )


def test_run_all_threads_the_exploratory_and_override_options_to_each_gate(
    settings: Settings,
) -> None:
    wrapper = RunAll(
        usecases=("flights", "meters"),
        start=START,
        end=END,
        run_id="r1",
        no_promote=True,
        allow_shorter_window=True,
    )

    gates = wrapper.requires()

    assert [(g.no_promote, g.allow_shorter_window) for g in gates] == [(True, True)] * 2
    assert [
        (g.no_promote, g.allow_shorter_window)
        for g in RunAll(usecases=("flights",), start=START, end=END, run_id="r1").requires()
    ] == [(False, False)]


# --- wiring ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("usecase", "references"), [("flights", ["planes"]), ("meters", [])])
def test_train_model_requires_the_clean_range_and_the_use_cases_snapshots(
    settings: Settings, usecase: str, references: list[str]
) -> None:
    task = TrainModel(
        usecase=usecase, start=START, end=END, version="v1", run_id="r1", state_dir="/tmp/s"
    )

    backfill, *snapshots = task.requires()

    assert isinstance(backfill, Backfill)
    assert (backfill.usecase, backfill.start, backfill.end, backfill.until) == (
        usecase,
        START,
        END,
        "clean",
    )
    assert [(type(s), s.usecase, s.source, s.as_of) for s in snapshots] == [
        (ExtractSnapshot, usecase, name, END) for name in references
    ]
    assert {t.run_id for t in (backfill, *snapshots)} == {"r1"}
    assert task.output().parts == ("models", usecase, "v1", "_SUCCESS")
    assert task.resources == {"training": 1}


def test_run_all_goes_through_each_use_cases_gate(settings: Settings) -> None:
    wrapper = RunAll(usecases=("flights", "meters"), start=START, end=END, run_id="r1")

    gates = wrapper.requires()

    assert [type(g) for g in gates] == [PromoteModel, PromoteModel]
    assert [(g.usecase, g.version) for g in gates] == [("flights", "r1"), ("meters", "r1")]
    assert [g.output().parts for g in gates] == [
        ("models", "flights", "r1", layout.DECISION),
        ("models", "meters", "r1", layout.DECISION),
    ]
    assert all(isinstance(g.requires(), TrainModel) for g in gates)


def test_extract_snapshot_publishes_a_reference_table_under_its_use_case(
    settings: Settings,
) -> None:
    task = ExtractSnapshot(usecase="flights", source="planes", as_of=END, run_id="r1")
    dataset = layout.dataset("flights", "planes")
    assert task.output().parts == (layout.RAW, dataset, "snapshot=2013-03-12", MANIFEST)
    assert not task.complete()

    task.run()

    assert task.complete()
    table, manifest = lake_for(settings).read(layout.RAW, dataset, "snapshot=2013-03-12")
    assert manifest.rows == table.num_rows > 3000


@pytest.mark.parametrize(("rerun", "redone"), [("extract", True), ("clean", False), ("", False)])
def test_a_rerun_of_extract_replaces_the_snapshot_too(
    settings: Settings, rerun: str, redone: bool
) -> None:
    # Given the snapshot of the range's end, published by an earlier run
    ExtractSnapshot(usecase="flights", source="planes", as_of=END, run_id="r1").run()

    # When run r2 redoes the range from ``rerun`` on
    task = ExtractSnapshot(usecase="flights", source="planes", as_of=END, run_id="r2", rerun=rerun)

    # Then the snapshot is extracted again only when extraction is redone, and replaced whole
    assert task.complete() is not redone
    if redone:
        task.run()
        assert task.complete()
        manifest = lake_for(settings).manifest(
            layout.RAW, layout.dataset("flights", "planes"), layout.snapshot_key(END)
        )
        assert manifest is not None and manifest.run_id == "r2"
