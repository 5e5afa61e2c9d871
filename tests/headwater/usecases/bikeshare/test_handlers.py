"""The Lambda handlers on the bike share use case, enabled beside another one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import pyarrow.parquet as pq

from functions import clean, extract
from headwater.core.config import Settings
from headwater.core.layout import dataset
from headwater.data.executors import LocalContext

USECASE, SOURCES = "bikeshare", ("rentals", "weather")


def _local_file(uri: str) -> Path:
    parsed = urlparse(uri)
    assert parsed.scheme == "file"
    return Path(parsed.path)


def test_the_handlers_serve_the_use_case_the_event_names(
    make_settings: Callable[..., Settings], lambda_context: LocalContext
) -> None:
    # Given a stage with both shipped use cases enabled, and events naming this one
    stage = make_settings(bikeshare=True)
    assert len(stage.usecases) > 1
    day, base = "2011-02-02", {"run_id": "sample-run", "usecase": USECASE}

    # When its two sources are extracted and the day cleaned through the handlers
    extracted = {
        source: extract.lambda_handler({**base, "source": source, "partition": day}, lambda_context)
        for source in SOURCES
    }
    result = clean.lambda_handler({**base, "partition": day}, lambda_context)

    # Then everything landed under that use case, and nothing under another one
    lake = _local_file(stage.lake.uri)
    for source, answer in extracted.items():
        assert answer["dataset"] == dataset(USECASE, source)
        assert _local_file(answer["uri"]).is_relative_to(lake / "raw" / USECASE / source)
        assert answer["rows"] > 0
    assert _local_file(result["uri"]).is_relative_to(lake / "clean" / USECASE)
    quarantine = lake / "quarantine" / USECASE
    quarantined = {
        source: pq.read_metadata(file).num_rows
        for source in SOURCES
        for file in (quarantine / source / f"date={day}").glob("*.parquet")
    }
    assert set(quarantined) == set(SOURCES)
    assert result["quarantined"] == sum(quarantined.values())
    assert result["reconciliation"]["rentals"]["in"] == extracted["rentals"]["rows"]
    assert [p.name for p in (lake / "raw").iterdir()] == [USECASE]
