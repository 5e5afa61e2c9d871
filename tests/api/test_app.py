"""The app factory: settings read once when the app is created, use cases served by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from headwater.core.config import ConfigError


def first_served(app: Any) -> tuple[str, dict[str, Any]]:
    """The app's first served use case (the test stage's own) and its documented example."""
    name, served = next(iter(app.extensions["headwater_api"].usecases.items()))
    return name, dict(served.usecase.serving.example)


def test_settings_are_read_when_the_app_is_created(
    monkeypatch: pytest.MonkeyPatch, model_lake: str
) -> None:
    from api import create_app

    monkeypatch.setenv("HEADWATER_STAGE", "test")
    monkeypatch.setenv("HEADWATER_LAKE__URI", model_lake)
    monkeypatch.setenv("HEADWATER_API__MAX_BATCH", "3")
    app = create_app()
    monkeypatch.setenv("HEADWATER_API__MAX_BATCH", "4")

    # Then the app keeps what it read, and a new app reads the new value
    name, example = first_served(app)
    over = app.test_client().post(f"/v1/{name}/predictions", json={"instances": [example] * 4})
    assert over.status_code == 400 and over.get_json()["error"]["code"] == "batch_too_large"
    assert create_app().extensions["headwater_api"].settings.api.max_batch == 4


def test_explicit_config_beats_the_environment(
    monkeypatch: pytest.MonkeyPatch, model_lake: str
) -> None:
    from api import create_app

    monkeypatch.setenv("HEADWATER_API__MAX_BATCH", "3")
    app = create_app({"STAGE": "test", "LAKE_URI": model_lake, "MAX_BATCH": 7})

    settings = app.extensions["headwater_api"].settings
    assert (settings.lake.uri, settings.api.max_batch) == (model_lake, 7)


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("HEADWATER_API__MAX_BATCH", "0", "api.max_batch"),
        ("HEADWATER_API__RELOAD_SECONDS", "-1", "api.reload_seconds"),
        ("HEADWATER_API__MAX_BODY_BYTES", "10", "api.max_body_bytes"),
        ("HEADWATER_API__MAX_BATCH", "many", "api.max_batch"),
    ],
)
def test_invalid_api_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, model_lake: str, variable: str, value: str, says: str
) -> None:
    from api import create_app

    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=says):
        create_app({"STAGE": "test", "LAKE_URI": model_lake})


def test_a_stage_without_a_file_is_refused(model_lake: str) -> None:
    from api import create_app

    with pytest.raises(ConfigError, match="no configuration for stage 'nowhere'"):
        create_app({"STAGE": "nowhere", "LAKE_URI": model_lake})


def test_an_enabled_use_case_that_does_not_exist_is_refused(api_env: Path, model_lake: str) -> None:
    from api import create_app

    (api_env / "ghost.toml").write_text('usecases = ["ghost"]\n[usecase.ghost]\n')
    with pytest.raises(ValueError, match="unknown use case 'ghost'"):
        create_app({"STAGE": "ghost", "LAKE_URI": model_lake})


@pytest.mark.parametrize(
    ("method", "path"),
    [("post", "/v1/ghost/predictions"), ("get", "/v1/ghost/model"), ("get", "/v1/{NAME}/model")],
)
def test_an_unknown_use_case_is_a_404_naming_the_known_ones(
    app: Any, client: Any, method: str, path: str
) -> None:
    # Given the use cases the test stage serves (a name in capitals is not one of them)
    known = list(app.extensions["headwater_api"].usecases)
    assert len(known) > 1

    response = getattr(client, method)(path.format(NAME=known[0].upper()), json={})

    assert response.status_code == 404
    error = response.get_json()["error"]
    assert error["code"] == "unknown_usecase"
    assert f"(known: {', '.join(known)})" in error["message"]


def test_only_the_enabled_use_cases_are_served(app_for: Any, model_lake: str) -> None:
    # Given the test stage serving more than one use case
    name, *others = app_for(model_lake).extensions["headwater_api"].usecases
    assert others

    app = app_for(model_lake, USECASES=[name])

    assert list(app.extensions["headwater_api"].usecases) == [name]
    assert list(app.test_client().get("/health").get_json()["models"]) == [name]
