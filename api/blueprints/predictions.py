"""``POST /v1/<usecase>/predictions``: one instance, or ``{"instances": [...]}`` up to a limit."""

from __future__ import annotations

import json
import time
from typing import Any

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import ClientDisconnected, HTTPException, RequestEntityTooLarge

from api.errors import ApiError
from api.state import api_state, serving_model
from headwater.core.logs import get_logger
from headwater.serving.capture import Capture, ShadowSource
from headwater.serving.predictor import (
    MAX_PROBLEMS,
    BatchTooLarge,
    InvalidRequest,
    Scored,
    ServingModel,
    UnscorableInstance,
    parse_request,
    score,
)

bp = Blueprint("predictions", __name__, url_prefix="/v1")
log = get_logger("api")

#: How deep a request body may nest (a request is 3 deep; a batch 4): deeper is refused
#: before it reaches anything recursive (the parser itself overflows near 1,000 levels).
MAX_JSON_DEPTH = 32


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def json_depth(value: Any) -> int:
    """How deeply a parsed JSON value nests arrays and objects (a scalar: 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _unreadable(reason: BaseException | None) -> ApiError:
    if reason is None:
        what = "it ended before its declared length"
    else:
        what = str(reason)[:200] or type(reason).__name__
    log.info("unreadable request body", reason=what)
    return ApiError(400, "malformed_body", f"the request body could not be read as sent: {what}")


def _read_body() -> bytes:
    """The raw body, or a 413: a streamed (chunked) body is held to the same limit.

    Raises:
        ApiError: 400 ``malformed_body`` when the server cannot read the body as sent.
    """
    length = request.content_length
    try:
        data = request.get_data(cache=False)
        limit = request.max_content_length
        # Without Content-Length, werkzeug stops reading at the limit and says nothing: one
        # more byte in the stream means the body was longer than the limit.
        if length is None and limit is not None and len(data) >= limit:
            if request.environ["wsgi.input"].read(1):
                raise RequestEntityTooLarge()
    except ClientDisconnected as exc:
        # werkzeug's reading of an OSError/ValueError from the stream (or of a body shorter
        # than its Content-Length); the stream's own error, if any, is its context.
        raise _unreadable(exc.__context__) from None
    except (HTTPException, MemoryError):
        raise
    except Exception as exc:
        # wsgi.input is the server's reader of the client's bytes (PEP 3333): what it raises
        # says how the body was sent, e.g. gunicorn's InvalidChunkSize, ChunkMissingTerminator
        # and InvalidChunkExtension for broken chunked framing. Those are neither OSError nor
        # ValueError (gunicorn 27: ParseException(Exception)), and the API cannot name them (the
        # Lambda package has no gunicorn), so any error of the reader is the request's: a 400.
        raise _unreadable(exc) from None
    # gunicorn hands back a body cut short by the client closing its side as if whole
    # (werkzeug raises only when it wraps the stream itself): compare with the header.
    if length is not None and len(data) < length:
        raise _unreadable(None)
    return data


def read_json_body() -> Any:
    """The request's JSON body, or a 415/413/400 naming what is wrong with it."""
    if not request.is_json:
        got = request.mimetype or "none"
        raise ApiError(
            415, "unsupported_media_type", f"expected Content-Type: application/json (got {got})"
        )
    data = _read_body()
    if not data.strip():
        raise ApiError(400, "malformed_json", "the request body is empty: expected a JSON object")
    too_deep = ApiError(
        400,
        "malformed_json",
        f"the request body nests arrays and objects more than {MAX_JSON_DEPTH} levels deep",
    )
    try:
        body = json.loads(data, parse_constant=_reject_constant)
    except RecursionError:
        raise too_deep from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ApiError(
            400, "malformed_json", f"the request body is not valid JSON: {exc}"
        ) from None
    # A value nests no deeper than its count of opening brackets (those inside strings
    # included): most bodies are cleared by that count without walking them.
    brackets = data.count(b"[") + data.count(b"{")
    if brackets > MAX_JSON_DEPTH and json_depth(body) > MAX_JSON_DEPTH:
        raise too_deep
    return body


def _capture(
    capture: Capture,
    model: ServingModel,
    instances: list[Any],
    scored: list[Scored],
    started: float,
    shadow: ShadowSource | None = None,
) -> None:
    """Hand each answered instance to capture: queued only, never delaying or failing the answer.

    Each record keeps the features its answer was scored from. With ``shadow``, the capture
    thread also scores each instance with the shadow model.
    """
    try:
        latency_ms = (time.perf_counter() - started) * 1000
        served_at, request_id = time.time(), capture.request_id()
        for i, (instance, (answer, features)) in enumerate(zip(instances, scored, strict=True)):
            capture.offer(
                model,
                instance,
                answer,
                features=features,
                request_id=request_id,
                instance=i,
                served_at=served_at,
                latency_ms=latency_ms,
                shadow=shadow,
            )
    except Exception:  # capture must never cost the client its answer
        log.exception("capture failed", usecase=model.name)


@bp.post("/<usecase>/predictions")
def create_predictions(usecase: str) -> Response:
    """Score one instance (answer: one prediction) or a batch (``{"predictions": [...]}``)."""
    started = time.perf_counter()
    state = api_state()
    served = state.served(usecase)
    spec = served.usecase.serving
    body = read_json_body()
    try:
        instances, batch = parse_request(spec, body, state.settings.api.max_batch)
    except BatchTooLarge as exc:
        # Over the document's maxItems: the JSON body violates the schema (a 400, as any other
        # schema violation), while 413 stays for a body over the byte limit.
        raise ApiError(400, "batch_too_large", str(exc)) from None
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
    scored = []
    for i, instance in enumerate(instances):
        try:
            scored.append(score(model, instance))
        except UnscorableInstance as exc:
            where = f"instances[{i}]: " if batch else ""
            raise ApiError(422, "unscorable", f"{where}{exc}") from None
    if state.capture is not None:
        _capture(state.capture, model, instances, scored, started, served.shadow)
    if batch:
        return jsonify({"predictions": [answer for answer, _ in scored]})
    return jsonify(scored[0].answer)
