"""The bike share use case's shared fixtures: its demo sources, its stage table, its test model.

A plugin of the whole suite (tests/conftest.py loads every use case folder's ``fixtures.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

NAME = "bikeshare"
# Two winter months and the spring DST change of 2011.
BIKE_FIRST, BIKE_LAST = date(2011, 2, 1), date(2011, 3, 31)
#: A tiny hand-made version (its generate.py rebuilds it).
TEST_MODEL = Path(__file__).resolve().parent / "model"


@pytest.fixture(scope="session")
def bike_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The embedded rentals source, built once from the vendored CSV for a few months."""
    from headwater.usecases.bikeshare.data import build_demo_database

    path = tmp_path_factory.mktemp("demo") / "bikeshare.sqlite"
    return build_demo_database(path, first=BIKE_FIRST, last=BIKE_LAST).url


@pytest.fixture(scope="session")
def bike_weather_server() -> Iterator[Any]:
    """The paginated weather API of the bike share use case, on loopback."""
    from headwater.usecases.bikeshare.weather_server import WeatherServer

    with WeatherServer("127.0.0.1", 0) as server:
        yield server


@pytest.fixture(scope="session")
def bikeshare_stage_table(bike_db: str, bike_weather_server: Any) -> str:
    """The ``[usecase.bikeshare]`` table of a stage file, on the session's demo sources."""
    return f"""
[usecase.bikeshare.sources.rentals]
kind = "sql"
url = "{bike_db}"
table = "rentals"
date_column = "dteday"
chunk_rows = 500
[usecase.bikeshare.sources.weather]
kind = "json_pages"
base_url = "{bike_weather_server.url}"
items_field = "observations"
page_size = 200
rate_limit_per_second = 200
timeout_seconds = 5
max_retries = 3
"""


@pytest.fixture(scope="session")
def bike_documents(test_models: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The bike-share version's documents by file name (do not mutate: copy first)."""
    return test_models[NAME]


@pytest.fixture(scope="session")
def bike_version(bike_documents: dict[str, Any]) -> str:
    """The version of the bike-share test model."""
    return bike_documents["export.json"]["metadata"]["version"]
