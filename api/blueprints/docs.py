"""``GET /openapi.json`` and ``GET /docs``: the API described, for machines and for people."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from api.openapi import docs_page, openapi_document
from api.state import api_state

bp = Blueprint("docs", __name__)


def _document() -> dict[str, Any]:
    state = api_state()
    usecases = {name: served.usecase for name, served in state.usecases.items()}
    return openapi_document(usecases, state.settings.api.max_batch)


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3.1 document of every served use case (with this deployment's limits)."""
    return jsonify(_document())


@bp.get("/docs")
def docs() -> Response:
    """A plain HTML rendering of the same document."""
    return Response(docs_page(_document()), mimetype="text/html")
