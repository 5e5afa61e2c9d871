"""Fixtures of the core library's tests, and of the use cases' own below usecases/."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def fake_secrets(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Replace the AWS secret lookup; record what was asked."""
    from headwater import aws

    calls: list[tuple[str, str | None]] = []
    secrets: dict[str, str] = {}

    def resolve_secret(reference: str, region: str | None = None) -> str:
        calls.append((reference, region))
        return secrets[reference]

    monkeypatch.setattr(aws, "resolve_secret", resolve_secret)
    return {"calls": calls, "secrets": secrets}
