"""``GET /health``: liveness, and per use case whether (and which) model is loaded."""

import os
from typing import Any, Literal

from flask import Blueprint, Response, jsonify
from pydantic import Field

from api.state import ApiState, Served, api_state
from headwater.serving.predictor import AnswerModel, ModelRef

bp = Blueprint("health", __name__)


class ShadowHealth(AnswerModel):
    """The use case's shadow model: named by ``SHADOW.json``, loaded, scored from capture."""

    state: Literal["off", "loaded", "failed"] = Field(
        description="off: no shadow; loaded: scored beside production; failed: cannot be loaded."
    )
    version: str | None = Field(description="The version the shadow pointer names.")
    loaded: str | None = Field(description="The shadow version loaded in this process.")
    scored: bool = Field(description="Whether requests are shadow-scored (capture must be on).")
    pointer_checked_at: str | None
    error: str | None = Field(description="The last failed load of the shadow, if any.")


class UseCaseHealth(AnswerModel):
    """Whether (and which) model of one use case is loaded, and what its pointer names."""

    loaded: bool
    model: ModelRef | None
    production: str | None = Field(description="The version the production pointer names.")
    pointer_checked_at: str | None
    error: str | None = Field(description="The last failed load, if any.")
    message: str | None
    shadow: ShadowHealth | None = Field(None, description="The shadow model; never the answer.")


class CaptureHealth(AnswerModel):
    """This process's prediction capture: on or off, where to, counters since it started."""

    enabled: bool
    sink: Literal["spool", "log", "firehose"] | None = None
    sample_rate: float | None = None
    process: int | None = None
    offered: int | None = Field(None, ge=0)
    sampled_out: int | None = Field(None, ge=0)
    dropped: int | None = Field(None, ge=0)
    written: int | None = Field(None, ge=0)
    failed: int | None = Field(None, ge=0)
    queued: int | None = Field(None, ge=0)
    shadow_scored: int | None = Field(None, ge=0)
    shadow_failed: int | None = Field(None, ge=0)


class Health(AnswerModel):
    """Liveness, and per use case whether (and which) model is loaded."""

    status: Literal["ok", "degraded"] = Field(
        description="degraded: a production pointer names a version that cannot be loaded."
    )
    stage: str
    models: dict[str, UseCaseHealth] = Field(description="One entry per served use case.")
    capture: CaptureHealth


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
            "shadow": shadow_status(served, scored=state.capture is not None),
        }
    status_text = "degraded" if degraded else "ok"
    body = {"status": status_text, "stage": state.settings.stage, "models": models}
    body["capture"] = capture_status(state)
    return jsonify(body)


def shadow_status(served: Served, scored: bool) -> dict[str, Any] | None:
    """The use case's shadow: the version named, the one loaded, whether it is scored."""
    if served.shadow is None:
        return None
    status = served.shadow.status()
    return {
        "state": status.state,
        "version": status.version,
        "loaded": status.model.version if status.model else None,
        "scored": scored and status.state == "loaded",
        "pointer_checked_at": status.checked_at,
        "error": status.error,
    }


def capture_status(state: ApiState) -> dict[str, Any]:
    """This process's capture: on or off, where to, and its counters (dropped, failed...)."""
    if state.capture is None:
        return CaptureHealth(enabled=False).model_dump()  # every declared key, null when off
    return CaptureHealth(
        enabled=True,
        sink=state.capture.sink.kind,
        sample_rate=state.capture.sample_rate,
        process=os.getpid(),
        **state.capture.counters(),
    ).model_dump()
