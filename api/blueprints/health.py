"""``GET /health``: liveness, and per use case whether (and which) model is loaded."""

from __future__ import annotations

from typing import Literal

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, Field

from api.state import api_state
from headwater.serving.predictor import ModelRef

bp = Blueprint("health", __name__)


class UseCaseHealth(BaseModel):
    """Whether (and which) model of one use case is loaded, and what its pointer names."""

    loaded: bool
    model: ModelRef | None
    production: str | None = Field(description="The version the production pointer names.")
    pointer_checked_at: str | None
    error: str | None = Field(description="The last failed load, if any.")
    message: str | None


class Health(BaseModel):
    """Liveness, and per use case whether (and which) model is loaded."""

    status: Literal["ok", "degraded"] = Field(
        description="degraded: a production pointer names a version that cannot be loaded."
    )
    stage: str
    models: dict[str, UseCaseHealth] = Field(description="One entry per served use case.")


@bp.get("/health")
def health() -> Response:
    """Always 200 while alive; "degraded" when a pointer names a version that cannot be loaded."""
    state = api_state()
    models, degraded = {}, False
    for name, served in state.usecases.items():
        status = served.models.status()
        model = status.model
        message = None if model else f"no model loaded: POST /v1/{name}/predictions answers 503"
        if status.degraded:
            degraded = True
            if model is None:
                serving = "serving nothing"
            elif status.history[:1] == (model.version,):
                serving = f"serving {model.version}, the previous production"
            elif model.version in status.history:
                serving = f"serving {model.version}, an earlier production"
            else:
                serving = f"still serving {model.version}, which production never named"
            message = (
                f"production names {status.production}, which cannot be loaded "
                f"({status.error}); {serving}"
            )
        models[name] = {
            "loaded": model is not None,
            "model": model.ref if model else None,
            "production": status.production,
            "pointer_checked_at": status.checked_at,
            "error": status.error,
            "message": message,
        }
    status_text = "degraded" if degraded else "ok"
    return jsonify({"status": status_text, "stage": state.settings.stage, "models": models})
