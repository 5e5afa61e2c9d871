"""Stage configuration: file loading, override precedence, error messages, the real stage files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from headwater.config import (
    CONFIG_DIR_ENV,
    STAGE_ENV,
    ConfigError,
    OpenMeteoSourceConfig,
    Settings,
    SqlSourceConfig,
    config_dir,
    env_overrides,
    load_settings,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKERS_7 = {"HEADWATER_RUN__WORKERS": "7"}

STAGE_FILE = """
stage = "ignored"
usecase = "flights"
[lake]
uri = "file:///tmp/lake-from-file"
[partitioning]
grain = "day"
timezone = "America/New_York"
[sources.flights]
kind = "sql"
url = "sqlite:///flights.sqlite"
table = "flights"
date_column = "flight_date"
[sources.weather]
kind = "openmeteo"
base_url = "http://127.0.0.1:1/v1/archive"
[run]
workers = 3
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
    flights = settings.source("flights")
    assert isinstance(flights, SqlSourceConfig)
    assert flights.chunk_rows == 50_000
    assert isinstance(settings.source("weather"), OpenMeteoSourceConfig)


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
    # Given a stage file with a full flights source
    write_stage(tmp_path)

    # When one key of that source is overridden from the environment and one by argument
    settings = load_settings(
        "dev",
        overrides={"sources": {"flights": {"table": "flights_v2"}}},
        environ=env_for(tmp_path, HEADWATER_SOURCES__FLIGHTS__CHUNK_ROWS="123"),
    )

    # Then the other keys of the source survive and the env string is coerced to int
    flights = settings.source("flights")
    assert isinstance(flights, SqlSourceConfig)
    assert (flights.table, flights.chunk_rows, flights.date_column) == (
        "flights_v2",
        123,
        "flight_date",
    )


def test_env_overrides_nests_double_underscore_names_and_ignores_the_rest() -> None:
    # Given a mix of HEADWATER_* variables and unrelated ones
    environ = {
        "HEADWATER_RUN__WORKERS": "4",
        "HEADWATER_SOURCES__FLIGHTS__URL": "ssm:/db",
        "HEADWATER_STAGE": "prod",
        "HEADWATER_AWS_ENDPOINT_URL": "http://127.0.0.1:1",
        "RUN__WORKERS": "5",
    }

    # When they are turned into overrides
    overrides = env_overrides(environ)

    # Then only prefixed names with a section separator count, lower-cased and nested
    assert overrides == {"run": {"workers": "4"}, "sources": {"flights": {"url": "ssm:/db"}}}


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
            'kind = "sql"', 'kind = "ftp"', ["sources.flights", "'ftp'"], id="source-kind"
        ),
        pytest.param(
            'date_column = "flight_date"',
            'date_column = "flight_date"\nchunk_rows = -1',
            ["sources.flights.sql.chunk_rows", "(got -1)"],
            id="chunk-rows",
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


def test_unknown_source_lists_the_known_ones(tmp_path: Path) -> None:
    # Given settings with two sources
    write_stage(tmp_path)
    settings = load_settings("dev", environ=env_for(tmp_path))

    # When an unconfigured source is asked for, then the known ones are listed
    with pytest.raises(ConfigError) as caught:
        settings.source("nope")
    assert str(caught.value) == "source 'nope' is not configured (known: flights, weather)"


def test_unknown_source_without_sources_says_none() -> None:
    with pytest.raises(ConfigError, match=r"\(known: none\)"):
        Settings().source("flights")


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
    # (headwater.pipeline is what the Lambda handlers import: config, lake, contracts, use cases)
    probe = "import headwater.config, headwater.pipeline\nprint('imported', flush=True)\n" + (
        "from headwater.config import load_settings\nload_settings()"
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
    # Given the stage files under version control, and no environment overrides
    environ = {CONFIG_DIR_ENV: str(REPO_ROOT / "config")}

    # When each is loaded
    settings = load_settings(stage, environ=environ)

    # Then it validates, with (at least) both sources of the flights use case
    assert settings.stage == stage
    assert settings.executor.kind == executor
    assert settings.lake.uri.startswith(lake_scheme)
    assert {"flights", "weather"} <= set(settings.sources)


def test_prod_stage_keeps_the_database_url_out_of_git() -> None:
    # Given the prod stage file
    settings = load_settings("prod", environ={CONFIG_DIR_ENV: str(REPO_ROOT / "config")})

    # Then the SQL url is a secret reference, not a connection string
    flights = settings.source("flights")
    assert isinstance(flights, SqlSourceConfig)
    assert flights.url.startswith(("ssm:", "secretsmanager:"))
