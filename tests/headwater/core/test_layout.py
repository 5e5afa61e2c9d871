"""The lake's one definition of paths: zones, datasets, model parts and snapshot keys."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from headwater.core import layout
from headwater.core.partitions import partition_of_key

VERSION = "20130312T000000Z-run"


def test_datasets_are_namespaced_by_use_case_below_a_zone() -> None:
    assert layout.dataset("meters", "weather") == "meters/weather"
    # the same source name in two use cases is two datasets
    assert layout.dataset("meters", "weather") != layout.dataset("other", "weather")
    assert len({layout.RAW, layout.CLEAN, layout.QUARANTINE, layout.MODELS}) == 4


def test_model_parts_are_below_the_models_zone_and_the_use_cases_folder() -> None:
    assert layout.model_parts("meters") == ("models", "meters")
    assert layout.model_parts("meters", layout.POINTER) == ("models", "meters", "PRODUCTION.json")
    assert layout.model_parts("meters", VERSION, layout.EXPORT) == (
        "models",
        "meters",
        VERSION,
        "export.json",
    )
    assert layout.model_parts("meters", VERSION, layout.SPARK, layout.CLASSIFIER)[-2:] == (
        "spark",
        "classifier",
    )


def test_the_files_of_a_version_are_distinct_single_path_parts() -> None:
    names = [
        layout.POINTER,
        layout.SUCCESS,
        layout.EXPORT,
        layout.LOOKUPS,
        layout.METRICS,
        layout.LINEAGE,
        layout.PROFILE,
        layout.DECISION,
        layout.REPORT,
        layout.SPARK,
    ]

    assert len(set(names)) == len(names)
    assert not any("/" in name for name in names)
    # what serving verifies is what it reads, and never the files written after promotion
    assert set(layout.SERVING_FILES) == {layout.EXPORT, layout.LOOKUPS, layout.PROFILE}
    # a version trained before profiles existed still serves: only the profile is optional
    assert layout.OPTIONAL_SERVING_FILES == {layout.PROFILE}
    assert not {layout.DECISION, layout.REPORT, layout.POINTER} & set(layout.SERVING_FILES)


@pytest.mark.parametrize(
    ("day", "key"),
    [
        (date(2013, 3, 12), "snapshot=2013-03-12"),
        (date(2012, 2, 29), "snapshot=2012-02-29"),
        (date(999, 1, 1), "snapshot=0999-01-01"),  # zero-padded: still sorts by date
    ],
)
def test_snapshot_keys_are_the_prefix_and_the_iso_date(day: date, key: str) -> None:
    assert layout.snapshot_key(day) == key
    assert key.startswith(layout.SNAPSHOT_PREFIX)


@given(st.dates(), st.dates())
def test_snapshot_keys_sort_as_their_dates(first: date, second: date) -> None:
    # latest_snapshot picks the newest key with max() and filters with <= on the strings
    a, b = layout.snapshot_key(first), layout.snapshot_key(second)

    assert (a < b) == (first < second) and (a == b) == (first == second)


def test_a_snapshot_key_is_never_read_as_a_date_partition() -> None:
    with pytest.raises(ValueError, match="not a date partition key"):
        partition_of_key(layout.snapshot_key(date(2013, 3, 1)))


def test_the_store_and_the_lake_put_a_version_file_at_the_same_place(tmp_path: Path) -> None:
    # Given the API's stdlib reader and the pyarrow lake the registry writes through
    from headwater.data.lake import open_lake
    from headwater.serving.store import ModelStore

    uri = f"file://{tmp_path}/lake"
    lake, store = open_lake(uri), ModelStore(uri, "meters")

    # When the lake writes the export at the layout's place
    lake.write_bytes(b"{}", *layout.model_parts("meters", VERSION, layout.EXPORT))

    # Then the store reads it there, and names it with the same URI
    assert store.read_json(VERSION, layout.EXPORT) == {}
    store_uri = store.uri(VERSION, layout.EXPORT)
    lake_uri = lake.uri_of(*layout.model_parts("meters", VERSION, layout.EXPORT))
    assert store_uri.removeprefix("file://") == lake_uri.removeprefix("file://")
