"""A stage enabling only the test-only use case (tests/usecases/minimal): the functions' tests
run on it, so any use case's events take the same path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from headwater.core.config import Settings, load_settings
from tests.conftest import MINIMAL_USECASE_FILE, MINIMAL_USECASE_MODULE

USECASE, SOURCE = "meters", "readings"
#: Where the test-only use case's module lives (a fresh interpreter puts it on its path).
MINIMAL_USECASE_DIR = MINIMAL_USECASE_FILE.parent


@pytest.fixture
def meters_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, meters_module: Any, meters_db: str
) -> Settings:
    """A ``test`` stage enabling only the test-only use case, on its demo source."""
    config = tmp_path / "config"
    config.mkdir()
    (config / "test.toml").write_text(
        f"""
stage = "test"
usecases = ["{USECASE}"]
[lake]
uri = "file://{tmp_path}/lake"
[partitioning]
grain = "day"
[executor]
kind = "inprocess"
[usecase.{USECASE}]
module = "{MINIMAL_USECASE_MODULE}"
[usecase.{USECASE}.sources.{SOURCE}]
kind = "sql"
url = "{meters_db}"
table = "readings"
date_column = "day"
""",
        encoding="utf-8",
    )
    monkeypatch.setenv("HEADWATER_CONFIG_DIR", str(config))
    monkeypatch.setenv("HEADWATER_STAGE", "test")
    return load_settings()
