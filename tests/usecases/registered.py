"""The registered use cases, found rather than named: what the conformance suite runs and
whose words the platform may not contain.

- enabled: the use cases the ``local`` stage enables (``config/local.toml``, or the stage
  in ``HEADWATER_CONFIG_DIR``), with their configured tables;
- test-only: every ``tests/usecases/*/usecase.toml``, the ``[usecase.<name>]`` table of a
  stage file whose module lives beside it;
- packaged: every package under ``headwater/usecases/`` (for the name check only).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from headwater.core.config import load_settings
from headwater.core.usecase import PACKAGE, ConformanceSpec, UseCase, get_usecase

REPO = Path(__file__).resolve().parents[2]
#: The stage whose enabled use cases the suite runs (its directory: HEADWATER_CONFIG_DIR).
STAGE = "local"


@dataclass(frozen=True)
class Candidate:
    """A use case the suite runs: its ``[usecase.<name>]`` table and where its module lives."""

    name: str
    table: Mapping[str, Any]  # module and sources, as a stage file writes them
    directory: Path | None = None  # a test-only use case's own directory (its module's home)

    def usecase(self) -> UseCase:
        """The use case itself (a test-only one's directory on ``sys.path`` while importing)."""
        if self.directory is None:
            return get_usecase(self.name, self.table.get("module"))
        with pytest.MonkeyPatch.context() as monkeypatch:
            monkeypatch.syspath_prepend(str(self.directory))
            return get_usecase(self.name, self.table.get("module"))

    def conformance(self) -> ConformanceSpec:
        """The range the use case declares for this suite (refused when it declares none)."""
        spec = getattr(self.usecase(), "conformance", None)
        assert isinstance(spec, ConformanceSpec), (
            f"use case {self.name!r} declares no conformance range: give its USECASE a member "
            "conformance = ConformanceSpec(start, end) (docs/adding-a-use-case.md, section 5)"
        )
        return spec


def enabled() -> dict[str, Candidate]:
    """The use cases the ``local`` stage enables, with their configured tables."""
    settings = load_settings(STAGE)
    found = {}
    for name in settings.usecases:
        config = settings.usecase_config(name)
        sources = {s: {"kind": c.kind, **c.options()} for s, c in config.sources.items()}
        found[name] = Candidate(name, {"module": config.module, "sources": sources})
    return found


def only_in_tests() -> dict[str, Candidate]:
    """Use cases declared by ``tests/usecases/*/usecase.toml``."""
    found = {}
    for path in sorted(Path(__file__).parent.glob("*/usecase.toml")):
        body = tomllib.loads(path.read_text(encoding="utf-8"))
        for name, table in body["usecase"].items():
            found[name] = Candidate(name, table, path.parent)
    return found


def packaged() -> dict[str, Candidate]:
    """The use-case packages under ``headwater/usecases/``, enabled or not."""
    root = REPO.joinpath(*PACKAGE.split("."))
    return {
        path.parent.name: Candidate(path.parent.name, {})
        for path in sorted(root.glob("*/__init__.py"))
    }


def vocabulary(candidates: Mapping[str, Candidate]) -> tuple[str, ...]:
    """Every use case's words: its name and the vocabulary its conformance spec declares."""
    words = set(candidates)
    for candidate in candidates.values():
        spec = getattr(candidate.usecase(), "conformance", None)
        words.update(spec.vocabulary if spec is not None else ())
    return tuple(sorted(words, key=str.lower))


def words_pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    """Any of ``words`` where a word starts: ``trip`` finds ``Trips`` and ``raw_trip``.

    Any case; a letter before it means another word (``trip`` is not in ``strip``).
    """
    alternatives = "|".join(re.escape(word) for word in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<![a-z])(?:{alternatives})", re.IGNORECASE)
