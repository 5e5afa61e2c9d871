"""Leftovers of killed trainings: found, planned by age, deleted; never a complete version."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from headwater.core.layout import METRICS, model_parts
from headwater.data.lake import open_lake
from headwater.registry.prune import Leftover, delete_version, incomplete_versions, prune_plan
from headwater.registry.registry import Registry

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


def test_only_versions_without_success_are_leftovers_and_complete_ones_are_never_deleted(
    tmp_path: Path,
) -> None:
    # Given a complete version in production and a killed one holding only spark/
    registry = Registry(open_lake(f"file://{tmp_path}/lake"), "meters")
    registry.write_json("v1", METRICS, {"holdout": {"auc_roc": 0.7}})
    registry.mark_complete("v1")
    registry.promote("v1", "seeded")
    registry.lake.write_bytes(b"x", *model_parts("meters", "v2", "spark", "part-0"))

    # When the leftovers are found
    [leftover] = incomplete_versions(registry)

    # Then only the killed one is, with its file and a time; a complete one is refused
    assert (leftover.version, leftover.files) == ("v2", 1)
    assert leftover.modified is not None
    with pytest.raises(ValueError, match="v1 of model meters is not a leftover"):
        delete_version(registry, Leftover("v1", 0, None))
    delete_version(registry, leftover)
    assert incomplete_versions(registry) == [] and registry.is_complete("v1")


def test_the_plan_deletes_only_what_is_older_than_the_grace_period() -> None:
    old = Leftover("a", 1, NOW - timedelta(hours=25))
    young = Leftover("b", 1, NOW - timedelta(hours=1))
    empty = Leftover("c", 0, None)

    assert prune_plan([old, young, empty], timedelta(hours=24), NOW) == ([old, empty], [young])
