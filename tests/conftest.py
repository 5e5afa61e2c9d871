"""Shared fixtures: fake AWS credentials, a moto server on loopback, the embedded sources,
and a stage configuration pointing everything at a temporary directory."""

from __future__ import annotations

import copy
import functools
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from headwater.core.config import Settings, load_settings
from headwater.data.executors import LocalContext

REGION = "us-east-1"
EVENTS = Path(__file__).parent / "events"

# -- each use case's own fixtures: plugins of the whole suite, found rather than named ---------
#: A use case's test folder may hold a ``fixtures.py`` (its demo sources, its
#: ``<name>_stage_table``, its ``TEST_MODEL`` directory and the fixtures built on them); each
#: is loaded here, so a new use case brings its fixtures with its folder and edits nothing here.
USECASE_FIXTURES = {
    path.parent.name: f"tests.headwater.usecases.{path.parent.name}.fixtures"
    for path in sorted((Path(__file__).parent / "headwater" / "usecases").glob("*/fixtures.py"))
}
pytest_plugins = sorted(USECASE_FIXTURES.values())


# -- markers: `-m "not spark and not slow"` is the fast lane (make test-fast) ------------------
#: Fixtures that start or use the session's SparkSession. ``item.fixturenames`` is the whole
#: closure, so every fixture built on these (``trained_model``, a module's ``spark_models``,
#: the contract suite's ``published``) marks its tests too.
SPARK_FIXTURES = frozenset({"spark", "trained_model"})
#: End-to-end fixtures, by name and the tests they serve (a name like ``server`` is also a
#: cheap fixture elsewhere): a subprocess server, a venv build, or a whole pipeline run.
SLOW_FIXTURES = {
    "server": "tests/api/test_serve.py",  # `headwater serve` (gunicorn) in a subprocess
    "module_server": "tests/api/",  # the same, shared by a module's tests
    "api_package": "tests/api/test_zappa.py",  # the Lambda package and its venv, built
    "data_python": "tests/functions/test_lambda_runtime.py",  # a venv of the image's Python
    "luigid": "tests/luigi_tasks/test_central_scheduler.py",  # the central scheduler
    "postgres_url": "tests/",  # initdb and pg_ctl
    "published": "tests/usecases/test_contract.py",  # extract ... promote, per use case
}


#: The option naming the use cases the conformance suite runs (tests/usecases/test_contract.py's
#: ``published`` parameter); unset, it runs them all.
CONFORMANCE_OPTION = "--conformance-usecase"


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--conformance-usecase NAME`` (repeatable): run the conformance suite on these only
    (test_any_use_case_joins.py: its subprocess needs the new use case, not the others again)."""
    parser.addoption(
        CONFORMANCE_OPTION,
        action="append",
        default=[],
        metavar="NAME",
        help="run the conformance suite's per-use-case tests for this use case only",
    )


def deselect_other_conformance_usecases(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the conformance tests of the use cases ``--conformance-usecase`` leaves out."""
    only = config.getoption(CONFORMANCE_OPTION)
    if not only:
        return
    kept, left_out = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        usecase = callspec.params.get("published") if callspec is not None else None
        (left_out if usecase is not None and usecase not in only else kept).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept


@pytest.hookimpl(tryfirst=True)  # before -m deselects: it must see these markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``spark`` the tests using Spark and ``slow`` the end-to-end ones, by fixture;
    leave out the use cases ``--conformance-usecase`` does not name.

    Session fixtures start their servers on free ports (port 0), so xdist workers never
    collide; each worker has its own moto server, weather servers and demo databases.
    """
    deselect_other_conformance_usecases(config, items)
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
def meters_stage_table(meters_db: str) -> str:
    """The ``[usecase.meters]`` table of a stage file, on the session's demo source."""
    return f"""
[usecase.meters]
module = "{MINIMAL_USECASE_MODULE}"
[usecase.meters.sources.readings]
kind = "sql"
url = "{meters_db}"
table = "readings"
date_column = "day"
"""


@pytest.fixture(scope="session")
def usecase_tables(request: pytest.FixtureRequest) -> Callable[[Sequence[str]], str]:
    """The ``[usecase.<name>]`` tables of the named use cases, on the session's demo sources.

    Each is its use case's ``<name>_stage_table`` fixture; only the named ones' sources start.
    """

    def tables(names: Sequence[str]) -> str:
        return "".join(str(request.getfixturevalue(f"{name}_stage_table")) for name in names)

    return tables


@pytest.fixture
def stage_writer(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    usecase_tables: Callable[[Sequence[str]], str],
) -> Callable[..., Settings]:
    """Write a ``test`` stage under ``tmp_path`` and make it current.

    ``stage_writer(grain, enabled, configured, overrides)``: ``configured`` use cases get their
    ``<name>_stage_table``; ``overrides`` become ``HEADWATER_<KEY>`` variables.
    """

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
driver_java_options = "{TEST_JVM_OPTIONS}"
{usecase_tables(configured)}"""
        (config / "test.toml").write_text(text, encoding="utf-8")
        monkeypatch.setenv("HEADWATER_CONFIG_DIR", str(config))
        monkeypatch.setenv("HEADWATER_STAGE", "test")
        for key, value in overrides.items():
            monkeypatch.setenv(f"HEADWATER_{key.upper()}", str(value))
        return load_settings()

    return write


@pytest.fixture
def make_minimal_stage(stage_writer: Callable[..., Settings]) -> Callable[..., Settings]:
    """Write a ``test`` stage with only the test-only use case (meters); make it current.

    ``overrides`` become ``HEADWATER_<KEY>`` variables, e.g. ``usecase__meters__gate__margin=0.01``.
    """

    def make(grain: str = "day", **overrides: Any) -> Settings:
        return stage_writer(grain, ["meters"], ["meters"], overrides)

    return make


@pytest.fixture
def make_every_stage(stage_writer: Callable[..., Settings]) -> Callable[..., Settings]:
    """Write a ``test`` stage enabling every use case that has a stage table (each use case
    folder's fixtures.py, and the test-only one) on its demo sources; make it current."""

    def make(grain: str = "day", **overrides: Any) -> Settings:
        names = [*USECASE_FIXTURES, "meters"]
        return stage_writer(grain, names, names, overrides)

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
#: The JVM options of every Spark the suite starts (this process's session and the stages'
#: spark-submit). A test's JVM lives a minute on a few thousand rows: C2 compilation never pays
#: back there, so only C1 compiles, and one serial collector thread leaves both cores to the
#: job. Measured on tests/headwater/model/test_spark_training.py: 61.7 s -> 31-36 s of CPU.
TEST_JVM_OPTIONS = "-XX:+UseSerialGC -XX:TieredStopAtLevel=1"

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
            .config("spark.driver.extraJavaOptions", TEST_JVM_OPTIONS)
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


# --- the minimal test-only use case (tests/usecases/minimal) -----------------------------------
MINIMAL_USECASE_FILE = Path(__file__).parent / "usecases" / "minimal" / "meters_usecase.py"
MINIMAL_USECASE_MODULE = "meters_usecase"  # the file's own name: Spark ships it by file


def minimal_usecase() -> Any:
    """The minimal use case's module (tests/usecases/minimal), importable as
    MINIMAL_USECASE_MODULE once loaded (by a test module at import, or the fixture below)."""
    import importlib.util
    import sys

    if MINIMAL_USECASE_MODULE in sys.modules:
        return sys.modules[MINIMAL_USECASE_MODULE]
    spec = importlib.util.spec_from_file_location(MINIMAL_USECASE_MODULE, MINIMAL_USECASE_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[MINIMAL_USECASE_MODULE] = module  # forked Luigi workers inherit it
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def meters_module() -> Any:
    """The minimal use case (tests/usecases/minimal), importable as MINIMAL_USECASE_MODULE."""
    return minimal_usecase()


@pytest.fixture(scope="session")
def meters_db(meters_module: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The minimal use case's demo source (SQLite), built once."""
    from headwater.core.config import SourceConfig

    url = f"sqlite:///{tmp_path_factory.mktemp('meters')}/meters.sqlite"
    source = SourceConfig(kind="sql", url=url, table="readings", date_column="day")
    meters_module.USECASE.build_demo_data({"readings": source}, True)
    return url


# -- model versions: each use case's test model, published with the real registry -------------
# A use case's fixtures.py names its test model's directory (TEST_MODEL: a real or hand-made
# version and the generate.py that rebuilds it). Shared by the serving, registry and API tests.
FILES = ("export.json", "lookups.json", "metrics.json", "lineage.json")


def _default_model() -> str:
    """The use case whose fixtures.py defines ``publish`` (its test model by default)."""
    import importlib

    [name] = [
        n for n, m in USECASE_FIXTURES.items() if hasattr(importlib.import_module(m), "publish")
    ]
    return name


def __getattr__(name: str) -> Any:
    """``MODEL``: the use case of the test model ``publish`` writes by default (found, not
    named). Computed on first use: importing the fixtures modules here, before pytest loads
    them as plugins, would leave their asserts unrewritten."""
    if name == "MODEL":
        return _default_model()
    raise AttributeError(name)


def model_directories() -> dict[str, Path]:
    """Each use case's test model directory, from its fixtures.py."""
    import importlib

    found = {}
    for name, module in USECASE_FIXTURES.items():
        directory = getattr(importlib.import_module(module), "TEST_MODEL", None)
        if directory is not None:
            found[name] = Path(directory)
    return found


@pytest.fixture(scope="session")
def test_models() -> dict[str, dict[str, Any]]:
    """Every use case's test model: its documents by file name (do not mutate: copy first)."""
    return {
        name: {file: json.loads((directory / file).read_text()) for file in FILES}
        for name, directory in model_directories().items()
    }


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


def publish_test_model(
    test_models: dict[str, dict[str, Any]],
    uri: str,
    version: str | None = None,
    *,
    usecase: str,
    shift: float = 0.0,
    promote: bool = True,
    complete: bool = True,
    skip: tuple[str, ...] = (),
    replace: dict[str, bytes] | None = None,
    region: str | None = None,
    endpoint_url: str | None = None,
) -> str:
    """Write a use case's test model with the real registry (``_SUCCESS`` last); promote it.

    ``skip`` leaves files out, ``replace`` maps file names to raw bytes; the version's name.
    """
    from headwater.core.layout import model_parts
    from headwater.data.lake import open_lake
    from headwater.registry.registry import Registry

    originals = test_models[usecase]
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


def publish_every_test_model(test_models: dict[str, dict[str, Any]], uri: str) -> str:
    """``uri`` made a lake whose production versions are every use case's test model."""
    for usecase in test_models:
        publish_test_model(test_models, uri, usecase=usecase)
    return uri


@pytest.fixture
def publish_model(test_models: dict[str, dict[str, Any]]) -> Publish:
    """Write a use case's test model with the real registry (``_SUCCESS`` last); promote it.

    ``publish_model(lake_uri, version=None, *, usecase, shift=0.0, promote=True,
    complete=True, skip=(), replace={})``: ``skip`` leaves files out, ``replace`` maps file
    names to raw bytes. A use case's fixtures may wrap it with itself as the default.
    """
    return functools.partial(publish_test_model, test_models)


@pytest.fixture
def model_lake(lake_uri: str, test_models: dict[str, Any]) -> str:
    """A lake whose production versions are the test models of every use case that has one."""
    return publish_every_test_model(test_models, lake_uri)


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
