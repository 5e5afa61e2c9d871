"""``GET /openapi.json`` and ``GET /docs``: the API described, for machines and for people."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from api.openapi import docs_page, openapi_document
from api.state import api_state

bp = Blueprint("docs", __name__)


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3.1 document (with this deployment's batch limit)."""
    return jsonify(openapi_document(api_state().config.max_batch))


@bp.get("/docs")
def docs() -> Response:
    """A plain HTML rendering of the same document."""
    page = docs_page(openapi_document(api_state().config.max_batch))
    return Response(page, mimetype="text/html")
