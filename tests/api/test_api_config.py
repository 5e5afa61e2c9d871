"""The API's configuration: explicit > environment > stage file > defaults, read at call time."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.config import ApiConfigError, load_config
from headwater.config import load_settings

REPO = Path(__file__).resolve().parents[2]


def write_stage(folder: Path, stage: str, text: str) -> None:
    (folder / f"{stage}.toml").write_text(text, encoding="utf-8")


def test_stage_file_then_environment_then_explicit(tmp_path: Path) -> None:
    write_stage(
        tmp_path,
        "qa",
        '[lake]\nuri = "s3://qa-lake"\n[model]\nname = "m1"\n[aws]\nregion = "eu-west-1"\n',
    )
    env = {"HEADWATER_CONFIG_DIR": str(tmp_path), "HEADWATER_STAGE": "qa"}

    from_file = load_config(environ=env)
    assert (from_file.stage, from_file.lake_uri, from_file.model_name, from_file.aws_region) == (
        "qa",
        "s3://qa-lake",
        "m1",
        "eu-west-1",
    )
    assert (from_file.max_batch, from_file.reload_seconds) == (1000, 30.0)

    env |= {
        "HEADWATER_LAKE__URI": "s3://env-lake",
        "HEADWATER_API_MAX_BATCH": "50",
        "HEADWATER_API_RELOAD_SECONDS": "2.5",
    }
    from_env = load_config(environ=env)
    assert (from_env.lake_uri, from_env.max_batch, from_env.reload_seconds) == (
        "s3://env-lake",
        50,
        2.5,
    )
    assert from_env.model_name == "m1"

    explicit = load_config({"LAKE_URI": "file:///x", "MAX_BATCH": 7}, environ=env)
    assert (explicit.lake_uri, explicit.max_batch) == ("file:///x", 7)


def test_a_stage_without_file_needs_the_lake_from_the_environment(tmp_path: Path) -> None:
    env = {"HEADWATER_CONFIG_DIR": str(tmp_path), "HEADWATER_STAGE": "dev"}
    with pytest.raises(ApiConfigError, match="no lake URI for stage 'dev'"):
        load_config(environ=env)

    config = load_config(environ=env | {"HEADWATER_LAKE__URI": "s3://headwater-dev-lake"})
    assert (config.stage, config.lake_uri, config.model_name) == (
        "dev",
        "s3://headwater-dev-lake",
        "flights_delay",
    )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("HEADWATER_API_MAX_BATCH", "many", "not a valid int"),
        ("HEADWATER_API_MAX_BATCH", "0", "MAX_BATCH must be at least 1"),
        ("HEADWATER_API_RELOAD_SECONDS", "-1", "must not be negative"),
        ("HEADWATER_API_MAX_BODY_BYTES", "10", "at least 1024"),
    ],
)
def test_invalid_values(tmp_path: Path, variable: str, value: str, message: str) -> None:
    env = {
        "HEADWATER_CONFIG_DIR": str(tmp_path),
        "HEADWATER_LAKE__URI": "file:///l",
        variable: value,
    }
    with pytest.raises(ApiConfigError, match=message):
        load_config(environ=env)


def test_broken_stage_file(tmp_path: Path) -> None:
    write_stage(tmp_path, "local", "[lake\n")
    with pytest.raises(ApiConfigError, match="cannot read"):
        load_config(environ={"HEADWATER_CONFIG_DIR": str(tmp_path)})


@pytest.mark.parametrize("stage", ["local", "prod"])
@pytest.mark.parametrize(
    "env",
    [
        {},
        {
            "HEADWATER_LAKE__URI": "s3://other",
            "HEADWATER_MODEL__NAME": "m2",
            "HEADWATER_AWS__REGION": "eu-central-1",
            "HEADWATER_AWS__ENDPOINT_URL": "http://x",
        },
    ],
)
def test_reads_the_repository_config_as_headwater_config_does(
    stage: str, env: dict[str, str]
) -> None:
    environ = {"HEADWATER_CONFIG_DIR": str(REPO / "config"), "HEADWATER_STAGE": stage, **env}

    ours = load_config(environ=environ)
    theirs = load_settings(environ=environ)

    assert ours.lake_uri == theirs.lake.uri
    assert ours.model_name == theirs.model.name
    assert ours.aws_region == theirs.aws.region
    assert ours.aws_endpoint_url == theirs.aws.endpoint_url


def test_api_variables_do_not_break_headwater_config() -> None:
    environ = {
        "HEADWATER_CONFIG_DIR": str(REPO / "config"),
        "HEADWATER_API_MAX_BATCH": "5",
        "HEADWATER_API_RELOAD_SECONDS": "1",
    }
    assert load_settings(environ=environ).stage == "local"


def test_config_is_read_when_the_app_is_created(
    monkeypatch: pytest.MonkeyPatch, model_lake: str
) -> None:
    from api import create_app
    from api.state import EXTENSION

    monkeypatch.setenv("HEADWATER_LAKE__URI", model_lake)
    monkeypatch.setenv("HEADWATER_API_MAX_BATCH", "3")
    app = create_app()
    monkeypatch.setenv("HEADWATER_API_MAX_BATCH", "4")

    assert app.extensions[EXTENSION].config.max_batch == 3
    assert create_app().extensions[EXTENSION].config.max_batch == 4
