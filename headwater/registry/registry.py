"""The model registry: versions of a model in the lake and one production pointer.

Layout (:mod:`headwater.core.layout`): ``models/<name>/<version>/`` holds what one training
run produced (``metrics.json``, ``lineage.json``, the model files); ``_SUCCESS`` is written
last and a version without it does not exist for the registry.
``models/<name>/PRODUCTION.json`` names the version in production and, newest first, the
ones before it. The pointer only changes through a compare-and-swap, so two promoters racing
can neither both win nor drop a version from the history. ``models/<name>/SHADOW.json``
names the version the API scores beside production on the same requests (recorded, never
returned: shadow scoring), with the checksums of its serving files; it too changes only
through a compare-and-swap, and holds ``"version": null`` once switched off.
``<version>/decision.json`` records why a version was promoted, held, rejected or retired
(:class:`~headwater.registry.gate.DecisionKind`; the gate itself is
:mod:`headwater.registry.gate`); the pointer, not that file, says which version is in
production.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

from headwater.core.layout import (
    DECISION,
    METRICS,
    POINTER,
    POINTERS,
    SERVING_FILES,
    SHADOW,
    SUCCESS,
    model_parts,
)
from headwater.core.layout import LINEAGE as LINEAGE  # re-exported: callers name a version's files
from headwater.core.records import Lineage, RecordError, TrainingMetrics
from headwater.data.lake import Lake, LakeError
from headwater.model.report import refresh_report
from headwater.registry.gate import DecisionKind, Verdict
from headwater.serving.store import (
    ABSENT,
    ProductionPointer,
    ShadowPointer,
    decision_kind,
    is_valid_name,
)

Status = Literal["production", "candidate", "rejected", "retired"]
STATUSES: tuple[Status, ...] = ("production", "candidate", "rejected", "retired")

# How often promote/rollback re-read the pointer after losing a race they may retry.
MAX_SWAP_ATTEMPTS = 20
_VERSION_TIME = "%Y%m%dT%H%M%SZ"


class _Unset:
    """The type of :data:`ANY`."""

    def __repr__(self) -> str:
        return "ANY"


ANY: Final = _Unset()
"""``promote(..., expected=ANY)``: switch whatever production currently is."""
_MISSING: Final = object()


class RegistryError(RuntimeError):
    """A registry operation cannot be done (unknown version, nothing to roll back...)."""


class VersionNotFoundError(RegistryError):
    """The version does not exist or is incomplete (no ``_SUCCESS``)."""


class ConcurrentPromotionError(RegistryError):
    """The production pointer changed since the caller read it."""


class ConcurrentShadowError(RegistryError):
    """The shadow pointer changed since the caller read it."""


class NothingToRollBackError(RegistryError):
    """There is no production version, or none before it."""


@dataclass(frozen=True)
class _Pointer:
    """One of a model's pointers: its file, how it is parsed, its name in messages, and the
    error of a caller whose expectation it no longer meets."""

    file: str
    parse: Callable[[bytes], Any]
    word: str
    error: type[RegistryError]


_PRODUCTION = _Pointer(POINTER, ProductionPointer.from_json, "production", ConcurrentPromotionError)
_SHADOW = _Pointer(SHADOW, ShadowPointer.from_json, "shadow", ConcurrentShadowError)


@dataclass(frozen=True)
class VersionInfo:
    """One complete version: its name, age, status and holdout metrics."""

    version: str
    created_at: datetime | None
    status: Status
    metrics: dict[str, Any] = field(default_factory=dict)
    #: True when the shadow pointer names it (scored beside production, never returned).
    shadow: bool = False


def new_version(now: datetime | None = None, run_id: str | None = None) -> str:
    """Return a version name that sorts by time, e.g. ``20261124T021500Z-ab12cd``."""
    now = now or datetime.now(UTC)
    now = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    suffix = re.sub(r"[^a-z0-9]", "", (run_id or "").lower())[-6:] or uuid.uuid4().hex[:6]
    return f"{now.strftime(_VERSION_TIME)}-{suffix}"


def version_time(version: str) -> datetime | None:
    """Return when a version made by :func:`new_version` was created, None for other names."""
    try:
        return datetime.strptime(version[:16], _VERSION_TIME).replace(tzinfo=UTC)
    except ValueError:
        return None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _check_name(kind: str, name: str) -> str:
    # The store's rule (names become path segments), and a pointer is no version.
    if not is_valid_name(name) or name in POINTERS:
        error = VersionNotFoundError if kind == "version" else RegistryError
        raise error(f"{name!r} is not a valid {kind} name")
    return name


class Registry:
    """The versions of one model in a lake, and which of them is in production."""

    def __init__(self, lake: Lake, name: str) -> None:
        self.lake = lake
        self.name = _check_name("model", name)

    def __repr__(self) -> str:
        return f"Registry({self.lake.uri_of(*model_parts(self.name))!r})"

    # -- versions ---------------------------------------------------------------------
    def is_complete(self, version: str) -> bool:
        """True when ``version`` exists and its ``_SUCCESS`` flag is written."""
        return self.lake.exists(*model_parts(self.name), _check_name("version", version), SUCCESS)

    def versions(self) -> list[VersionInfo]:
        """Return the complete versions, oldest first."""
        pointer, shadow = self.production(), self.shadow()
        names = [
            name
            for name in self.lake.list_dir(*model_parts(self.name))
            if name not in POINTERS and is_valid_name(name) and self.is_complete(name)
        ]
        infos = [self._info(name, pointer, shadow) for name in names]
        oldest = datetime.min.replace(tzinfo=UTC)
        return sorted(infos, key=lambda info: (info.created_at or oldest, info.version))

    def version_with_key(self, training_key: str) -> str | None:
        """The newest complete version whose lineage records ``training_key`` (None: no such)."""
        for info in reversed(self.versions()):
            lineage = self.read_lineage(info.version)
            if lineage is not None and lineage.training_key == training_key:
                return info.version
        return None

    def info(self, version: str) -> VersionInfo:
        """Return one complete version, or raise :class:`VersionNotFoundError`."""
        self._require_complete(version)
        return self._info(version, self.production(), self.shadow())

    def _info(
        self, version: str, pointer: ProductionPointer | None, shadow: ShadowPointer | None = None
    ) -> VersionInfo:
        metrics = self.read_metrics(version, default=TrainingMetrics())
        decision = self.read_json(version, DECISION, default=None)
        return VersionInfo(
            version=version,
            created_at=version_time(version),
            status=_status(version, pointer, decision),
            metrics=dict(metrics.holdout),
            shadow=shadow is not None and shadow.version == version,
        )

    def _require_complete(self, version: str) -> None:
        if self.is_complete(version):
            return
        if self.lake.list_dir(*model_parts(self.name), version):
            raise VersionNotFoundError(
                f"version {version} of model {self.name} is incomplete (no {SUCCESS}): "
                "its training run has not finished or failed"
            )
        raise VersionNotFoundError(
            f"model {self.name} has no version {version} in "
            f"{self.lake.uri_of(*model_parts(self.name))}"
        )

    # -- files of a version -----------------------------------------------------------
    def read_json(self, version: str, name: str, default: Any = _MISSING) -> Any:
        """Read ``<version>/<name>``; return ``default`` when absent (or raise without one)."""
        parts = (
            *model_parts(self.name),
            _check_name("version", version),
            _check_name("file", name),
        )
        try:
            data = self.lake.read_bytes(*parts)
        except LakeError:
            if default is _MISSING:
                raise VersionNotFoundError(f"{self.lake.uri_of(*parts)} does not exist") from None
            return default
        try:
            return json.loads(data)
        except ValueError as exc:
            raise RegistryError(f"{self.lake.uri_of(*parts)} is not valid JSON: {exc}") from None

    def read_metrics(self, version: str, default: Any = _MISSING) -> TrainingMetrics:
        """The version's ``metrics.json``; ``default`` when absent (or raise without one).

        A malformed one raises :class:`RegistryError` naming the file and the field.
        """
        return self._read_record(version, METRICS, TrainingMetrics.from_dict, default)

    def read_lineage(self, version: str) -> Lineage | None:
        """The version's ``lineage.json``; None when absent (malformed: :class:`RegistryError`)."""
        return self._read_record(version, LINEAGE, Lineage.from_dict, None)

    def _read_record(self, version: str, name: str, parse: Any, default: Any) -> Any:
        data = self.read_json(version, name, default=_MISSING if default is _MISSING else None)
        if data is None and default is not _MISSING:
            return default
        where = self.lake.uri_of(*model_parts(self.name), version, name)
        try:
            return parse(data, where)
        except RecordError as exc:
            raise RegistryError(str(exc)) from None

    def write_json(self, version: str, name: str, body: Any) -> None:
        """Write ``body`` as ``<version>/<name>`` atomically."""
        data = json.dumps(body, sort_keys=True, indent=2, allow_nan=False).encode("utf-8")
        self.lake.write_bytes(
            data,
            *model_parts(self.name),
            _check_name("version", version),
            _check_name("file", name),
        )

    def mark_complete(self, version: str) -> None:
        """Write the ``_SUCCESS`` flag: the last step of a training run."""
        self.lake.write_bytes(
            b"", *model_parts(self.name), _check_name("version", version), SUCCESS
        )

    # -- production pointer -----------------------------------------------------------
    def production(self) -> ProductionPointer | None:
        """Return the production pointer, or None when nothing was ever promoted."""
        return self._read(_PRODUCTION)[1]

    def _read(self, pointer: _Pointer) -> tuple[bytes | None, Any]:
        """The pointer's bytes as read and its parsed form (None, None: never written)."""
        try:
            raw = self.lake.read_bytes(*model_parts(self.name), pointer.file)
        except LakeError:
            return None, None
        try:
            return raw, pointer.parse(raw)
        except (ValueError, KeyError, TypeError) as exc:
            where = self.lake.uri_of(*model_parts(self.name), pointer.file)
            raise RegistryError(f"{where} is corrupt: {exc}") from None

    def _swap_pointer(
        self,
        pointer: _Pointer,
        change: Callable[[Any], Any],
        doing: str,
        expected: str | None | _Unset = ANY,
        refusal: Callable[[str | None], str] = str,
    ) -> tuple[Any, Any]:
        """Replace ``pointer`` by ``change(current)`` through a compare-and-swap on what was
        read; returns (the pointer read, the one written: None when ``change`` said nothing
        needs writing).

        A pointer that does not name ``expected`` (the version the caller decided on; None:
        none) is refused with ``pointer.error`` and ``refusal(the version it names)``;
        ``change`` may refuse too, by raising. When another writer swapped in between, the
        pointer is read again, up to :data:`MAX_SWAP_ATTEMPTS` times; then ``pointer.error``
        says so (``doing``: what was attempted, e.g. ``promote v2 of model m``).
        """
        for _ in range(MAX_SWAP_ATTEMPTS):
            raw, current = self._read(pointer)
            named = current.version if current else None
            if expected is not ANY and named != expected:
                raise pointer.error(refusal(named))
            new = change(current)
            if new is None:
                return current, None
            parts = model_parts(self.name)
            if self.lake.compare_and_swap(*parts, pointer.file, expected=raw, new=new.to_json()):
                return current, new
        raise pointer.error(
            f"cannot {doing}: the {pointer.word} pointer kept changing "
            f"({MAX_SWAP_ATTEMPTS} attempts)"
        )

    def promote(
        self,
        version: str,
        reason: str,
        expected: str | None | _Unset = ANY,
        comparison: Mapping[str, Any] | None = None,
        live: Mapping[str, Any] | None = None,
    ) -> ProductionPointer:
        """Make ``version`` the production version; the previous one heads the history.

        ``expected`` is the production version the caller's decision was based on (None:
        there was none). If production changed meanwhile, raise
        :class:`ConcurrentPromotionError` instead of overriding the other decision. With
        the default :data:`ANY`, a lost race is retried on the new pointer. ``comparison``
        (the gate's numbers) is recorded in ``decision.json``, and so is ``live`` (the live
        shadow-versus-production comparison the promotion cites, or declines to).
        """
        self._require_complete(version)

        doing = f"promote {version} of model {self.name}"

        def change(current: ProductionPointer | None) -> ProductionPointer | None:
            if current is not None and current.version == version:
                return None
            history: tuple[str, ...] = ()
            if current is not None:
                history = (current.version, *(v for v in current.history if v != version))
            checksums = self._checksums(version, history, current)
            return ProductionPointer(version, _now(), reason, history, checksums)

        def refusal(named: str | None) -> str:
            return (
                f"cannot {doing}: production is {named or 'empty'}, not {expected or 'empty'} "
                "as expected (another promotion happened meanwhile)"
            )

        current, pointer = self._swap_pointer(_PRODUCTION, change, doing, expected, refusal)
        if pointer is None:
            return current  # already in production: nothing recorded
        extra = {"comparison": dict(comparison)} if comparison else {}
        if live:
            extra["live"] = dict(live)
        replaced = current.version if current else None
        self._record(version, DecisionKind.PROMOTED, reason, replaced=replaced, **extra)
        return pointer

    def reject(
        self, version: str, reason: str, comparison: Mapping[str, Any] | None = None
    ) -> None:
        """Record that ``version`` must not go to production (and the gate's numbers)."""
        self._require_complete(version)
        current = self.production()
        if current is not None and current.version == version:
            raise RegistryError(
                f"version {version} of model {self.name} is in production: promote another "
                "version or roll back before rejecting it"
            )
        self._record(
            version,
            DecisionKind.REJECTED,
            reason,
            **({"comparison": dict(comparison)} if comparison else {}),
        )

    def hold(self, version: str, reason: str, comparison: Mapping[str, Any] | None = None) -> None:
        """Record the gate's verdict on an exploratory run's version; production is untouched.

        The version stays a candidate: it can still be promoted by hand.
        """
        self._require_complete(version)
        self._record(
            version,
            DecisionKind.HELD,
            reason,
            **({"comparison": dict(comparison)} if comparison else {}),
        )

    def record_verdict(
        self, version: str, verdict: Verdict, expected: str | None | _Unset = ANY
    ) -> None:
        """Record the gate's verdict: promote (from ``expected``), reject or hold ``version``."""
        if verdict.kind == DecisionKind.PROMOTED:
            self.promote(version, verdict.reason, expected=expected, comparison=verdict.comparison)
        elif verdict.kind == DecisionKind.HELD:
            self.hold(version, verdict.reason, verdict.comparison)
        elif verdict.kind == DecisionKind.REJECTED:
            self.reject(version, verdict.reason, verdict.comparison)
        else:
            raise RegistryError(f"the gate does not record {verdict.kind} (a rollback does)")

    def rollback(
        self, reason: str = "rollback", expected: str | None | _Unset = ANY
    ) -> ProductionPointer:
        """Put the previous production version back; the current one becomes retired.

        History entries rejected or deleted since they were in production are skipped.
        """

        def change(current: ProductionPointer | None) -> ProductionPointer:
            if current is None:
                raise NothingToRollBackError(f"model {self.name} has no production version")
            # Its own check of ``expected``, after that one: no production is nothing to roll
            # back, whatever the caller expected.
            if expected is not ANY and current.version != expected:
                raise ConcurrentPromotionError(
                    f"cannot roll back model {self.name}: production is {current.version}, "
                    f"not {expected or 'empty'} as expected"
                )
            usable = [i for i, v in enumerate(current.history) if self._can_return_to(v)]
            if not usable:
                raise NothingToRollBackError(
                    f"model {self.name} has no earlier production version to roll back to "
                    f"(production is {current.version})"
                )
            index = usable[0]
            target = current.history[index]
            history = current.history[index + 1 :]
            checksums = self._checksums(target, history, current)
            return ProductionPointer(target, _now(), reason, history, checksums)

        current, pointer = self._swap_pointer(_PRODUCTION, change, f"roll back model {self.name}")
        self._record(current.version, DecisionKind.RETIRED, reason, replaced_by=pointer.version)
        return pointer

    # -- shadow pointer ---------------------------------------------------------------
    def shadow(self) -> ShadowPointer | None:
        """Return the shadow pointer, or None when no shadow is set (never, or switched off)."""
        pointer = self._read(_SHADOW)[1]
        return pointer if pointer is not None and pointer.version is not None else None

    def set_shadow(
        self,
        version: str,
        reason: str = "set by hand",
        expected: str | None | _Unset = ANY,
    ) -> ShadowPointer:
        """Make ``version`` the shadow: the API scores it beside production and records both.

        The version must be complete and not the production one. ``expected`` is the shadow
        the caller's decision was based on (None: none); if the pointer changed meanwhile,
        raise :class:`ConcurrentShadowError`. With the default :data:`ANY`, a lost race is
        retried. The checksums of its serving files are taken now: the API verifies them.
        """
        self._require_complete(version)
        production = self.production()
        if production is not None and production.version == version:
            raise RegistryError(
                f"version {version} of model {self.name} is in production: a shadow is scored "
                "beside production, so it must be another version"
            )

        def change(current: ShadowPointer | None) -> ShadowPointer | None:
            if current is not None and current.version == version:
                return None
            checksums = {name: self._sha256(version, name) for name in SERVING_FILES}
            return ShadowPointer(version, _now(), reason, checksums)

        def refusal(named: str | None) -> str:
            return (
                f"cannot set the shadow of model {self.name} to {version}: the shadow is "
                f"{named or 'off'}, not {expected or 'off'} as expected (another change "
                "happened meanwhile)"
            )

        doing = f"set the shadow of model {self.name}"
        current, pointer = self._swap_pointer(_SHADOW, change, doing, expected, refusal)
        return pointer or current  # None written: it already is the shadow

    def clear_shadow(
        self, reason: str = "switched off by hand", expected: str | None | _Unset = ANY
    ) -> str | None:
        """Switch shadow scoring off; return the version that was the shadow (None: none was).

        ``expected`` as in :meth:`set_shadow`: a shadow changed meanwhile is not switched off.
        """

        doing = f"switch off the shadow of model {self.name}"

        def change(current: ShadowPointer | None) -> ShadowPointer | None:
            on = current is not None and current.version is not None
            return ShadowPointer(None, _now(), reason) if on else None

        def refusal(named: str | None) -> str:
            return f"cannot {doing}: it is {named or 'off'}, not {expected or 'off'} as expected"

        current, pointer = self._swap_pointer(_SHADOW, change, doing, expected, refusal)
        return current.version if pointer is not None else None

    def _checksums(
        self, version: str, history: Sequence[str], current: ProductionPointer | None
    ) -> dict[str, dict[str, str]]:
        """The serving files' checksums of a new pointer: those recorded when each version was
        first promoted, taken from the files for a version that has none recorded (a missing
        file recorded :data:`~headwater.serving.store.ABSENT`)."""
        known = current.checksums if current is not None else {}
        out = {name: known[name] for name in (version, *history) if name in known}
        if version not in out:
            out[version] = {name: self._sha256(version, name) for name in SERVING_FILES}
        return out

    def _sha256(self, version: str, filename: str) -> str:
        """A file's sha256, or ABSENT: serving refuses the version, and the file if written
        later."""
        try:
            data = self.lake.read_bytes(*model_parts(self.name), version, filename)
        except LakeError:
            return ABSENT
        return hashlib.sha256(data).hexdigest()

    def _can_return_to(self, version: str) -> bool:
        if not (is_valid_name(version) and self.is_complete(version)):
            return False
        decision = self.read_json(version, DECISION, default=None)
        return decision_kind(decision) != DecisionKind.REJECTED

    def _record(self, version: str, decision: DecisionKind, reason: str, **extra: Any) -> None:
        """Write ``decision.json``, keeping earlier decisions newest first under ``previous``."""
        earlier = self.read_json(version, DECISION, default=None)
        previous: list[Any] = []
        if isinstance(earlier, dict):
            previous = [
                {k: v for k, v in earlier.items() if k != "previous"},
                *earlier.get("previous", []),
            ]
        body = {"decision": str(decision), "reason": reason, "decided_at": _now(), **extra}
        self.write_json(version, DECISION, {**body, "previous": previous})
        # The version's report shows the latest decision (it was written before any).
        refresh_report(self.lake, self.name, version, body)


def _status(version: str, pointer: ProductionPointer | None, decision: Any) -> Status:
    """Derive a version's status; the pointer outranks decision.json (written after it)."""
    if pointer is not None and pointer.version == version:
        return "production"
    kind = decision_kind(decision)
    if kind == DecisionKind.REJECTED:
        return "rejected"
    if kind in (DecisionKind.RETIRED, DecisionKind.PROMOTED):
        return "retired"
    if pointer is not None and version in pointer.history:
        return "retired"
    return "candidate"
