"""Executors run a function (extract, clean) on an event: in-process locally, Lambda on AWS.

The core library names no deployable: the in-process handlers are passed in by the layer
that wires them (``luigi_tasks``), as callables keyed by function kind.
"""

from __future__ import annotations

import importlib
import json
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from headwater import aws
from headwater.core.config import Settings
from headwater.core.errors import FunctionFailed  # raised by every executor, local or Lambda

#: A Lambda-style handler: ``(event, context) -> JSON-able result``.
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


class Executor(Protocol):
    """Runs a function of a given kind on a JSON event and returns its JSON result."""

    def invoke(self, kind: str, event: Mapping[str, Any]) -> dict[str, Any]:
        """Invoke the function of ``kind`` synchronously."""
        ...


@dataclass
class LocalContext:
    """The parts of the Lambda context object that handlers use."""

    function_name: str
    aws_request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    memory_limit_in_mb: int = 1024
    timeout_seconds: float = 900.0
    _started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the (simulated) timeout."""
        left = self.timeout_seconds - (time.monotonic() - self._started)
        return max(0, int(left * 1000))


def resolve_handler(spec: str) -> Handler:
    """Import a ``module:function`` (or ``module.function``) handler string."""
    module_name, _, attr = spec.replace(":", ".").rpartition(".")
    if not module_name:
        raise ImportError(f"handler {spec!r} names no module: expected 'module:function'")
    handler = getattr(importlib.import_module(module_name), attr, None)
    if not callable(handler):
        raise ImportError(f"handler {spec!r} does not name a function")
    return handler


class InProcessExecutor:
    """Runs handlers in this process; the event and the result round-trip through JSON."""

    def __init__(self, handlers: Mapping[str, Handler]) -> None:
        self._handlers = dict(handlers)

    def invoke(self, kind: str, event: Mapping[str, Any]) -> dict[str, Any]:
        """Invoke the handler of ``kind`` as Lambda would: JSON in, JSON out."""
        handler = self._handlers[kind]
        payload = json.loads(json.dumps(event, allow_nan=False))
        try:
            result = handler(payload, LocalContext(function_name=kind))
        except Exception as exc:
            raise FunctionFailed(
                kind, type(exc).__name__, str(exc), traceback.format_exc()
            ) from exc
        try:
            return json.loads(json.dumps(result, allow_nan=False))
        except (TypeError, ValueError) as exc:
            # What the Lambda runtime reports for an answer it cannot serialise.
            raise FunctionFailed(kind, "Runtime.MarshalError", str(exc)) from exc


class LambdaFunctions:
    """Invokes the deployed Lambda functions by kind (names come from configuration)."""

    def __init__(self, settings: Settings, lambda_executor: Any = None) -> None:
        self._names = {
            "extract": settings.executor.extract_function,
            "clean": settings.executor.clean_function,
        }
        self._lambda = lambda_executor or aws.LambdaExecutor(region=settings.aws.region)

    def invoke(self, kind: str, event: Mapping[str, Any]) -> dict[str, Any]:
        """Invoke the deployed function of ``kind`` synchronously."""
        return self._lambda.invoke(self._names[kind], dict(event))


def create_executor(settings: Settings, handlers: Mapping[str, Handler]) -> Executor:
    """Return the executor the stage asks for; ``handlers`` run in-process (by kind)."""
    if settings.executor.kind == "lambda":
        return LambdaFunctions(settings)
    return InProcessExecutor(handlers)
