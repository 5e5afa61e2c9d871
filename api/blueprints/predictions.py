"""``POST /v1/<usecase>/predictions``: one instance, or ``{"instances": [...]}`` up to a limit."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, jsonify, request

from api.errors import ApiError
from api.state import api_state, serving_model
from headwater.serving import (
    MAX_PROBLEMS,
    BatchTooLarge,
    InvalidRequest,
    UnscorableInstance,
    parse_request,
    predict,
)

bp = Blueprint("predictions", __name__, url_prefix="/v1")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def read_json_body() -> Any:
    """The request's JSON body, or a 415/400 naming what is wrong with it."""
    if not request.is_json:
        got = request.mimetype or "none"
        raise ApiError(
            415, "unsupported_media_type", f"expected Content-Type: application/json (got {got})"
        )
    data = request.get_data(cache=False)
    if not data.strip():
        raise ApiError(400, "malformed_json", "the request body is empty: expected a JSON object")
    try:
        return json.loads(data, parse_constant=_reject_constant)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ApiError(
            400, "malformed_json", f"the request body is not valid JSON: {exc}"
        ) from None


@bp.post("/<usecase>/predictions")
def create_predictions(usecase: str) -> Response:
    """Score one instance (answer: one prediction) or a batch (``{"predictions": [...]}``)."""
    state = api_state()
    spec = state.served(usecase).usecase.serving
    body = read_json_body()
    try:
        instances, batch = parse_request(spec, body, state.settings.api.max_batch)
    except BatchTooLarge as exc:
        raise ApiError(413, "batch_too_large", str(exc)) from None
    except InvalidRequest as exc:
        problems = [p.to_dict() for p in exc.problems[:MAX_PROBLEMS]]
        count = len(exc.problems)
        raise ApiError(
            400,
            "invalid_request",
            f"{count} problem{'s' if count > 1 else ''} with the request: {exc}",
            problems,
        ) from None
    model = serving_model(usecase)  # one model for the whole batch, even if a swap happens
    answers = []
    for i, instance in enumerate(instances):
        try:
            answers.append(predict(model, instance))
        except UnscorableInstance as exc:
            where = f"instances[{i}]: " if batch else ""
            raise ApiError(422, "unscorable", f"{where}{exc}") from None
    return jsonify({"predictions": answers} if batch else answers[0])
