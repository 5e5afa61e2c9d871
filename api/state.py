"""What the app factory builds once per process and the handlers share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from flask import current_app

from api.errors import ApiError
from api.model_cache import ModelCache, ShadowCache
from headwater.core.config import Settings
from headwater.core.usecase import UseCase
from headwater.serving.capture import Capture
from headwater.serving.predictor import ServingModel

EXTENSION = "headwater_api"


@dataclass(frozen=True)
class Served:
    """One enabled use case, the cache of its production model and that of its shadow."""

    usecase: UseCase
    models: ModelCache
    #: The shadow model (``SHADOW.json``), scored from the capture thread; None: not watched.
    shadow: ShadowCache | None = None


@dataclass(frozen=True)
class ApiState:
    """The settings and the served use cases, in order (``app.extensions["headwater_api"]``)."""

    settings: Settings
    usecases: Mapping[str, Served]
    #: Records every answered prediction (``api.capture``); None when capture is off.
    capture: Capture | None = None

    def served(self, name: str) -> Served:
        """The use case ``name``, or a 404 naming the ones this API serves."""
        try:
            return self.usecases[name]
        except KeyError:
            known = ", ".join(self.usecases) or "none"
            raise ApiError(
                404, "unknown_usecase", f"no use case {name[:64]!r} here (known: {known})"
            ) from None


def api_state() -> ApiState:
    """The state of the app handling the current request."""
    return current_app.extensions[EXTENSION]


def serving_model(name: str) -> ServingModel:
    """The model of use case ``name`` to answer with, or a 503 saying why there is none."""
    served = api_state().served(name)
    status = served.models.status()
    if status.model is not None:
        return status.model
    where = served.models.store.uri()
    if status.error:
        message = f"no {name} model can be served: loading from {where} failed: {status.error}"
    else:
        message = (
            f"no {name} model has been promoted to production yet (no PRODUCTION.json in "
            f"{where}): train and promote one with `headwater run` or `headwater models promote`"
        )
    raise ApiError(503, "no_model", message, headers={"Retry-After": "30"})
