"""``GET /health``: liveness, and per use case whether (and which) model is loaded."""

from __future__ import annotations

import os
from typing import Any

from flask import Blueprint, Response, jsonify

from api.state import ApiState, api_state

bp = Blueprint("health", __name__)


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
    body = {"status": status_text, "stage": state.settings.stage, "models": models}
    body["capture"] = capture_status(state)
    return jsonify(body)


def capture_status(state: ApiState) -> dict[str, Any]:
    """This process's capture: on or off, where to, and its counters (dropped, failed...)."""
    if state.capture is None:
        return {"enabled": False}
    return {
        "enabled": True,
        "sink": state.capture.sink.kind,
        "sample_rate": state.capture.sample_rate,
        "process": os.getpid(),
        **state.capture.counters(),
    }
