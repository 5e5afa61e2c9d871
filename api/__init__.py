"""The prediction API: a Flask app serving the promoted model of every enabled use case.

``create_app(config=None)`` builds the app: the stage's settings are read then
(:func:`headwater.core.config.load_settings`), each enabled use case's production model
is loaded once per process and re-checked at most every ``api.reload_seconds``; so is its
shadow model (``SHADOW.json``), which the capture thread scores on the same requests.
``api.wsgi.app`` is the instance Zappa (Lambda) and gunicorn (``headwater serve``) run.
"""

from __future__ import annotations

import gc

# The cold start's imports (Flask, pydantic, ours) create the process's long-lived objects:
# the collector's passes over them while they run freed a few hundred objects and cost 3% of
# the Lambda package's cold start (docs/benchmarks.md). It waits until they are done. This is
# the package's own module, so any process importing ``api`` does it (tests, the CLI): what
# is frozen then is never collected, which costs nothing but the little garbage it holds.
_collecting = gc.isenabled()
gc.disable()
try:
    from collections.abc import Mapping
    from functools import partial
    from typing import Any

    from flask import Flask

    from api.blueprints import docs, health, model, predictions
    from api.encoding import FiniteJSONProvider
    from api.errors import register_error_handlers
    from api.model_cache import ModelCache, ShadowCache
    from api.state import EXTENSION, ApiState, Served
    from headwater.core.config import load_settings
    from headwater.core.logs import get_logger
    from headwater.core.usecase import get_usecase
    from headwater.serving.capture import create_capture
    from headwater.serving.predictor import load_serving_model
    from headwater.serving.store import ModelStore
finally:
    gc.freeze()  # what they created lives as long as the process: never scanned again
    if _collecting:
        gc.enable()

log = get_logger("api")

# Flat keys of create_app(config) -> the settings they override.
_OVERRIDES = {
    "LAKE_URI": ("lake", "uri"),
    "AWS_REGION": ("aws", "region"),
    "AWS_ENDPOINT_URL": ("aws", "endpoint_url"),
    "MAX_BATCH": ("api", "max_batch"),
    "RELOAD_SECONDS": ("api", "reload_seconds"),
    "MAX_BODY_BYTES": ("api", "max_body_bytes"),
}


def _settings(extra: dict[str, Any]) -> Any:

    settings = extra.pop("SETTINGS", None)
    overrides: dict[str, Any] = {}
    for key, (section, name) in _OVERRIDES.items():
        value = extra.pop(key, None)
        if value is not None:
            overrides.setdefault(section, {})[name] = value
    if "USECASES" in extra:
        overrides["usecases"] = list(extra.pop("USECASES"))
    stage = extra.pop("STAGE", None)
    if settings is None:
        return load_settings(stage, overrides)
    body = settings.model_dump()
    for key, value in overrides.items():
        body[key] = {**body[key], **value} if isinstance(value, dict) else value
    return type(settings).model_validate(body)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app; ``config`` overrides the environment and the stage file.

    Keys: ``STAGE``; ``LAKE_URI``, ``AWS_REGION``, ``AWS_ENDPOINT_URL``, ``MAX_BATCH``,
    ``RELOAD_SECONDS``, ``MAX_BODY_BYTES`` and ``USECASES`` (override those settings);
    ``SETTINGS`` (a :class:`headwater.core.config.Settings`: no stage file is read),
    ``MODEL_STORES`` (use case -> :class:`headwater.serving.store.ModelStore`) and ``CLOCK``
    (a monotonic clock) and ``CAPTURE`` (a :class:`headwater.serving.capture.Capture`) can be
    injected; any other key goes to ``app.config``.
    """

    extra = dict(config or {})
    settings = _settings(extra)
    stores = extra.pop("MODEL_STORES", None) or {}
    clock = extra.pop("CLOCK", None)
    served: dict[str, Served] = {}
    for name in settings.usecases:
        usecase = get_usecase(name, settings.usecase_config(name).module)
        store = stores.get(name) or ModelStore(
            settings.lake.uri,
            name,  # the model's name is the use case's: models/<use case>/
            region=settings.aws.region,
            endpoint_url=settings.aws.endpoint_url,
        )
        loader = partial(load_serving_model, usecase=usecase)
        timing = {"clock": clock} if clock else {}
        cache = ModelCache(store, settings.api.reload_seconds, loader=loader, **timing)
        shadow = ShadowCache(store, settings.api.reload_seconds, loader=loader, **timing)
        served[name] = Served(usecase, cache, shadow)

    app = Flask(__name__)
    app.config.update(extra)
    app.config["MAX_CONTENT_LENGTH"] = settings.api.max_body_bytes
    app.json = FiniteJSONProvider(app)
    capture = extra.pop("CAPTURE", None) or create_capture(settings)
    app.extensions[EXTENSION] = ApiState(settings, served, capture)
    register_error_handlers(app)
    for blueprint in (health.bp, model.bp, predictions.bp, docs.bp):
        app.register_blueprint(blueprint)

    # Load now, once per process (Lambda's init phase, gunicorn's worker start), not on the
    # first request; a failure is reported by /health and answered 503, never a crash.
    for name, entry in served.items():
        loaded = entry.models.current()
        if entry.shadow is not None and capture is not None:
            entry.shadow.current()  # the shadow too: its first load is never a request's
        log.info(
            "headwater api started",
            stage=settings.stage,
            usecase=name,
            version=loaded.version if loaded else None,
        )
    return app
