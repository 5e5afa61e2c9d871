"""``GET /v1/<usecase>/model``: the serving version, training date, metrics, lineage, features."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from api.state import serving_model

bp = Blueprint("model", __name__, url_prefix="/v1")


@bp.get("/<usecase>/model")
def model_info(usecase: str) -> Response:
    """Describe the model that answers the use case's predictions right now."""
    return jsonify(serving_model(usecase).info)
