"""The use-case contract's optional members: what a use case may leave out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from headwater.core.usecase import OutcomeSpec, outcome_of

OUTCOME = OutcomeSpec(("day",), lambda echo: {"day": echo["day"]}, lambda echo: 0, timedelta(1))


@dataclass(frozen=True)
class Declared:
    name: str = "declared"
    outcome: Any = OUTCOME


@dataclass(frozen=True)
class LeftOut:
    name: str = "left_out"


def test_an_outcome_is_optional() -> None:
    assert outcome_of(Declared()) is OUTCOME
    assert outcome_of(LeftOut()) is None
    assert outcome_of(Declared(outcome=None)) is None


def test_an_outcome_that_is_not_an_outcome_spec_is_refused_naming_the_use_case() -> None:
    with pytest.raises(TypeError, match="use case 'declared': outcome must be an OutcomeSpec"):
        outcome_of(Declared(outcome={"key_columns": ("day",)}))
