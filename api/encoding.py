"""The JSON of every answer: standard JSON only, so NaN and ±Infinity can never be sent."""

from __future__ import annotations

from typing import Any

from flask.json.provider import DefaultJSONProvider


class FiniteJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, refusing non-finite numbers (Python would write ``NaN``).

    A non-finite number in an answer is a bug: it becomes a logged JSON 500, never a
    200 whose body a standard JSON parser rejects.
    """

    sort_keys = False  # keep the documented field order

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        """Serialize ``obj``; raise ValueError on NaN or an infinity."""
        kwargs.setdefault("allow_nan", False)
        return super().dumps(obj, **kwargs)
