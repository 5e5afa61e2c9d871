"""Every error is JSON: ``{"error": {"status", "code", "message", "problems"?}}``, never HTML."""

import re
from typing import Any

from flask import Flask, Response, jsonify, request
from pydantic import Field
from werkzeug.exceptions import HTTPException

from headwater.core.logs import get_logger
from headwater.serving.predictor import AnswerModel, Problem

log = get_logger("api")


class ErrorBody(AnswerModel):
    """What went wrong: the HTTP status, a stable code, a message, and the input's problems."""

    status: int
    code: str
    message: str
    problems: list[Problem] | None = Field(
        None, description="Each problem with the input: where, what, what was expected."
    )


class Error(AnswerModel):
    """Every error the API answers (never HTML)."""

    error: ErrorBody


class ApiError(Exception):
    """An error the API answers on purpose, with its HTTP status and a stable code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        problems: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.problems, self.headers = problems, headers or {}


def error_response(
    status: int,
    code: str,
    message: str,
    problems: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Build the JSON error response."""
    body: dict[str, Any] = {"status": status, "code": code, "message": message}
    if problems is not None:
        body["problems"] = problems
    response = jsonify({"error": body})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _snake(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def register_error_handlers(app: Flask) -> None:
    """Answer API errors, HTTP errors (404, 405, 413...) and crashes as JSON."""

    @app.errorhandler(ApiError)
    def api_error(error: ApiError) -> Response:
        return error_response(
            error.status, error.code, error.message, error.problems, error.headers
        )

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        headers = {
            name: value
            for name, value in error.get_headers()
            if name.lower() not in ("content-type", "content-length")
        }
        message = error.description or error.name
        if status == 404:
            message = "no such resource: see /openapi.json for the API's endpoints"
        elif status == 405:
            allowed = headers.get("Allow", "")
            message = f"method not allowed on this resource (allowed: {allowed})"
        elif status == 413:
            limit = app.config.get("MAX_CONTENT_LENGTH")
            message = f"the request body is larger than the limit of {limit} bytes"
        return error_response(status, _snake(error.name), message, headers=headers)

    @app.errorhandler(Exception)
    def crash(error: Exception) -> Response:
        log.exception("unhandled error", method=request.method, path=request.path)
        return error_response(500, "internal_error", "internal error: the failure was logged")
