"""``GET /health``: liveness, and whether (and which) model is loaded."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from api.state import api_state

bp = Blueprint("health", __name__)


@bp.get("/health")
def health() -> Response:
    """Always 200 while the process is alive; ``model_loaded`` says if it can predict."""
    state = api_state()
    status = state.models.status()
    model = status.model
    return jsonify(
        {
            "status": "ok",
            "model_loaded": model is not None,
            "model": model.ref if model else None,
            "stage": state.config.stage,
            "pointer_checked_at": status.checked_at,
            "error": status.error,
            "message": None if model else "no model loaded: POST /v1/predictions answers 503",
        }
    )
