"""Checks of a run's configuration before any work: each problem names key, value, next step."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from headwater.core import layout
from headwater.core.config import Settings
from headwater.core.partitions import partitions_between
from headwater.core.ranges import Ranges, default_holdout, splits
from headwater.core.usecase import PACKAGE
from headwater.data.lake import SCHEMES
from headwater.data.pipeline import CLEAN, lake_for, usecase_of
from headwater.data.sources import UnknownSourceKind, get_kind, known_kinds
from headwater.data.sources.http import missing_credential_variable, missing_variable
from headwater.registry.gate import GATE_METRICS

CONFIG_DOC = "docs/configuration.md"


@dataclass(frozen=True)
class Problem:
    """One configuration value a run cannot work with."""

    key: str  # dotted, as in the stage file: usecase.<name>.gate.metric
    value: Any
    reason: str
    fix: str  # the next step

    def __str__(self) -> str:
        return f"{self.key} = {self.value!r}: {self.reason}; {self.fix}"


def check_run(
    settings: Settings,
    usecases: Sequence[str],
    ranges: Ranges | None = None,
    *,
    train: bool = True,
) -> list[Problem]:
    """Every problem that would stop a run of ``usecases`` (over ``ranges``), found up front.

    Checks the lake's scheme; per use case, that it imports, that its time zone exists,
    that its declared sources and references are configured and each configured source
    validates against its kind; when ``train``, the gate metric and, when ``ranges`` has
    the use case's range, that it splits into days to train on and days to hold out (at
    least two days, and ``holdout_from`` after the first and no later than the last).
    """
    problems = list(_lake(settings))
    for name in usecases:
        problems += _usecase(settings, name, (ranges or {}).get(name), train)
    return problems


def _lake(settings: Settings) -> Iterator[Problem]:
    uri = settings.lake.uri
    parsed = urlparse(uri)
    fix = "use file://PATH or s3://BUCKET/PREFIX"
    if parsed.scheme not in SCHEMES:
        yield Problem("lake.uri", uri, f"unsupported lake scheme {parsed.scheme!r}", fix)
    elif parsed.scheme == "s3" and not parsed.netloc:
        yield Problem("lake.uri", uri, "names no bucket", fix)


def _usecase(
    settings: Settings, name: str, span: tuple[date, date] | None, train: bool
) -> list[Problem]:
    config = settings.usecase_config(name)
    key = f"usecase.{name}"
    # The use case first: loading it registers the source kinds it brings (source_kinds).
    try:
        case = usecase_of(settings, name)
    except Exception as exc:  # any import failure: the message is the use case's own
        module = config.module or f"{PACKAGE}.{name}"
        fix = f"add the package headwater/usecases/{name}/ or set {key}.module"
        failed = Problem(f"{key}.module", module, f"does not load: {exc}", fix)
        return [failed, *_configured(settings, name, span, train)]
    problems = _configured(settings, name, span, train)
    timezone = config.timezone or case.timezone
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        where = f"{key}.timezone" if config.timezone else f"{key} (the use case's own zone)"
        fix = "use an IANA zone name such as America/New_York or Europe/Paris"
        problems.append(Problem(where, timezone, "is not a known time zone", fix))
    for source in (*case.sources, *case.references):
        if source not in config.sources:
            problems.append(
                Problem(
                    f"{key}.sources.{source}",
                    None,
                    f"use case {name!r} reads source {source!r}, which is not configured",
                    f"add a [{key}.sources.{source}] table with its kind and keys ({CONFIG_DOC})",
                )
            )
    return problems


def _configured(
    settings: Settings, name: str, span: tuple[date, date] | None, train: bool
) -> list[Problem]:
    """The problems of a use case's own configuration: sources, then gate and holdout."""
    problems = list(_sources(settings, name))
    if train:
        problems += _gate(settings, name)
        problems += _holdout(settings, name, span)
    return problems


def _sources(settings: Settings, name: str) -> Iterator[Problem]:
    for source, config in settings.usecase_config(name).sources.items():
        key = f"usecase.{name}.sources.{source}"
        try:
            kind = get_kind(config.kind)
        except UnknownSourceKind as exc:
            fix = f"use one of the known kinds: {', '.join(known_kinds())}"
            yield Problem(f"{key}.kind", config.kind, str(exc), fix)
            continue
        try:
            options = kind.Config.model_validate(config.options())
        except ValidationError as exc:
            for error in exc.errors():
                field = ".".join(str(part) for part in error["loc"])
                # A credential's keys are not echoed: a secret written there would be shown.
                shown = error.get("input") if field else config.options()
                if error["loc"][:1] == ("auth",):
                    shown = "***"
                elif not field and "auth" in shown:
                    shown = {**shown, "auth": "***"}
                yield Problem(
                    f"{key}.{field}" if field else key,
                    shown,
                    error["msg"],
                    f"see the keys of kind {config.kind!r} in {CONFIG_DOC}",
                )
            continue
        if variable := missing_credential_variable(options):
            # Found before any partition: every extraction of the source would fail on it.
            reason, fix = missing_variable(options.auth, variable)  # type: ignore[attr-defined]
            yield Problem(f"{key}.auth.value", f"env:{variable}", reason, fix)


def _gate(settings: Settings, name: str) -> Iterator[Problem]:
    metric = settings.usecase_config(name).gate.metric
    if metric not in GATE_METRICS:
        yield Problem(
            f"usecase.{name}.gate.metric",
            metric,
            "is not a metric the gate compares",
            f"use one of: {', '.join(GATE_METRICS)}",
        )


def _holdout(settings: Settings, name: str, span: tuple[date, date] | None) -> Iterator[Problem]:
    text = settings.usecase_config(name).holdout_from
    key = f"usecase.{name}.holdout_from"
    holdout = None
    if text is not None:
        try:
            holdout = date.fromisoformat(text)
        except ValueError:
            yield Problem(key, text, "is not a date", "write it as YYYY-MM-DD")
            return
    if span is None:
        return
    first, last = span
    if not splits(first, last, default_holdout(first, last)):  # no date splits it
        days = (last - first).days + 1
        yield Problem(
            f"usecase.{name}",
            f"{first}..{last}",
            f"the run's range has {days} day: too short to split into days to train on and "
            "days to hold out",
            f"run a range of at least 2 days (--start and --end, or usecase.{name}.start and "
            "end), or stop before training (--until clean)",
        )
    elif holdout is not None and not splits(first, last, holdout):
        yield Problem(
            key,
            text,
            f"is outside the run's range {first}..{last} (training needs days before it, "
            "the holdout days from it on)",
            f"set it after {first} and no later than {last}, or remove it to hold out "
            "the last sixth of the range",
        )


class NotEnoughData(ValueError):
    """A use case's range holds too few clean rows to train on."""


def check_training_rows(settings: Settings, usecase: str, first: date, last: date) -> int:
    """The clean rows of ``usecase`` in ``first..last``; raise when fewer than its minimum.

    Read from the published clean partitions' manifests (a missing one counts 0), so a
    range with no data is refused before any job starts, in one line naming the use case,
    the range, the rows found and ``usecase.<name>.min_training_rows``.
    """
    lake = lake_for(settings)
    dataset = layout.dataset(usecase, usecase_of(settings, usecase).clean_dataset)
    rows = 0
    for part in partitions_between(first, last, settings.partitioning.grain):
        manifest = lake.manifest(CLEAN, dataset, part.key)
        rows += manifest.rows if manifest is not None else 0
    needed = settings.usecase_config(usecase).min_training_rows
    if rows < needed:
        raise NotEnoughData(
            f"use case {usecase!r} has {rows:,} clean rows in {first}..{last}, fewer than "
            f"the {needed:,} needed to train (usecase.{usecase}.min_training_rows)"
        )
    return rows
