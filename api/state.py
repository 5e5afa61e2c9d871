"""What the app factory builds once per process and the handlers share."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from api.config import ApiConfig
from api.errors import ApiError
from api.model_cache import ModelCache
from headwater.usecases.flights.serving import ServingModel

EXTENSION = "headwater_api"


@dataclass(frozen=True)
class ApiState:
    """The API's configuration and model cache (``app.extensions["headwater_api"]``)."""

    config: ApiConfig
    models: ModelCache


def api_state() -> ApiState:
    """The state of the app handling the current request."""
    return current_app.extensions[EXTENSION]


def serving_model() -> ServingModel:
    """The model to answer with, or a 503 saying why there is none."""
    state = api_state()
    status = state.models.status()
    if status.model is not None:
        return status.model
    where = state.models.store.uri()
    if status.error:
        message = f"no model can be served: loading from {where} failed: {status.error}"
    else:
        message = (
            f"no model has been promoted to production yet (no PRODUCTION.json in {where}): "
            "train and promote one with `headwater run` or `headwater models promote`"
        )
    raise ApiError(503, "no_model", message, headers={"Retry-After": "30"})
