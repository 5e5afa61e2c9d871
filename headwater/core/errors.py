"""Errors shared by the core and its adapters, importable without any cloud SDK."""

from __future__ import annotations

from typing import Any

__all__ = ["FunctionFailed"]


class FunctionFailed(RuntimeError):
    """A function invocation ended in an error (its type, message and stack trace are kept).

    Raised by every executor, in-process or remote, so callers handle one type whatever ran
    the function.
    """

    def __init__(self, function: str, error_type: str, message: str, trace: str = "") -> None:
        super().__init__(f"{function} failed: {error_type}: {message}")
        self.function = function
        self.error_type = error_type
        self.message = message
        self.trace = trace

    def __reduce__(self) -> tuple[Any, ...]:
        # Luigi ships a worker's exception to the scheduler process: it must survive pickling.
        return (type(self), (self.function, self.error_type, self.message, self.trace))
