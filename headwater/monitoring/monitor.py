"""One partition monitored: served predictions met with their outcomes, drift, and alerts.

:func:`monitor_partition` is pure: given a partition's collected predictions
(:mod:`headwater.monitoring.collect`), its clean data and, per model version that served, the
version's reference (``profile.json``), holdout figures (``metrics.json``) and lookups, it
returns one typed :class:`PartitionMonitoring`:

- per model version and role (production, shadow), the predictions met with their outcomes
  through the use case's :class:`~headwater.core.usecase.OutcomeSpec` (:func:`join_outcomes`):
  each is ``matched``, ``no_label`` (the event is in the data, its label is not: called
  off), ``pending`` (not yet due: ``known_after`` has not passed), ``missing`` (due, not in
  the data) or ``no_key`` (recorded without the request's echo); never silently dropped;
- the realized live metrics of the matched ones with their day-block intervals
  (:mod:`headwater.monitoring.live`, days of the events), beside the holdout's;
- the CBPE estimate (:mod:`headwater.monitoring.estimate`, with the version's calibration
  map) of those without an outcome, and of the matched ones (to check the estimator);
- drift of the served inputs and predictions against the version's reference
  (training-serving skew, prediction drift) and the share of answers that named an input
  out of range;
- drift of the partition's clean data, through the production version's own features, against
  its reference: no traffic needed.

:func:`alerts_of` turns a record (and the previous partition's) into one-sentence
:class:`Alert` s; :func:`summary_lines` renders a record as the notification's Live section and
``headwater monitor`` print it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from headwater.core.records import DateRange
from headwater.core.usecase import NO_OUTCOME, OutcomeSpec, UseCase, outcome_of
from headwater.model.evaluation import METRIC_NAMES
from headwater.monitoring.drift import (
    DriftReport,
    FeatureDrift,
    Thresholds,
    drift_report,
)
from headwater.monitoring.estimate import Estimate, estimate_performance
from headwater.monitoring.frames import column_values
from headwater.monitoring.live import (
    AgainstHoldout,
    LiveMetrics,
    against_holdout,
    classification_metrics,
    regression_metrics,
)
from headwater.monitoring.reference import ModelReference
from headwater.serving.capture import PRODUCTION, CaptureRecord

MATCHED, NO_LABEL, PENDING, MISSING, NO_KEY = "matched", "no_label", "pending", "missing", "no_key"
STATUSES = (MATCHED, NO_LABEL, PENDING, MISSING, NO_KEY)
#: Drifting features a summary or an alert names, the most drifted first.
TOP_DRIFTING = 3


def canonical(value: Any) -> str:
    """One spelling of a key value on both sides of the join (a date, a timestamp, 7 or 7.0)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, datetime):  # pandas' Timestamp too
        return pd.Timestamp(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    return str(value)


@dataclass(frozen=True)
class Outcomes:
    """Each prediction's outcome: its status, realized label and target, and its event's day."""

    status: tuple[str, ...]
    #: 0/1, NaN where the label has not arrived.
    labels: np.ndarray
    #: The realized target, NaN where it has not arrived.
    targets: np.ndarray
    #: The event's local day (ISO), "" when unknown: the bootstrap's blocks.
    days: tuple[str, ...]

    def count(self, status: str) -> int:
        """Predictions of ``status``."""
        return sum(s == status for s in self.status)


def _number(value: Any) -> float:
    if value is None or value is pd.NA:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def join_outcomes(
    predictions: Sequence[CaptureRecord],
    clean: pd.DataFrame,
    outcome: OutcomeSpec,
    label: str,
    target: str,
    as_of: datetime,
) -> Outcomes:
    """Meet each prediction with its event's row of ``clean`` (by the use case's key).

    Args:
        predictions: the served predictions (their ``echo`` carries the request's key).
        clean: clean rows that may hold the outcomes (the key columns, ``label``, ``target``).
        outcome: the use case's declaration of the key and of when an outcome is due.
        label, target: the clean columns of the realized label and target.
        as_of: now, local time of the use case (naive): an event whose outcome is not due
            yet (``event_time + known_after > as_of``) is pending, not missing.
    """
    index: dict[tuple[str, ...], int] = {}
    if len(clean):
        columns = [clean[name].tolist() for name in outcome.key_columns]
        for row, key in enumerate(zip(*columns, strict=True)):
            index.setdefault(tuple(canonical(v) for v in key), row)
        label_values, target_values = clean[label].tolist(), clean[target].tolist()
    status, labels, targets, days = [], [], [], []
    for record in predictions:
        try:
            key = outcome.key_of_request(record.echo)
            event = outcome.event_time(record.echo)
        except (KeyError, TypeError, ValueError):
            status.append(NO_KEY)
            labels.append(math.nan)
            targets.append(math.nan)
            days.append("")
            continue
        days.append(event.date().isoformat())
        row = index.get(tuple(canonical(key[name]) for name in outcome.key_columns))
        realized = _number(label_values[row]) if row is not None else math.nan
        if row is not None and not math.isnan(realized):
            status.append(MATCHED)
            labels.append(realized)
            targets.append(_number(target_values[row]))
            continue
        if row is not None:
            status.append(NO_LABEL)
        elif event + outcome.known_after > as_of:
            status.append(PENDING)
        else:
            status.append(MISSING)
        labels.append(math.nan)
        targets.append(math.nan)
    return Outcomes(
        status=tuple(status),
        labels=np.asarray(labels, dtype=float),
        targets=np.asarray(targets, dtype=float),
        days=tuple(days),
    )


@dataclass(frozen=True)
class VersionInputs:
    """What monitoring knows of one model version: reference, holdout figures, lookups."""

    version: str
    #: ``profile.json`` (None: a version trained before it; no drift, no calibrated estimate).
    reference: ModelReference | None = None
    #: The classifier's and the regression's holdout metrics (``metrics.json``).
    holdout: Mapping[str, float] = field(default_factory=dict)
    regression: Mapping[str, float] = field(default_factory=dict)
    #: The version's lookups (``load_lookups`` of lookups.json): the clean data's features.
    lookups: Any = None
    #: The days it trained on (``lineage.json``: its range's start to the day before its
    #: holdout; None: unknown, every row is monitored).
    trained: DateRange | None = None


def untrained_rows(clean: pd.DataFrame, date_column: str, trained: DateRange | None) -> pd.Series:
    """Which clean rows are outside the training window ``trained`` (all when it is None).

    A version's training rows are its null (each training month's drift sets its thresholds):
    their drift is not news; monitoring judges what came after (its holdout included) or before.
    """
    if trained is None or not len(clean):
        return pd.Series(True, index=clean.index)
    days = pd.to_datetime(clean[date_column]).dt.date
    return ~days.between(trained.start, trained.end)


#: Days the date columns are moved by to tell calendar inputs (:func:`calendar_inputs`): whole
#: days (an hour of the day is the data's, a schedule), neither whole weeks nor whole years.
CALENDAR_SHIFT_DAYS = 200


def _shifted(column: pd.Series) -> pd.Series | None:
    """A date or timestamp column moved by :data:`CALENDAR_SHIFT_DAYS` (None: not one)."""
    shift = timedelta(days=CALENDAR_SHIFT_DAYS)
    if pd.api.types.is_datetime64_any_dtype(column):
        return column + pd.Timedelta(shift)
    present = column.dropna()
    if len(present) and all(isinstance(v, date) for v in present.iloc[:100]):
        return column.map(lambda v: v + shift if isinstance(v, date) else v)
    return None


def calendar_inputs(
    features_frame: Callable[[pd.DataFrame, Any], pd.DataFrame],
    inputs: pd.DataFrame,
    lookups: Any,
    features: pd.DataFrame,
) -> frozenset[str]:
    """The model inputs that are a function of the row's date alone (the period's calendar).

    ``features`` are ``features_frame(inputs, lookups)``. An input is the calendar's when it is
    unchanged with every other column shuffled across the rows, and changed with the dates
    moved (:data:`CALENDAR_SHIFT_DAYS`): month sine and cosine, a trend in years, a holiday's
    nearness; not the hour of a schedule, nor anything read from the data. Their drift against
    a whole-window reference is the period's place in the year (PSI 7 to 9.6 on every month of
    the demo), not news.
    """
    if len(inputs) < 2:
        return frozenset()
    moved = {name: _shifted(inputs[name]) for name in inputs.columns}
    times = [name for name, column in moved.items() if column is not None]
    if not times:
        return frozenset()
    order = np.random.default_rng(0).permutation(len(inputs))
    shuffled = inputs.assign(
        **{n: inputs[n].iloc[order].to_numpy() for n in inputs.columns if n not in times}
    )
    later = inputs.assign(**{n: moved[n] for n in times})
    by_shuffle, by_date = features_frame(shuffled, lookups), features_frame(later, lookups)

    def same(a: pd.Series, b: pd.Series) -> bool:
        return a.reset_index(drop=True).equals(b.reset_index(drop=True))

    return frozenset(
        name
        for name in features.columns
        if same(features[name], by_shuffle[name]) and not same(features[name], by_date[name])
    )


def configured_thresholds(settings: Mapping[str, Any]) -> Thresholds:
    """The thresholds a use case configures (``psi``, ``js``, ``features``; unset: defaults)."""
    return Thresholds.from_dict(
        {k: settings[k] for k in ("psi", "js", "features") if settings.get(k) is not None}
    )


def thresholds_for(configured: Thresholds, reference: ModelReference | None) -> Thresholds:
    """The drift thresholds of a version: each input's quiet-month maximum (the version's null,
    never below the configured measure's threshold), a feature the configuration names wins."""
    if reference is None:
        return configured
    base = Thresholds(psi=configured.psi, js=configured.js)
    calibrated = reference.null.distribution.thresholds(base=base)
    return Thresholds(
        psi=configured.psi,
        js=configured.js,
        features={**calibrated.features, **configured.features},
    )


@dataclass(frozen=True)
class ServedMonitoring:
    """The predictions one model version served in a role over a partition, and how they did."""

    version: str
    role: str
    predictions: int
    #: Status -> predictions (:data:`STATUSES`).
    outcomes: Mapping[str, int]
    classification: LiveMetrics | None = None
    regression: LiveMetrics | None = None
    #: The headline live metrics beside the holdout's, with the live intervals.
    holdout: tuple[AgainstHoldout, ...] = ()
    regression_holdout: tuple[AgainstHoldout, ...] = ()
    #: CBPE of the predictions without an outcome (None: every one has its outcome).
    estimate: Estimate | None = None
    #: CBPE of the predictions with an outcome: beside the realized figures, its error.
    estimate_of_realized: Estimate | None = None
    #: Served inputs and outputs against the version's reference (None: no reference).
    drift: DriftReport | None = None
    #: Answers that named at least one input outside the training range.
    out_of_range: int = 0

    @property
    def with_outcome(self) -> int:
        """Predictions whose outcome arrived."""
        return int(self.outcomes.get(MATCHED, 0))

    @property
    def out_of_range_share(self) -> float:
        """Share of the answers that named an input outside the training range."""
        return self.out_of_range / self.predictions if self.predictions else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "version": self.version,
            "role": self.role,
            "predictions": self.predictions,
            "outcomes": dict(self.outcomes),
            "classification": self.classification.to_dict() if self.classification else None,
            "regression": self.regression.to_dict() if self.regression else None,
            "holdout": [a.to_dict() for a in self.holdout],
            "regression_holdout": [a.to_dict() for a in self.regression_holdout],
            "estimate": self.estimate.to_dict() if self.estimate else None,
            "estimate_of_realized": (
                self.estimate_of_realized.to_dict() if self.estimate_of_realized else None
            ),
            "drift": self.drift.to_dict() if self.drift else None,
            "out_of_range": self.out_of_range,
        }

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> ServedMonitoring:
        """Read a record written by :meth:`to_dict`."""

        def optional(name: str, read: Callable[[Mapping[str, Any]], Any]) -> Any:
            return read(body[name]) if body.get(name) else None

        return cls(
            version=str(body["version"]),
            role=str(body["role"]),
            predictions=int(body["predictions"]),
            outcomes={str(k): int(v) for k, v in body["outcomes"].items()},
            classification=optional("classification", LiveMetrics.from_dict),
            regression=optional("regression", LiveMetrics.from_dict),
            holdout=tuple(AgainstHoldout.from_dict(a) for a in body.get("holdout", ())),
            regression_holdout=tuple(
                AgainstHoldout.from_dict(a) for a in body.get("regression_holdout", ())
            ),
            estimate=optional("estimate", Estimate.from_dict),
            estimate_of_realized=optional("estimate_of_realized", Estimate.from_dict),
            drift=optional("drift", DriftReport.from_dict),
            out_of_range=int(body.get("out_of_range", 0)),
        )


@dataclass(frozen=True)
class PartitionMonitoring:
    """How a use case's served models did over one partition, and how its data moved."""

    usecase: str
    partition: str
    #: When outcomes were looked for (local time of the use case, ISO).
    as_of: str
    #: The production version whose reference the clean data is compared with ("": none).
    production: str
    #: Clean rows of the partition.
    clean_rows: int
    #: The clean data (through the production version's features) against its reference: the
    #: rows outside production's training window (None: none, or nothing to compare with).
    clean_drift: DriftReport | None
    #: One entry per model version and role that served in the partition.
    served: tuple[ServedMonitoring, ...] = ()
    #: The drift thresholds applied (the production version's).
    thresholds: Thresholds = field(default_factory=Thresholds)
    #: A shadow-against-production comparison, when shadow scoring records one (a hook: its
    #: ``text`` is printed as is).
    shadow: Mapping[str, Any] | None = None
    #: Why something is missing.
    notes: tuple[str, ...] = ()
    #: Clean rows inside production's training window: its training data (their months set its
    #: thresholds), not judged for drift.
    trained_rows: int = 0

    @property
    def predictions(self) -> int:
        """Predictions answered to clients (role ``production``) in the partition."""
        return sum(s.predictions for s in self.served if s.role == PRODUCTION)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (the published partition's one record)."""
        return {
            "usecase": self.usecase,
            "partition": self.partition,
            "as_of": self.as_of,
            "production": self.production,
            "clean_rows": self.clean_rows,
            "clean_drift": self.clean_drift.to_dict() if self.clean_drift else None,
            "served": [s.to_dict() for s in self.served],
            "thresholds": self.thresholds.to_dict(),
            "shadow": dict(self.shadow) if self.shadow else None,
            "notes": list(self.notes),
            "trained_rows": self.trained_rows,
        }

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> PartitionMonitoring:
        """Read a record written by :meth:`to_dict`."""
        drift = body.get("clean_drift")
        return cls(
            usecase=str(body["usecase"]),
            partition=str(body["partition"]),
            as_of=str(body["as_of"]),
            production=str(body.get("production") or ""),
            clean_rows=int(body.get("clean_rows", 0)),
            clean_drift=DriftReport.from_dict(drift) if drift else None,
            served=tuple(ServedMonitoring.from_dict(s) for s in body.get("served", ())),
            thresholds=Thresholds.from_dict(body.get("thresholds") or {}),
            shadow=dict(body["shadow"]) if body.get("shadow") else None,
            notes=tuple(str(n) for n in body.get("notes", ())),
            trained_rows=int(body.get("trained_rows", 0)),
        )


def _inputs_of(records: Sequence[CaptureRecord], reference: ModelReference) -> dict[str, Any]:
    return {name: [r.features.get(name) for r in records] for name in reference.profile.features}


def _served(
    usecase: UseCase,
    version: str,
    role: str,
    records: Sequence[CaptureRecord],
    inputs: VersionInputs | None,
    outcomes: Outcomes | None,
    thresholds: Thresholds,
    calendar: Collection[str] = (),
) -> ServedMonitoring:
    answer = usecase.serving.answer
    reference = inputs.reference if inputs else None
    probabilities = [r.probability for r in records]
    counts = {s: (outcomes.count(s) if outcomes else 0) for s in STATUSES}
    if outcomes is None:
        counts[PENDING] = 0
        counts[MISSING] = len(records)  # no outcome can arrive without a declared join
    classification = regression = estimate = realized_estimate = None
    holdout: tuple[AgainstHoldout, ...] = ()
    regression_holdout: tuple[AgainstHoldout, ...] = ()
    calibration = reference.calibration if reference else None
    threshold = records[0].threshold
    if outcomes is not None:
        labels = [None if math.isnan(v) else v for v in outcomes.labels]
        classification = classification_metrics(probabilities, labels, outcomes.days)
        regression = regression_metrics(
            [r.estimate for r in records], outcomes.targets, outcomes.days
        )
        if inputs is not None:
            holdout = against_holdout(classification, inputs.holdout)
            regression_holdout = against_holdout(regression, inputs.regression)
        known = np.asarray([s == MATCHED for s in outcomes.status])
    else:
        known = np.zeros(len(records), dtype=bool)
    served = np.asarray(probabilities, dtype=float)
    if (~known).any():
        estimate = estimate_performance(served[~known], calibration, threshold)
    if known.any():
        realized_estimate = estimate_performance(served[known], calibration, threshold)
    drift = None
    if reference is not None:
        outputs = {
            answer.probability: probabilities,
            answer.estimate: [r.estimate for r in records],
        }
        drift = drift_report(
            reference.profile,
            _inputs_of(records, reference),
            {k: v for k, v in outputs.items() if k in reference.profile.predictions},
            thresholds,
            calendar=calendar,
        )
    return ServedMonitoring(
        version=version,
        role=role,
        predictions=len(records),
        outcomes=counts,
        classification=classification,
        regression=regression,
        holdout=holdout,
        regression_holdout=regression_holdout,
        estimate=estimate,
        estimate_of_realized=realized_estimate,
        drift=drift,
        out_of_range=sum(bool(r.out_of_range) for r in records),
    )


def calendar_of(usecase: UseCase, clean: pd.DataFrame, inputs: VersionInputs) -> frozenset[str]:
    """The version's calendar inputs (:func:`calendar_inputs`), told on ``clean``'s rows."""
    spec = usecase.training
    if inputs.lookups is None or len(clean) < 2:
        return frozenset()
    rows = clean[list(spec.input_columns)]
    features = spec.features_frame(rows, inputs.lookups)
    return calendar_inputs(spec.features_frame, rows, inputs.lookups, features)


def clean_drift(
    usecase: UseCase,
    clean: pd.DataFrame,
    inputs: VersionInputs,
    thresholds: Thresholds,
    calendar: Collection[str] | None = None,
) -> DriftReport | None:
    """The clean rows through the version's features, against the version's reference.

    Calendar inputs (``calendar``; None: :func:`calendar_inputs` on these rows) are measured
    and marked, never drifted.
    """
    reference, spec = inputs.reference, usecase.training
    if reference is None or inputs.lookups is None or not len(clean):
        return None
    rows = clean[list(spec.input_columns)]
    features = spec.features_frame(rows, inputs.lookups)
    if calendar is None:
        calendar = calendar_inputs(spec.features_frame, rows, inputs.lookups, features)
    categorical = set(spec.categorical)
    profile = reference.profile
    columns = {
        name: column_values(features[name], name not in categorical) for name in profile.features
    }
    return drift_report(profile, columns, thresholds=thresholds, calendar=calendar)


def monitor_partition(
    usecase: UseCase,
    partition: str,
    predictions: Sequence[CaptureRecord],
    clean: pd.DataFrame,
    versions: Mapping[str, VersionInputs],
    production: str | None,
    thresholds: Thresholds,
    as_of: datetime,
    outcomes_from: pd.DataFrame | None = None,
) -> PartitionMonitoring:
    """Monitor one partition of ``usecase`` (pure: everything it needs is given).

    Args:
        usecase: the use case (its training spec, answer keys and ``outcome``).
        partition: the partition's label.
        predictions: the partition's collected predictions (every version and role).
        clean: the partition's clean rows.
        versions: per version that served (and production), what monitoring knows of it.
        production: the production version ("" or None: none; no clean-data drift).
        thresholds: the use case's configured drift thresholds (each version's null raises
            them per input, :func:`thresholds_for`).
        as_of: now, local time of the use case (naive): decides pending against missing.
        outcomes_from: the clean rows outcomes are looked for in (default: ``clean``; the
            caller adds the partitions the served events fall in).
    """
    spec, outcome = usecase.training, outcome_of(usecase)
    notes = []
    if outcome is None:
        notes.append(NO_OUTCOME)
    current = versions.get(production or "")
    # Which inputs are the calendar's is the features' business, the same for every version
    # (told with production's lookups on the partition's rows): for served and clean drift.
    calendar = calendar_of(usecase, clean, current) if current else frozenset()
    groups: dict[tuple[str, str], list[CaptureRecord]] = {}
    for record in predictions:
        groups.setdefault((record.model_version, record.role), []).append(record)
    served = []
    source = clean if outcomes_from is None else outcomes_from
    for (version, role), records in sorted(groups.items()):
        inputs = versions.get(version)
        if inputs is None:
            notes.append(f"version {version} is not in the registry: no holdout, no reference")
        joined = (
            join_outcomes(records, source, outcome, spec.label.column, spec.target.column, as_of)
            if outcome is not None
            else None
        )
        applied = thresholds_for(thresholds, inputs.reference if inputs else None)
        served.append(_served(usecase, version, role, records, inputs, joined, applied, calendar))
    applied = thresholds_for(thresholds, current.reference if current else None)
    fresh = untrained_rows(clean, spec.date_column, current.trained if current else None)
    drift = clean_drift(usecase, clean[fresh], current, applied, calendar) if current else None
    if current is None:
        notes.append("no production version: no drift of the clean data")
    elif drift is None and fresh.any():
        notes.append(f"version {current.version} has no profile.json or lookups: no drift")
    return PartitionMonitoring(
        usecase=usecase.name,
        partition=partition,
        as_of=as_of.isoformat(timespec="seconds"),
        production=production or "",
        clean_rows=len(clean),
        clean_drift=drift,
        served=tuple(served),
        thresholds=applied,
        notes=tuple(notes),
        trained_rows=int((~fresh).sum()),
    )


# -- telling people ------------------------------------------------------------------------------
def human_names(usecase: UseCase | None) -> Callable[[str], str]:
    """Names for people of a use case's inputs and outputs (as is without a use case)."""
    if usecase is None:
        return lambda name: name
    spec = usecase.training
    outputs = {
        usecase.serving.answer.probability: f"predicted {spec.label.name}",
        usecase.serving.answer.estimate: f"predicted {spec.target.name}",
    }
    return lambda name: outputs.get(name) or spec.human(name)


def drift_text(drifts: Iterable[FeatureDrift], human: Callable[[str], str]) -> str:
    """``temperature PSI 0.41 > 0.20, colour JS 0.15 > 0.10`` (the most drifted first)."""
    parts = []
    for d in list(drifts)[:TOP_DRIFTING]:
        parts.append(f"{human(d.feature)} {d.measure.upper()} {d.value:.2f} > {d.threshold:.2f}")
    return ", ".join(parts)


def out_of_range_text(report: DriftReport, human: Callable[[str], str]) -> str:
    """``out of range 1.9% of rows (pressure 1.9%)``: the share of rows, and which inputs."""
    text = f"out of range {report.out_of_range_share:.1%} of rows"
    inputs = report.out_of_range_inputs()[:TOP_DRIFTING]
    if inputs:
        named = ", ".join(f"{human(d.feature)} {d.out_of_range_share:.1%}" for d in inputs)
        text += f" ({named})"
    return text


def summary_lines(monitoring: PartitionMonitoring, usecase: UseCase | None = None) -> list[str]:
    """The partition at a glance: served, realized and estimated against holdout, drift."""
    human = human_names(usecase)
    unit = usecase.training.target.unit if usecase is not None else ""
    head = f"{monitoring.partition}: {monitoring.predictions:,} predictions served"
    if monitoring.production:
        head += f", production {monitoring.production}"
    lines = [head]
    for served in monitoring.served:
        counts = served.outcomes
        if NO_OUTCOME in monitoring.notes:  # no count of outcomes that can never arrive
            lines.append(
                f"  {served.role} {served.version}: {served.predictions:,} predictions, "
                f"{NO_OUTCOME}"
            )
        else:
            lines.append(
                f"  {served.role} {served.version}: {served.predictions:,} predictions, "
                f"{counts.get(MATCHED, 0):,} with outcome, {counts.get(PENDING, 0):,} pending, "
                f"{counts.get(MISSING, 0) + counts.get(NO_KEY, 0):,} never arrived, "
                f"{counts.get(NO_LABEL, 0):,} without label"
            )
        realized = [a.text() for a in served.holdout]
        realized += [_in_unit(a, unit) for a in served.regression_holdout]
        if realized:
            lines.append(f"    realized: {'; '.join(realized)}")
        if served.estimate is not None:
            lines.append(f"    estimated: {_estimate_text(served)}")
        if served.drift is not None:
            drifted = served.drift.drifted()
            words = drift_text(drifted, human) if drifted else "none over its threshold"
            lines.append(f"    served inputs drift: {words}")
        lines.append(f"    out of range: {served.out_of_range_share:.1%} of answers")
    drift = monitoring.clean_drift
    if drift is not None:
        drifted = drift.drifted()
        top = drift_text(drifted or drift.largest(), human)
        state = "over threshold" if drifted else "none over its threshold; largest"
        trained = (
            f", {monitoring.trained_rows:,} trained on left out" if monitoring.trained_rows else ""
        )
        lines.append(
            f"  clean data drift ({drift.rows:,} rows{trained}): {state}: {top}; "
            f"{out_of_range_text(drift, human)}"
        )
    elif monitoring.trained_rows and monitoring.trained_rows == monitoring.clean_rows:
        lines.append(f"  clean data: {TRAINED}")
    if monitoring.shadow and monitoring.shadow.get("text"):
        lines.append(f"  shadow vs production: {monitoring.shadow['text']}")
    lines += [f"  note: {note}" for note in monitoring.notes]
    return lines


#: What a partition of production's training window says of its clean data.
TRAINED = "production's training data: drift not judged (its months set the thresholds)"


def quiet(monitoring: PartitionMonitoring) -> str | None:
    """What a partition with nothing to say says, in a few words (None: it has something).

    Nothing to say: no prediction served in any role, no shadow or note, and its clean data
    either production's training data or judged with nothing over its threshold and nothing
    out of range.
    """
    if monitoring.served or monitoring.shadow or monitoring.notes:
        return None
    drift = monitoring.clean_drift
    if drift is None:
        if monitoring.clean_rows and monitoring.trained_rows == monitoring.clean_rows:
            return TRAINED
        return None
    if drift.drifted() or drift.rows_out_of_range or monitoring.trained_rows:
        return None
    return "clean data: nothing over its drift threshold, nothing out of range"


def live_lines(records: Sequence[PartitionMonitoring], usecase: UseCase | None = None) -> list[str]:
    """The Live section: each partition at a glance (:func:`summary_lines`), oldest first, a
    run of consecutive partitions with nothing to say (:func:`quiet`) in one line."""
    lines: list[str] = []
    run: list[PartitionMonitoring] = []

    def close() -> None:
        if not run:
            return
        first, last = run[0], run[-1]
        what = quiet(first)
        if len(run) == 1:
            head = f"{first.partition}: 0 predictions served"
        else:
            head = f"{first.partition}..{last.partition} ({len(run)} partitions): none served"
        production = f", production {first.production}" if first.production else ""
        lines.append(f"{head}{production}; {what}")
        run.clear()

    for record in records:
        what = quiet(record)
        if (
            what is not None
            and run
            and (quiet(run[0]), run[0].production)
            == (
                what,
                record.production,
            )
        ):
            run.append(record)
            continue
        close()
        if what is not None:
            run.append(record)
        else:
            lines += summary_lines(record, usecase)
    close()
    return lines


def _in_unit(against: AgainstHoldout, unit: str) -> str:
    return against.text() + (f" ({unit})" if unit else "")


def _estimate_text(served: ServedMonitoring) -> str:
    estimate = served.estimate
    assert estimate is not None
    parts = [
        f"{METRIC_NAMES.get(k, k)} {estimate.metrics[k]:.3f}"
        for k in ("auc_roc", "brier")
        if k in estimate.metrics
    ]
    holdout = {a.metric: a.holdout for a in served.holdout}
    if "auc_roc" in holdout:
        parts.append(f"vs holdout {holdout['auc_roc']:.3f}")
    return f"{', '.join(parts)} (CBPE over {estimate.predictions:,} without outcome)"


@dataclass(frozen=True)
class Alert:
    """One alert: a readable sentence, and what raised it."""

    usecase: str
    partition: str
    #: ``performance``, ``drift``, ``skew`` or ``capture``.
    kind: str
    message: str

    def to_dict(self) -> dict[str, str]:
        """JSON-able form."""
        return {"usecase": self.usecase, "partition": self.partition, "kind": self.kind,
                "message": self.message}  # fmt: skip

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> Alert:
        """Read an alert written by :meth:`to_dict`."""
        return cls(**{k: str(body[k]) for k in ("usecase", "partition", "kind", "message")})


def _expected_text(against: AgainstHoldout, estimate: Estimate | None) -> str:
    """What the served scores alone expected of a metric (CBPE on the same predictions), and
    what that says of a drop: within the live interval, the drop follows what was asked (the
    mix of requests moved; the model scores as it did on its holdout); beyond it, the model
    does worse than its own scores promise (its relation to the outcome changed)."""
    expected = estimate.metrics.get(against.metric) if estimate is not None else None
    if expected is None or against.lower is None or against.upper is None:
        return ""
    if against.lower <= expected <= against.upper:
        return (
            f"; its scores alone expected {expected:.3f} (CBPE): the drop follows the mix of "
            "requests, the model scores as on its holdout"
        )
    return (
        f"; its scores alone expected {expected:.3f} (CBPE): the model does worse than its "
        "own scores promise"
    )


def alerts_of(
    monitoring: PartitionMonitoring,
    previous: PartitionMonitoring | None = None,
    usecase: UseCase | None = None,
    *,
    min_predictions: int,
) -> list[Alert]:
    """The alerts a partition raises: performance significantly below holdout (the whole live
    interval worse), the clean data or served inputs drifting past their thresholds, or
    capture stopping (none in this partition where the previous one had some).

    Performance needs ``min_predictions`` predictions with an outcome, skew as many served
    (``[usecase.<name>.monitoring] min_predictions``).
    """
    human = human_names(usecase)
    where = f"{monitoring.usecase} {monitoring.partition}"
    out = []

    def alert(kind: str, message: str) -> None:
        out.append(Alert(monitoring.usecase, monitoring.partition, kind, f"{where}: {message}"))

    for served in monitoring.served:
        if served.role != PRODUCTION:
            continue
        if served.with_outcome >= min_predictions:
            for against in (*served.holdout, *served.regression_holdout):
                if against.significantly_worse:
                    alert(
                        "performance",
                        f"live {against.text()} for version {served.version}, "
                        f"over {served.with_outcome:,} predictions with outcome"
                        f"{_expected_text(against, served.estimate_of_realized)}.",
                    )
        if served.drift is not None and served.predictions >= min_predictions:
            drifted = served.drift.drifted()
            if drifted:
                alert(
                    "skew",
                    f"the inputs served to version {served.version} drifted from its "
                    f"training data: {drift_text(drifted, human)}.",
                )
    if monitoring.clean_drift is not None:
        drifted = monitoring.clean_drift.drifted()
        if drifted:
            alert(
                "drift",
                f"the clean data drifted from production {monitoring.production}'s training "
                f"data: {drift_text(drifted, human)}.",
            )
    if previous is not None and previous.predictions > 0 and monitoring.predictions == 0:
        alert(
            "capture",
            f"no prediction was captured, where {previous.partition} had "
            f"{previous.predictions:,}: is capture still arriving?",
        )
    return out
