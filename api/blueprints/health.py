"""``GET /health``: liveness, and per use case whether (and which) model is loaded."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from api.state import api_state

bp = Blueprint("health", __name__)


@bp.get("/health")
def health() -> Response:
    """Always 200 while the process is alive; each use case says if it can predict."""
    state = api_state()
    models = {}
    for name, served in state.usecases.items():
        status = served.models.status()
        model = status.model
        models[name] = {
            "loaded": model is not None,
            "model": model.ref if model else None,
            "pointer_checked_at": status.checked_at,
            "error": status.error,
            "message": None
            if model
            else f"no model loaded: POST /v1/{name}/predictions answers 503",
        }
    return jsonify({"status": "ok", "stage": state.settings.stage, "models": models})
