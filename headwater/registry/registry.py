"""The model registry: versions of a model in the lake, one production pointer, and the gate.

Layout (:mod:`headwater.core.layout`): ``models/<name>/<version>/`` holds what one training run
produced (``metrics.json``, ``lineage.json``, the model files); ``_SUCCESS`` is written last
and a version without it does not exist for the registry. ``models/<name>/PRODUCTION.json``
names the version in production and, newest first, the ones before it. The pointer only
changes through a compare-and-swap, so two promoters racing can neither both win nor drop a
version from the history. ``<version>/decision.json`` records why a version was promoted,
rejected or retired; the pointer, not that file, says which version is in production.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, Literal

from headwater.core.layout import DECISION, METRICS, POINTER, SERVING_FILES, SUCCESS, model_parts
from headwater.core.layout import LINEAGE as LINEAGE  # re-exported: callers name a version's files
from headwater.data.lake import Lake, LakeError
from headwater.model.comparison import Interval, signed
from headwater.model.evaluation import METRIC_NAMES, SMALLER_IS_BETTER
from headwater.serving.store import ABSENT, ProductionPointer, decision_kind

Status = Literal["production", "candidate", "rejected", "retired"]
STATUSES: tuple[Status, ...] = ("production", "candidate", "rejected", "retired")

# How often promote/rollback re-read the pointer after losing a race they may retry.
MAX_SWAP_ATTEMPTS = 20
_VERSION_TIME = "%Y%m%dT%H%M%SZ"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# Metric differences closer than this to the margin count as equal to it (float noise).
_TOLERANCE = 1e-9
#: The holdout metrics the gate can compare (``usecase.<name>.gate.metric``).
GATE_METRICS: tuple[str, ...] = ("auc_roc", "auc_pr", "log_loss", "brier")
#: Gate metrics where the smaller value is the better model (losses).
LOWER_IS_BETTER = SMALLER_IS_BETTER & frozenset(GATE_METRICS)


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


class NothingToRollBackError(RegistryError):
    """There is no production version, or none before it."""


@dataclass(frozen=True)
class VersionInfo:
    """One complete version: its name, age, status and holdout metrics."""

    version: str
    created_at: datetime | None
    status: Status
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """The gate's verdict on a candidate, with a sentence a human can act on.

    ``comparison`` holds the numbers behind it (point gain, its interval, the margin), as
    recorded in ``decision.json``; empty when there was nothing to compare with.
    """

    promote: bool
    reason: str
    comparison: dict[str, Any] = field(default_factory=dict)


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
    # Names become path segments: refuse anything that could climb out of the model's folder.
    if not _NAME.fullmatch(name) or name == POINTER:
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
        pointer = self.production()
        names = [
            name
            for name in self.lake.list_dir(*model_parts(self.name))
            if name != POINTER and _NAME.fullmatch(name) and self.is_complete(name)
        ]
        infos = [self._info(name, pointer) for name in names]
        oldest = datetime.min.replace(tzinfo=UTC)
        return sorted(infos, key=lambda info: (info.created_at or oldest, info.version))

    def version_with_key(self, training_key: str) -> str | None:
        """The newest complete version whose lineage records ``training_key`` (None: no such)."""
        for info in reversed(self.versions()):
            lineage = self.read_json(info.version, LINEAGE, default=None)
            if isinstance(lineage, dict) and lineage.get("training_key") == training_key:
                return info.version
        return None

    def info(self, version: str) -> VersionInfo:
        """Return one complete version, or raise :class:`VersionNotFoundError`."""
        self._require_complete(version)
        return self._info(version, self.production())

    def _info(self, version: str, pointer: ProductionPointer | None) -> VersionInfo:
        metrics = self.read_json(version, METRICS, default=None)
        holdout = metrics.get("holdout") if isinstance(metrics, dict) else None
        decision = self.read_json(version, DECISION, default=None)
        return VersionInfo(
            version=version,
            created_at=version_time(version),
            status=_status(version, pointer, decision),
            metrics=dict(holdout) if isinstance(holdout, dict) else {},
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
        return self._read_pointer()[1]

    def _read_pointer(self) -> tuple[bytes | None, ProductionPointer | None]:
        try:
            raw = self.lake.read_bytes(*model_parts(self.name), POINTER)
        except LakeError:
            return None, None
        try:
            return raw, ProductionPointer.from_json(raw)
        except (ValueError, KeyError, TypeError) as exc:
            where = self.lake.uri_of(*model_parts(self.name), POINTER)
            raise RegistryError(f"{where} is corrupt: {exc}") from None

    def _swap(self, raw: bytes | None, pointer: ProductionPointer) -> bool:
        return self.lake.compare_and_swap(
            *model_parts(self.name), POINTER, expected=raw, new=pointer.to_json()
        )

    def promote(
        self,
        version: str,
        reason: str,
        expected: str | None | _Unset = ANY,
        comparison: Mapping[str, Any] | None = None,
    ) -> ProductionPointer:
        """Make ``version`` the production version; the previous one heads the history.

        ``expected`` is the production version the caller's decision was based on (None:
        there was none). If production changed meanwhile, raise
        :class:`ConcurrentPromotionError` instead of overriding the other decision. With
        the default :data:`ANY`, a lost race is retried on the new pointer. ``comparison``
        (the gate's numbers) is recorded in ``decision.json``.
        """
        self._require_complete(version)
        for _ in range(MAX_SWAP_ATTEMPTS):
            raw, current = self._read_pointer()
            current_version = current.version if current else None
            if expected is not ANY and current_version != expected:
                raise ConcurrentPromotionError(
                    f"cannot promote {version} of model {self.name}: production is "
                    f"{current_version or 'empty'}, not {expected or 'empty'} as expected "
                    "(another promotion happened meanwhile)"
                )
            if current is not None and current.version == version:
                return current
            history: tuple[str, ...] = ()
            if current is not None:
                history = (current.version, *(v for v in current.history if v != version))
            checksums = self._checksums(version, history, current)
            pointer = ProductionPointer(version, _now(), reason, history, checksums)
            if self._swap(raw, pointer):
                extra = {"comparison": dict(comparison)} if comparison else {}
                self._record(version, "promoted", reason, replaced=current_version, **extra)
                return pointer
        raise ConcurrentPromotionError(
            f"cannot promote {version} of model {self.name}: the production pointer kept "
            f"changing ({MAX_SWAP_ATTEMPTS} attempts)"
        )

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
            version, "rejected", reason, **({"comparison": dict(comparison)} if comparison else {})
        )

    def hold(self, version: str, reason: str, comparison: Mapping[str, Any] | None = None) -> None:
        """Record the gate's verdict on an exploratory run's version; production is untouched.

        The version stays a candidate: it can still be promoted by hand.
        """
        self._require_complete(version)
        self._record(
            version, "held", reason, **({"comparison": dict(comparison)} if comparison else {})
        )

    def rollback(
        self, reason: str = "rollback", expected: str | None | _Unset = ANY
    ) -> ProductionPointer:
        """Put the previous production version back; the current one becomes retired.

        History entries rejected or deleted since they were in production are skipped.
        """
        for _ in range(MAX_SWAP_ATTEMPTS):
            raw, current = self._read_pointer()
            if current is None:
                raise NothingToRollBackError(f"model {self.name} has no production version")
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
            pointer = ProductionPointer(target, _now(), reason, history, checksums)
            if self._swap(raw, pointer):
                self._record(current.version, "retired", reason, replaced_by=target)
                return pointer
        raise ConcurrentPromotionError(
            f"cannot roll back model {self.name}: the production pointer kept changing "
            f"({MAX_SWAP_ATTEMPTS} attempts)"
        )

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
        if not (_NAME.fullmatch(version) and self.is_complete(version)):
            return False
        decision = self.read_json(version, DECISION, default=None)
        return decision_kind(decision) != "rejected"

    def _record(self, version: str, decision: str, reason: str, **extra: Any) -> None:
        """Write ``decision.json``, keeping earlier decisions newest first under ``previous``."""
        earlier = self.read_json(version, DECISION, default=None)
        previous: list[Any] = []
        if isinstance(earlier, dict):
            previous = [
                {k: v for k, v in earlier.items() if k != "previous"},
                *earlier.get("previous", []),
            ]
        body = {"decision": decision, "reason": reason, "decided_at": _now(), **extra}
        self.write_json(version, DECISION, {**body, "previous": previous})
        # The version's report shows the latest decision (it was written before any).
        from headwater.model.report import refresh_report

        refresh_report(self.lake, self.name, version, body)


def _status(version: str, pointer: ProductionPointer | None, decision: Any) -> Status:
    """Derive a version's status; the pointer outranks decision.json (written after it)."""
    if pointer is not None and pointer.version == version:
        return "production"
    kind = decision_kind(decision)
    if kind == "rejected":
        return "rejected"
    if kind in ("retired", "promoted") or (pointer is not None and version in pointer.history):
        return "retired"
    return "candidate"


# -- the gate -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingWindow:
    """A version's dates, from its lineage.

    It trained on ``start..holdout_from - 1`` and was held out on ``holdout_from..end``.
    """

    start: date
    end: date
    holdout_from: date

    @property
    def train_days(self) -> int:
        """Calendar days of the training window."""
        return (self.holdout_from - self.start).days

    @property
    def last_trained(self) -> date:
        """The last day the version trained on."""
        return self.holdout_from - timedelta(days=1)

    @classmethod
    def of(cls, lineage: Mapping[str, Any] | None) -> TrainingWindow | None:
        """Read ``date_range`` (``start..end``) and ``holdout_from``; None when absent or bad."""
        if not isinstance(lineage, Mapping):
            return None
        try:
            first, last = str(lineage["date_range"]).split("..")
            return cls(
                date.fromisoformat(first),
                date.fromisoformat(last),
                date.fromisoformat(str(lineage["holdout_from"])),
            )
        except (KeyError, ValueError):
            return None


def comparison_problems(
    candidate: TrainingWindow | None,
    production: TrainingWindow | None,
    *,
    production_version: str,
    holdout_rows: int,
    holdout_days: int,
    min_rows: int = 1000,
    min_days: int = 7,
    min_window_ratio: float = 0.5,
    allow_shorter_window: bool = False,
    no_interval: str | None = None,
) -> list[str]:
    """Why candidate and production cannot be compared fairly on the candidate's holdout.

    Both were scored on the same holdout rows; the comparison is refused when that holdout
    is too small (``min_rows``, ``min_days``), when production trained on any of its days
    (production would be graded on what it has seen), or when the candidate trained on a
    much shorter window than production (``min_window_ratio``, unless
    ``allow_shorter_window``), or when the training job could put no confidence interval
    on the gain (``no_interval``, its reason: say, too few holdout days). An empty list:
    the comparison is fair.
    """
    problems = []
    if no_interval:
        problems.append(f"no confidence interval on the gain: {no_interval}")
    if holdout_days < min_days:
        problems.append(
            f"the holdout has {holdout_days} days, fewer than the {min_days} required "
            "(gate.min_holdout_days)"
        )
    if holdout_rows < min_rows:
        problems.append(
            f"the holdout has {holdout_rows} rows ({holdout_rows / max(holdout_days, 1):.1f} a day "
            f"over {holdout_days} days), fewer than the {min_rows} required "
            "(gate.min_holdout_rows: set it to fit the use case's grain)"
        )
    if candidate is None or production is None:
        whose = "candidate" if candidate is None else f"production {production_version}"
        problems.append(f"the training window of {whose} is unknown (no lineage.json dates)")
        return problems
    if candidate.holdout_from <= production.last_trained and candidate.end >= production.start:
        problems.append(
            f"the holdout {candidate.holdout_from}..{candidate.end} overlaps the training "
            f"window {production.start}..{production.last_trained} of production "
            f"{production_version}: production would be graded on days it trained on"
        )
    if not allow_shorter_window and candidate.train_days < min_window_ratio * production.train_days:
        problems.append(
            f"the candidate trained on {candidate.train_days} days, less than "
            f"{min_window_ratio:g} x the {production.train_days} days of production "
            f"{production_version} (gate.min_window_ratio; override with "
            "gate.allow_shorter_window or --allow-shorter-window)"
        )
    return problems


def decide(
    candidate: Mapping[str, Any],
    production: Mapping[str, Any] | None,
    *,
    metric: str = "auc_roc",
    margin: float = 0.0,
    higher_is_better: bool = True,
    interval: Interval | None = None,
    refusals: Sequence[str] = (),
) -> Decision:
    """Promote when there is no production model, or the candidate surely beats it by the margin.

    Args:
        candidate: the candidate's metrics on its holdout.
        production: the production model's metrics on the same holdout, None when there is
            no production model.
        metric: the key compared in both mappings.
        margin: how much better the candidate must be; a gain equal to it is not enough.
        higher_is_better: False for losses (log loss, Brier score).
        interval: a confidence interval on (candidate - production) of ``metric``: the
            lower bound of the gain, not the point gain, must clear the margin.
        refusals: reasons the comparison is not fair (:func:`comparison_problems`): any
            of them rejects the candidate.

    Returns:
        The decision and a sentence quoting both numbers (and the interval).
    """
    if not math.isfinite(margin):
        raise ValueError(f"margin must be a finite number, got {margin!r}")
    label = METRIC_NAMES.get(metric, metric)
    new = _metric_value(candidate, metric, "candidate")
    if production is None:
        return Decision(True, f"no production model yet: candidate {label} {new:.4f} goes first")
    old = _metric_value(production, metric, "production")
    gain = new - old if higher_is_better else old - new
    sense = "" if higher_is_better else " (lower is better)"
    numbers: dict[str, Any] = {
        "metric": metric,
        "candidate": new,
        "production": old,
        "gain": gain,
        "margin": margin,
        "higher_is_better": higher_is_better,
    }
    if interval is not None:  # quoted wherever the numbers are, even beside a refusal
        low, high = (
            (interval.lower, interval.upper)
            if higher_is_better
            else (-interval.upper, -interval.lower)
        )
        numbers |= {"lower_gain": low, "upper_gain": high, "interval": interval.to_dict()}
    if refusals:
        numbers["refusals"] = list(refusals)
        reason = "cannot compare candidate with production fairly: " + "; ".join(refusals)
        return Decision(False, reason, numbers)
    if interval is None:
        if _clears(gain, margin):
            return Decision(
                True,
                f"candidate {label} {new:.4f} beats production {old:.4f} by {gain:.4f} "
                f"> margin {margin:g}{sense}",
                numbers,
            )
        return Decision(
            False,
            f"candidate {label} {new:.4f} does not beat production {old:.4f} by more than "
            f"margin {margin:g} (gain {signed(gain)}){sense}",
            numbers,
        )
    quoted = (
        f"candidate {label} {new:.4f} vs production {old:.4f}: gain {signed(gain)}, "
        f"{interval.confidence * 100:g}% interval [{signed(low)}, {signed(high)}] "
        f"({interval.method.split(' (')[0]} over {interval.blocks} blocks)"
    )
    if _clears(low, margin):
        return Decision(True, f"{quoted}; its lower bound clears margin {margin:g}{sense}", numbers)
    return Decision(
        False, f"{quoted}; its lower bound does not clear margin {margin:g}{sense}", numbers
    )


def _clears(gain: float, margin: float) -> bool:
    """A gain strictly above the margin (one within float noise of it counts as equal)."""
    return gain > margin and not math.isclose(gain, margin, rel_tol=0.0, abs_tol=_TOLERANCE)


def _metric_value(metrics: Mapping[str, Any], metric: str, whose: str) -> float:
    if metric not in metrics:
        known = ", ".join(sorted(metrics)) or "none"
        raise ValueError(f"{whose} metrics have no {metric!r} (available: {known})")
    value = metrics[metric]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{whose} {metric} is {value!r}, not a finite number")
    return float(value)
