"""``GET /openapi.json`` and ``GET /docs``: the API described, for machines and for people."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from api.state import api_state

bp = Blueprint("docs", __name__)
DOCUMENT = "headwater_api.openapi"


def _document() -> dict[str, Any]:
    """The app's document, generated on first use and kept (it never changes in a process)."""
    document = current_app.extensions.get(DOCUMENT)
    if document is None:
        # lazy: only /openapi.json and /docs build the document, not a cold start
        from api.openapi import openapi_document

        state = api_state()
        usecases = {name: served.usecase for name, served in state.usecases.items()}
        document = openapi_document(usecases, state.settings.api.max_batch)
        current_app.extensions[DOCUMENT] = document
    return document


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3.1 document of every served use case (with this deployment's limits)."""
    return jsonify(_document())


@bp.get("/docs")
def docs() -> Response:
    """A plain HTML rendering of the same document."""
    from api.openapi import docs_page  # lazy: as openapi_document in _document

    return Response(docs_page(_document()), mimetype="text/html")
