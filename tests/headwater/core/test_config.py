"""Stage configuration: file loading, override precedence, error messages, the real stage files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from headwater.core.config import (
    CONFIG_DIR_ENV,
    STAGE_ENV,
    ConfigError,
    GateConfig,
    Settings,
    SourceConfig,
    config_dir,
    env_overrides,
    load_settings,
)
from headwater.core.usecase import get_usecase
from headwater.data.sources import SourceOptionsError, UnknownSourceKind, validate_source

REPO_ROOT = Path(__file__).resolve().parents[3]
# The stage files in effect: HEADWATER_CONFIG_DIR's, else the repository's (read at collection,
# so that a stage enabling another use case is checked as the repository's would be).
STAGES = Path(os.environ.get(CONFIG_DIR_ENV) or REPO_ROOT / "config")
WORKERS_7 = {"HEADWATER_RUN__WORKERS": "7"}

STAGE_FILE = """
stage = "ignored"
usecases = ["orders"]
[lake]
uri = "file:///tmp/lake-from-file"
[partitioning]
grain = "day"
[run]
workers = 3
[usecase.orders]
timezone = "Europe/Paris"
[usecase.orders.sources.orders]
kind = "sql"
url = "sqlite:///orders.sqlite"
table = "orders"
date_column = "order_date"
[usecase.orders.sources.weather]
kind = "openmeteo"
base_url = "http://127.0.0.1:1/v1/archive"
[usecase.orders.gate]
metric = "auc_pr"
margin = 0.01
"""
SECOND_USECASE = """
[usecase.ledger.sources.entries]
kind = "sql"
url = "sqlite:///ledger.sqlite"
table = "entries"
"""


def write_stage(directory: Path, stage: str = "dev", text: str = STAGE_FILE) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stage}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def env_for(directory: Path, **variables: str) -> dict[str, str]:
    return {CONFIG_DIR_ENV: str(directory), **variables}


# --- loading ------------------------------------------------------------------------------------


def test_stage_file_values_are_loaded_and_defaults_fill_the_rest(tmp_path: Path) -> None:
    # Given a stage file that sets some keys
    write_stage(tmp_path)

    # When it is loaded
    settings = load_settings("dev", environ=env_for(tmp_path))

    # Then the file's values win over the defaults, the stage is the file's name,
    # and unset keys keep their defaults
    assert settings.stage == "dev"
    assert settings.lake.uri == "file:///tmp/lake-from-file"
    assert settings.partitioning.grain == "day"
    assert settings.run.workers == 3
    assert settings.run.api_concurrency == 2
    assert settings.executor.kind == "inprocess"
    assert settings.usecases == ("orders",)
    orders = settings.usecase_config("orders")
    assert (orders.timezone, orders.module, orders.holdout_from) == ("Europe/Paris", None, None)
    assert orders.gate == GateConfig(metric="auc_pr", margin=0.01)
    assert list(orders.sources) == ["orders", "weather"]


def test_a_source_keeps_its_kind_apart_from_the_kind_specific_keys(tmp_path: Path) -> None:
    write_stage(tmp_path)
    settings = load_settings("dev", environ=env_for(tmp_path))

    orders, weather = settings.source("orders", "orders"), settings.source("orders", "weather")

    assert (orders.kind, weather.kind) == ("sql", "openmeteo")
    assert orders.options() == {
        "url": "sqlite:///orders.sqlite",
        "table": "orders",
        "date_column": "order_date",
    }
    assert weather.options() == {"base_url": "http://127.0.0.1:1/v1/archive"}
    # the kind's own model fills its defaults when the source is used
    assert validate_source(orders).chunk_rows == 50_000


def test_a_use_case_table_without_gate_or_zone_takes_the_defaults() -> None:
    settings = Settings.model_validate({"usecases": ["orders"], "usecase": {"orders": {}}})
    orders = settings.usecase_config("orders")
    assert orders.gate == GateConfig() == GateConfig(metric="auc_roc", margin=0.002)
    # four weeks of holdout, a 95% two-sided (97.5% one-sided) interval
    assert (orders.gate.min_holdout_days, orders.gate.confidence) == (28, 0.95)
    assert (orders.timezone, orders.sources) == (None, {})


def test_no_use_case_is_enabled_by_default() -> None:
    assert (Settings().usecases, Settings().usecase) == ((), {})


def test_stage_comes_from_the_environment_when_not_given(tmp_path: Path) -> None:
    # Given two stage files and HEADWATER_STAGE naming one of them
    write_stage(tmp_path, "dev")
    write_stage(tmp_path, "qa", STAGE_FILE.replace("workers = 3", "workers = 5"))

    # When no stage is passed, then the environment's stage is loaded; an explicit one wins
    assert load_settings(environ=env_for(tmp_path, **{STAGE_ENV: "qa"})).run.workers == 5
    assert load_settings("dev", environ=env_for(tmp_path, **{STAGE_ENV: "qa"})).stage == "dev"


def test_load_settings_reads_os_environ_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the config dir, stage and an override only in the process environment
    write_stage(tmp_path, "dev")
    monkeypatch.setenv(CONFIG_DIR_ENV, str(tmp_path))
    monkeypatch.setenv(STAGE_ENV, "dev")
    monkeypatch.setenv("HEADWATER_RUN__LOG_DIR", "/var/tmp/hw-logs")

    # When settings are loaded without an explicit environment
    settings = load_settings()

    # Then all three were taken from os.environ
    assert (settings.stage, settings.run.log_dir) == ("dev", "/var/tmp/hw-logs")


@pytest.mark.parametrize(
    ("environ", "overrides", "expected"),
    [
        pytest.param({}, None, 3, id="file"),
        pytest.param(WORKERS_7, None, 7, id="env-beats-file"),
        pytest.param(WORKERS_7, {"run": {"workers": 9}}, 9, id="arg-beats-env"),
        pytest.param({}, {"run": {"workers": 9}}, 9, id="arg-beats-file"),
    ],
)
def test_override_precedence(
    tmp_path: Path, environ: dict[str, str], overrides: dict[str, Any] | None, expected: int
) -> None:
    # Given a stage file with run.workers = 3
    write_stage(tmp_path)

    # When it is loaded with environment variables and/or explicit overrides
    settings = load_settings("dev", overrides=overrides, environ=env_for(tmp_path, **environ))

    # Then the highest-precedence value wins
    assert settings.run.workers == expected


def test_overrides_merge_into_sections_rather_than_replace_them(tmp_path: Path) -> None:
    # Given a stage file with a full orders source
    write_stage(tmp_path)

    # When one key of that source is overridden from the environment and one by argument,
    # and the gate's margin from the environment
    settings = load_settings(
        "dev",
        overrides={"usecase": {"orders": {"sources": {"orders": {"table": "orders_v2"}}}}},
        environ=env_for(
            tmp_path,
            HEADWATER_USECASE__ORDERS__SOURCES__ORDERS__CHUNK_ROWS="123",
            HEADWATER_USECASE__ORDERS__GATE__MARGIN="0.05",
        ),
    )

    # Then the other keys survive, and the kind's model coerces the env string when used
    orders = validate_source(settings.source("orders", "orders"))
    assert (orders.table, orders.chunk_rows, orders.date_column) == (
        "orders_v2",
        123,
        "order_date",
    )
    assert settings.usecase_config("orders").gate == GateConfig(metric="auc_pr", margin=0.05)
    assert settings.source("orders", "weather").kind == "openmeteo"


def test_env_overrides_nests_double_underscore_names_and_ignores_the_rest() -> None:
    # Given a mix of HEADWATER_* variables and unrelated ones
    environ = {
        "HEADWATER_RUN__WORKERS": "4",
        "HEADWATER_USECASE__ORDERS__SOURCES__ORDERS__URL": "ssm:/db",
        "HEADWATER_STAGE": "prod",
        "HEADWATER_AWS_ENDPOINT_URL": "http://127.0.0.1:1",
        "RUN__WORKERS": "5",
    }

    # When they are turned into overrides
    overrides = env_overrides(environ)

    # Then only prefixed names with a section separator count, lower-cased and nested
    assert overrides == {
        "run": {"workers": "4"},
        "usecase": {"orders": {"sources": {"orders": {"url": "ssm:/db"}}}},
    }


@pytest.mark.parametrize(
    "names",
    [
        pytest.param(["HEADWATER_RUN__WORKERS", "HEADWATER_RUN__WORKERS__MAX"], id="leaf-first"),
        pytest.param(["HEADWATER_RUN__WORKERS__MAX", "HEADWATER_RUN__WORKERS"], id="section-first"),
    ],
)
def test_env_overrides_conflicts_fail_whatever_the_order(names: list[str]) -> None:
    # Given one variable setting a value and another treating it as a section
    environ = dict.fromkeys(names, "1")

    # When / then the conflict is reported, not resolved by silently dropping one of them
    with pytest.raises(ConfigError, match="conflicts with another override"):
        env_overrides(environ)


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("replace", "with_", "expected"),
    [
        pytest.param(
            'grain = "day"', 'grain = "week"', ["partitioning.grain", "(got 'week')"], id="grain"
        ),
        pytest.param("workers = 3", "workers = 0", ["run.workers", "(got 0)"], id="workers"),
        pytest.param(
            "workers = 3",
            "workers = 3\nwrokers = 4",
            ["run.wrokers", "Extra", "(got 4)"],
            id="unknown",
        ),
        pytest.param(
            "[lake]", 'colour = "blue"\n[lake]', ["colour", "Extra", "'blue'"], id="unknown-top"
        ),
        pytest.param(
            'kind = "sql"',
            'kind = ""',
            ["usecase.orders.sources.orders.kind", "(got '')"],
            id="empty-kind",
        ),
        pytest.param(
            'kind = "openmeteo"\n',
            "",
            ["usecase.orders.sources.weather.kind", "Field required"],
            id="missing-kind",
        ),
        pytest.param(
            "margin = 0.01",
            "margin = -0.5",
            ["usecase.orders.gate.margin", "(got -0.5)"],
            id="margin",
        ),
        pytest.param(
            "margin = 0.01",
            "margin = inf",
            ["usecase.orders.gate.margin", "(got inf)"],
            id="margin-infinite",
        ),
        pytest.param(
            "margin = 0.01",
            "margin = 0.01\nconfidence = 0.5",
            ["usecase.orders.gate.confidence", "greater than or equal to 0.8", "(got 0.5)"],
            id="confidence-below-the-floor",
        ),
        pytest.param(
            'metric = "auc_pr"',
            'metric = "auc_pr"\nmetrik = "x"',
            ["usecase.orders.gate.metrik", "Extra"],
            id="gate-typo",
        ),
        pytest.param(
            'timezone = "Europe/Paris"',
            'timezone = "Europe/Paris"\nhold_out = "2013-03-01"',
            ["usecase.orders.hold_out", "Extra"],
            id="usecase-typo",
        ),
        pytest.param(
            'grain = "day"',
            'grain = "day"\ntimezone = "America/New_York"',
            ["partitioning.timezone", "Extra"],
            id="removed-partitioning-timezone",
        ),
        pytest.param(
            "[run]",
            '[training]\nholdout_from = "2013-03-01"\n[run]',
            ["training.holdout_from", "Extra"],
            id="removed-training-holdout",
        ),
        pytest.param(
            "[run]",
            '[sources.orders]\nkind = "sql"\n[run]',
            ["  sources: Extra inputs"],
            id="removed-top-level-sources",
        ),
        pytest.param(
            "[run]", '[model]\nname = "x"\n[run]', ["  model: Extra inputs"], id="removed-model"
        ),
    ],
)
def test_invalid_values_are_named_with_their_key_and_value(
    tmp_path: Path, replace: str, with_: str, expected: list[str]
) -> None:
    # Given a stage file with one bad key
    assert replace in STAGE_FILE
    path = write_stage(tmp_path, text=STAGE_FILE.replace(replace, with_, 1))

    # When it is loaded
    with pytest.raises(ConfigError) as caught:
        load_settings("dev", environ=env_for(tmp_path))

    # Then the message names the file, the key and the offending value
    message = str(caught.value)
    assert str(path) in message
    for part in expected:
        assert part in message


def test_invalid_environment_override_is_named(tmp_path: Path) -> None:
    # Given a valid file but a bad override in the environment
    write_stage(tmp_path)

    # When it is loaded, then the key and the override's value are named
    with pytest.raises(ConfigError, match=r"run\.workers: .* \(got '0'\)"):
        load_settings("dev", environ=env_for(tmp_path, HEADWATER_RUN__WORKERS="0"))


def test_missing_stage_file_names_the_path(tmp_path: Path) -> None:
    # Given a config dir without a "staging" file
    write_stage(tmp_path, "dev")

    # When "staging" is loaded
    with pytest.raises(ConfigError) as caught:
        load_settings("staging", environ=env_for(tmp_path))

    # Then the stage and the path looked at are named
    assert "'staging'" in str(caught.value)
    assert str(tmp_path / "staging.toml") in str(caught.value)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    # Given a stage file that is not TOML
    path = write_stage(tmp_path, text="[run\nworkers = ")

    # When it is loaded, then the error names the file and says why
    with pytest.raises(ConfigError, match="is not valid TOML") as caught:
        load_settings("dev", environ=env_for(tmp_path))
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("replace", "with_", "expected"),
    [
        pytest.param(
            'usecases = ["orders"]',
            'usecases = ["orders", "ledger", "trains"]',
            "enabled use case(s) ledger, trains have no [usecase.<name>] table",
            id="enabled-without-table",
        ),
        pytest.param(
            'usecases = ["orders"]',
            'usecases = ["orders", "orders"]',
            "usecases lists a use case twice: ['orders', 'orders']",
            id="duplicate",
        ),
        pytest.param(
            'usecases = ["orders"]',
            'usecases = "orders"',
            "usecases: Input should be a valid tuple",
            id="not-a-list",
        ),
    ],
)
def test_the_enabled_use_cases_are_validated(
    tmp_path: Path, replace: str, with_: str, expected: str
) -> None:
    write_stage(tmp_path, text=STAGE_FILE.replace(replace, with_, 1))
    with pytest.raises(ConfigError) as caught:
        load_settings("dev", environ=env_for(tmp_path))
    assert expected in str(caught.value)


def test_a_configured_use_case_need_not_be_enabled(tmp_path: Path) -> None:
    # Given a second use case configured but not in the enabled list
    write_stage(tmp_path, text=STAGE_FILE + SECOND_USECASE)

    # When the stage is loaded, then it is configured yet only the enabled one is selected
    settings = load_settings("dev", environ=env_for(tmp_path))
    assert settings.usecases == ("orders",)
    assert sorted(settings.usecase) == ["ledger", "orders"]
    assert settings.source("ledger", "entries").options()["table"] == "entries"


@pytest.fixture
def two_usecases(tmp_path: Path) -> Settings:
    """orders enabled and ledger configured only."""
    write_stage(tmp_path, text=STAGE_FILE + SECOND_USECASE)
    return load_settings("dev", environ=env_for(tmp_path))


@pytest.mark.parametrize(
    ("names", "selected"),
    [
        pytest.param(None, ("orders",), id="none-is-the-enabled"),
        pytest.param([], ("orders",), id="empty-is-the-enabled"),
        pytest.param(["ledger"], ("ledger",), id="configured-not-enabled"),
        pytest.param(["ledger", "orders"], ("ledger", "orders"), id="in-the-given-order"),
    ],
)
def test_select_names_the_use_cases_to_act_on(
    two_usecases: Settings, names: list[str] | None, selected: tuple[str, ...]
) -> None:
    assert two_usecases.select(names) == selected


def test_select_refuses_an_unconfigured_use_case_naming_the_configured_ones(
    two_usecases: Settings,
) -> None:
    with pytest.raises(ConfigError) as caught:
        two_usecases.select(["orders", "trains"])
    assert str(caught.value) == ("use case 'trains' is not configured (configured: ledger, orders)")


def test_usecase_config_of_an_unknown_use_case_lists_the_configured_ones(
    two_usecases: Settings,
) -> None:
    assert two_usecases.usecase_config("ledger").sources.keys() == {"entries"}
    with pytest.raises(
        ConfigError,
        match=r"^use case 'trains' is not configured \(configured: ledger, orders\)$",
    ):
        two_usecases.usecase_config("trains")
    with pytest.raises(ConfigError, match=r"\(configured: none\)$"):
        Settings().usecase_config("orders")


def test_unknown_source_lists_the_known_ones_of_its_use_case(two_usecases: Settings) -> None:
    # When an unconfigured source is asked for, then the use case's known ones are listed
    with pytest.raises(ConfigError) as caught:
        two_usecases.source("orders", "nope")
    assert str(caught.value) == (
        "source 'nope' of use case 'orders' is not configured (known: orders, weather)"
    )
    # a source of another use case is not found through this one
    with pytest.raises(ConfigError, match=r"source 'entries' of use case 'orders'"):
        two_usecases.source("orders", "entries")


def test_unknown_source_of_an_unknown_or_empty_use_case() -> None:
    settings = Settings.model_validate({"usecase": {"orders": {}}})
    with pytest.raises(
        ConfigError, match=r"source 'orders' of use case 'orders' .*\(known: none\)"
    ):
        settings.source("orders", "orders")
    with pytest.raises(ConfigError, match=r"use case 'trains' is not configured"):
        settings.source("trains", "orders")


def test_source_kinds_and_their_keys_are_checked_when_used_not_when_read(tmp_path: Path) -> None:
    # Given a stage naming a kind nobody registered, and a bad key of a known kind
    text = STAGE_FILE.replace('kind = "openmeteo"', 'kind = "ftp"').replace(
        'date_column = "order_date"', 'date_column = "order_date"\nchunk_rows = -1'
    )
    write_stage(tmp_path, text=text)

    # When it is read, it loads (reading settings imports no source library) ...
    settings = load_settings("dev", environ=env_for(tmp_path))

    # ... and checking each source names the problem
    with pytest.raises(UnknownSourceKind, match=r"unknown source kind 'ftp' \(known kinds: .*sql"):
        validate_source(settings.source("orders", "weather"))
    with pytest.raises(SourceOptionsError, match=r"kind 'sql'\): chunk_rows: "):
        validate_source(settings.source("orders", "orders"))


def test_source_config_requires_a_kind_and_is_frozen() -> None:
    source = SourceConfig(kind="sql", url="sqlite:///x.sqlite", table="t")
    assert source.options() == {"url": "sqlite:///x.sqlite", "table": "t"}
    with pytest.raises(ValidationError):
        SourceConfig(url="sqlite:///x.sqlite")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        source.kind = "openmeteo"  # type: ignore[misc]


# --- where the files are, and when they are read -----------------------------------------------


def test_config_dir_prefers_env_then_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a working directory with its own config/ folder
    (tmp_path / "config").mkdir()
    monkeypatch.chdir(tmp_path)

    # Then the env variable wins, else ./config, else the repository's config/
    assert config_dir({CONFIG_DIR_ENV: "/elsewhere"}) == Path("/elsewhere")
    assert config_dir({}) == tmp_path / "config"
    monkeypatch.chdir(tmp_path / "config")
    assert config_dir({}) == REPO_ROOT / "config"


def test_nothing_is_read_at_import(tmp_path: Path) -> None:
    # Given a broken stage file made current through the environment
    write_stage(tmp_path, "broken", text="this is [not toml")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")},
        CONFIG_DIR_ENV: str(tmp_path),
        STAGE_ENV: "broken",
    }
    # (data.pipeline is what the Lambda handlers import: config, lake, contracts, use cases)
    probe = (
        "import headwater.core.config, headwater.data.pipeline\nprint('imported', flush=True)\n"
        + ("from headwater.core.config import load_settings\nload_settings()")
    )

    # When a fresh interpreter imports the modules and only then loads the settings
    proc = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
    )

    # Then the import succeeded, and the stage really is broken: loading it is what fails
    assert proc.stdout.splitlines() == ["imported"]
    assert proc.returncode == 1
    assert "ConfigError" in proc.stderr
    assert "is not valid TOML" in proc.stderr


@pytest.mark.parametrize(
    ("stage", "executor", "lake_scheme"),
    [("local", "inprocess", "file://"), ("prod", "lambda", "s3://")],
)
def test_repository_stage_files_validate(stage: str, executor: str, lake_scheme: str) -> None:
    # Given the stage files in effect, and no environment overrides
    environ = {CONFIG_DIR_ENV: str(STAGES)}

    # When each is loaded
    settings = load_settings(stage, environ=environ)

    # Then it validates, enables use cases that all exist, and configures every source each
    # one reads, with keys its kind accepts
    assert settings.stage == stage
    assert settings.executor.kind == executor
    assert settings.lake.uri.startswith(lake_scheme)
    assert settings.usecases
    for name in settings.usecases:
        usecase = get_usecase(name, settings.usecase_config(name).module)
        configured = settings.usecase_config(name).sources
        assert set(configured) == {*usecase.sources, *usecase.references}, name
        for source, config in configured.items():
            validate_source(config, f"{stage}: source {source!r} of {name!r}")


def test_prod_stage_keeps_database_urls_out_of_git_and_serves_nothing_locally() -> None:
    # Given the prod stage file
    settings = load_settings("prod", environ={CONFIG_DIR_ENV: str(STAGES)})

    # Then every SQL url is a secret reference, and no HTTP source expects an embedded server
    sources = [
        s for name in settings.usecases for s in settings.usecase_config(name).sources.values()
    ]
    sql = [s.options()["url"] for s in sources if s.kind == "sql"]
    assert len(sql) >= 3
    assert all(url.startswith(("ssm:", "secretsmanager:")) for url in sql), sql
    assert not any(s.options().get("embedded_server") for s in sources)


@pytest.mark.parametrize("uri", ["file://", "file:///", "file:// "])
def test_a_lake_uri_naming_no_place_is_refused(tmp_path: Path, uri: str) -> None:
    # Given a lake URI with an empty path or bucket (before: file:// wrote raw/, clean/ and
    # quarantine/ into the working directory)
    write_stage(tmp_path)

    # When it is loaded, then the setting is named, with its value
    with pytest.raises(ConfigError, match=rf"lake\.uri: .*\(got {uri!r}\)"):
        load_settings("dev", environ=env_for(tmp_path, HEADWATER_LAKE__URI=uri))
