"""The API's Lambda entry point (zappa_settings.json's ``lambda_handler``), in place of Zappa's.

Zappa's own handler imports boto3, botocore and asyncio before the app (``zappa.utilities``,
``zappa.asgi``): about a quarter of the package's cold start, for features this API does not
use. This one turns API Gateway events into WSGI requests with apig-wsgi, as Zappa's does
(REST v1 and HTTP v2 events, base64 bodies both ways, repeated headers and query parameters),
keeps the stage in the URLs the app builds when a request came through the stage's own URL,
answers Zappa's keep-warm ping without a request, and hands every other event (``zappa
invoke``, other schedules) to Zappa's handler, imported then. The stage's environment comes
from ``zappa_settings.py``, which Zappa writes into the package, before the app is built: the
app is ``api.wsgi.app`` (zappa_settings.json's ``app_function``), the one Zappa's handler would
use too, so a process has one app whichever handler an event reaches.
"""

from __future__ import annotations

import functools
import importlib
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from apig_wsgi import make_lambda_handler

from headwater.core.logs import configure_logging, get_logger

Handler = Callable[[dict[str, Any], Any], Any]
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
#: The module Zappa writes into the package: the stage's environment, log level, binary support.
SETTINGS_MODULE = "zappa_settings"
#: One line per request (Zappa's handler logged one too; the stack turns on no API Gateway log).
access_log = get_logger("api.access")
#: What Zappa's keep-warm rule invokes (zappa/cli.py: ``handler.keep_warm_callback``).
KEEP_WARM = "keep_warm_callback"


def is_http(event: dict[str, Any]) -> bool:
    """An API Gateway request (REST v1 or ALB: ``httpMethod``; HTTP API v2: ``version``)."""
    return "httpMethod" in event or event.get("version") == "2.0"


def is_keep_warm(event: dict[str, Any]) -> bool:
    """Zappa's keep-warm schedule: its rule's name ends with the callback it names."""
    resources = event.get("resources") or [""]
    return event.get("detail-type") == "Scheduled Event" and resources[0].endswith(KEEP_WARM)


def with_stage_prefix(app: WsgiApp) -> WsgiApp:
    """Requests through the stage's own URL (``/prod/health``) keep ``/prod`` in the app's URLs.

    API Gateway strips the stage from ``path`` but not from ``requestContext.path``; behind a
    custom domain neither carries it, and the app's URLs stay as they are (as Zappa's handler).
    """

    def prefixed(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        context = environ.get("apig_wsgi.request_context") or {}
        stage = context.get("stage")
        if stage and str(context.get("path", "")).startswith(f"/{stage}/"):
            environ["SCRIPT_NAME"] = f"/{stage}"
        return app(environ, start_response)

    return prefixed


def log_request(event: dict[str, Any], context: Any, response: Any, ms: float) -> None:
    """The request's access line: method, path, status, milliseconds, Lambda's request id."""
    http = (event.get("requestContext") or {}).get("http") or {}  # HTTP API v2
    access_log.info(
        "request",
        method=event.get("httpMethod") or http.get("method"),
        path=event.get("path") or event.get("rawPath"),
        status=(response or {}).get("statusCode"),
        ms=round(ms, 3),
        aws_request_id=getattr(context, "aws_request_id", None),
    )


def zappa_handler(event: dict[str, Any], context: Any) -> Any:
    """Zappa's own handler, for the events that are not requests (``zappa invoke``, schedules)."""
    # lazy: it imports boto3 and asyncio; no request needs it, so no cold start pays for it
    from zappa.handler import lambda_handler

    return lambda_handler(event, context)


def create_handler(settings: Any, app: WsgiApp | None = None) -> Handler:
    """The Lambda handler of ``app`` (default: ``api.wsgi.app``, imported after ``settings``).

    ``settings`` is Zappa's settings module (or any object with its ``ENVIRONMENT_VARIABLES``,
    ``LOG_LEVEL`` and ``BINARY_SUPPORT``): its variables are set before the app is built.
    """
    os.environ.update(settings.ENVIRONMENT_VARIABLES)
    configure_logging(settings.LOG_LEVEL or "INFO")  # JSON lines on stderr, as the functions
    if app is None:
        # lazy: api.wsgi builds the app when imported, which must follow the stage's environment
        from api.wsgi import app
    http = make_lambda_handler(with_stage_prefix(app), binary_support=settings.BINARY_SUPPORT)

    def handle(event: dict[str, Any], context: Any) -> Any:
        if is_http(event):
            started = time.perf_counter()
            response = http(event, context)
            log_request(event, context, response, (time.perf_counter() - started) * 1000)
            return response
        if is_keep_warm(event):
            return None  # the app is loaded: the container is warm, nothing to answer
        return zappa_handler(event, context)

    return handle


@functools.cache
def package_handler() -> Handler:
    """This package's handler, built once per process (on the first event, as Zappa's)."""
    return create_handler(importlib.import_module(SETTINGS_MODULE))


def lambda_handler(event: dict[str, Any], context: Any) -> Any:
    """AWS Lambda's entry point: an API Gateway event in, its proxy response out."""
    return package_handler()(event, context)
