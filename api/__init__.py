"""The prediction API: a Flask app serving the promoted flight-delay model as JSON.

``create_app(config=None)`` builds the app: configuration is read then (see
:mod:`api.config`), the production model is loaded once per process and re-checked
at most every ``RELOAD_SECONDS``. ``api.wsgi.app`` is the instance Zappa (Lambda)
and gunicorn (``headwater serve``) run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask

logger = logging.getLogger("api")


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app; ``config`` overrides the environment and the stage file.

    Keys: ``STAGE``, ``LAKE_URI``, ``MODEL_NAME``, ``AWS_REGION``, ``AWS_ENDPOINT_URL``,
    ``MAX_BATCH``, ``RELOAD_SECONDS``, ``MAX_BODY_BYTES`` (see :mod:`api.config`);
    ``MODEL_STORE`` (a :class:`headwater.model_store.ModelStore`) and ``CLOCK`` (a
    monotonic clock) can be injected, and any other key goes to ``app.config``.
    """
    from api.blueprints import docs, health, model, predictions
    from api.config import load_config
    from api.errors import register_error_handlers
    from api.model_cache import ModelCache
    from api.state import EXTENSION, ApiState
    from headwater.model_store import ModelStore

    settings = load_config(config)
    extra = dict(config or {})
    store = extra.pop("MODEL_STORE", None) or ModelStore(
        settings.lake_uri,
        settings.model_name,
        region=settings.aws_region,
        endpoint_url=settings.aws_endpoint_url,
    )
    clock = extra.pop("CLOCK", None)
    cache = ModelCache(store, settings.reload_seconds, **({"clock": clock} if clock else {}))

    app = Flask(__name__)
    app.config.update(extra)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # keep the documented field order
    app.extensions[EXTENSION] = ApiState(settings, cache)
    register_error_handlers(app)
    for blueprint in (health.bp, model.bp, predictions.bp, docs.bp):
        app.register_blueprint(blueprint)

    # Load now, once per process (Lambda's init phase, gunicorn's worker start), not on the
    # first request; a failure is reported by /health and answered 503, never a crash.
    loaded = cache.current()
    logger.info(
        "headwater api (stage %s): %s",
        settings.stage,
        f"serving {loaded.name} {loaded.version}" if loaded else "no model loaded",
    )
    return app
