"""``GET /v1/model``: the serving model's version, training date, metrics, lineage, features."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from api.state import serving_model

bp = Blueprint("model", __name__, url_prefix="/v1")


@bp.get("/model")
def model_info() -> Response:
    """Describe the model that answers predictions right now."""
    return jsonify(serving_model().info)
