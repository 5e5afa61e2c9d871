"""The API's configuration, read when the app is created (never at import).

Precedence, highest first: the mapping passed to ``create_app(config)``, environment
variables, the stage's file ``config/<stage>.toml``, then the defaults below. The
stage file and the ``HEADWATER_<SECTION>__<KEY>`` variables are the ones
:mod:`headwater.config` reads (a test keeps both readings in step), but they are read
here with ``tomllib`` alone: pydantic would cost the Lambda package 2 MB and every
cold start 0.15 s for four values.

On Lambda, Zappa sets ``HEADWATER_STAGE`` and ``HEADWATER_LAKE__URI``; the package
also carries ``config/`` (no secrets live there). A stage without a file (such as
Zappa's ``dev``) is accepted when the lake URI comes from the environment.

API-only settings use single-underscore names (``HEADWATER_API_MAX_BATCH``):
``HEADWATER_API__*`` would be read by :func:`headwater.config.load_settings` as an
unknown section and rejected.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STAGE_ENV = "HEADWATER_STAGE"
CONFIG_DIR_ENV = "HEADWATER_CONFIG_DIR"
DEFAULT_STAGE = "local"

# key: (environment variable, (section, key) in the stage file or None, type, default)
_KEYS: dict[str, tuple[str, tuple[str, str] | None, Callable[[Any], Any], Any]] = {
    "LAKE_URI": ("HEADWATER_LAKE__URI", ("lake", "uri"), str, None),
    "MODEL_NAME": ("HEADWATER_MODEL__NAME", ("model", "name"), str, "flights_delay"),
    "AWS_REGION": ("HEADWATER_AWS__REGION", ("aws", "region"), str, "us-east-1"),
    "AWS_ENDPOINT_URL": ("HEADWATER_AWS__ENDPOINT_URL", ("aws", "endpoint_url"), str, None),
    "MAX_BATCH": ("HEADWATER_API_MAX_BATCH", None, int, 1000),
    "RELOAD_SECONDS": ("HEADWATER_API_RELOAD_SECONDS", None, float, 30.0),
    "MAX_BODY_BYTES": ("HEADWATER_API_MAX_BODY_BYTES", None, int, 4 * 1024 * 1024),
}


class ApiConfigError(ValueError):
    """The API's configuration is missing or invalid."""


@dataclass(frozen=True)
class ApiConfig:
    """Everything the API reads from its environment, validated."""

    stage: str
    lake_uri: str
    model_name: str = "flights_delay"
    aws_region: str = "us-east-1"
    aws_endpoint_url: str | None = None
    max_batch: int = 1000  # instances per POST /v1/predictions; more is a 413
    reload_seconds: float = 30.0  # how often the PRODUCTION pointer is checked, at most
    max_body_bytes: int = 4 * 1024 * 1024  # a larger request body is a 413


def config_dir(environ: Mapping[str, str]) -> Path:
    """Return the directory of the stage files (as :func:`headwater.config.config_dir`)."""
    if environ.get(CONFIG_DIR_ENV):
        return Path(environ[CONFIG_DIR_ENV])
    cwd = Path.cwd() / "config"
    if cwd.is_dir():
        return cwd
    return Path(__file__).resolve().parent.parent / "config"


def _stage_file(stage: str, environ: Mapping[str, str]) -> tuple[Path, dict[str, Any] | None]:
    path = config_dir(environ) / f"{stage}.toml"
    if not path.is_file():
        return path, None
    try:
        return path, tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ApiConfigError(f"cannot read {path}: {exc}") from exc


def load_config(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> ApiConfig:
    """Resolve the API's configuration (see the module docstring for the precedence)."""
    env = os.environ if environ is None else environ
    explicit = dict(overrides or {})
    stage = str(explicit.get("STAGE") or env.get(STAGE_ENV) or DEFAULT_STAGE)
    path, data = _stage_file(stage, env)
    values: dict[str, Any] = {}
    for key, (variable, location, kind, default) in _KEYS.items():
        if explicit.get(key) is not None:
            raw, origin = explicit[key], f"config[{key!r}]"
        elif env.get(variable):
            raw, origin = env[variable], f"${variable}"
        elif location and data is not None and data.get(location[0], {}).get(location[1]):
            raw, origin = data[location[0]][location[1]], f"{location[0]}.{location[1]} in {path}"
        else:
            raw, origin = default, "default"
        try:
            values[key] = None if raw is None else kind(raw)
        except (TypeError, ValueError):
            raise ApiConfigError(f"{origin}: {raw!r} is not a valid {kind.__name__}") from None
    if values["LAKE_URI"] is None:
        raise ApiConfigError(
            f"no lake URI for stage {stage!r}: {path} does not exist and "
            "HEADWATER_LAKE__URI is not set"
        )
    if values["MAX_BATCH"] < 1 or values["MAX_BODY_BYTES"] < 1024:
        raise ApiConfigError("MAX_BATCH must be at least 1 and MAX_BODY_BYTES at least 1024")
    if values["RELOAD_SECONDS"] < 0:
        raise ApiConfigError("RELOAD_SECONDS must not be negative")
    return ApiConfig(
        stage=stage,
        lake_uri=values["LAKE_URI"],
        model_name=values["MODEL_NAME"],
        aws_region=values["AWS_REGION"],
        aws_endpoint_url=values["AWS_ENDPOINT_URL"],
        max_batch=values["MAX_BATCH"],
        reload_seconds=values["RELOAD_SECONDS"],
        max_body_bytes=values["MAX_BODY_BYTES"],
    )
