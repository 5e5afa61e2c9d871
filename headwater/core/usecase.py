"""The contract between the platform and a use case.

A use case is one package (``headwater.usecases.<name>``, or any module named by
``usecase.<name>.module`` in the stage's configuration) that exposes ``USECASE``: an
object satisfying :class:`UseCase`. Everything the platform knows about a question
comes from there: the sources it reads and how they are asked, the demo data and
embedded services, contracts and cleaning, the training spec (label, target,
features, baselines, human names) and the serving spec (request model, feature
derivation, answer shape). No module outside the use-case packages names a use case.

This module imports nothing heavy (pandas, pyarrow and pydantic models appear in type
hints only), so the API and the use cases' request models can import it cheaply.

Conformance: ``tests/usecases/test_contract.py`` runs the same suite over every
registered use case (and a minimal one under ``tests/``): a new use case that passes
it works in every layer.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from headwater.core.partitions import Partition


@dataclass(frozen=True)
class CleanResult:
    """The output of cleaning one partition.

    ``clean`` is the clean dataset; ``quarantine`` maps each source to its rejected
    raw rows (indexed by their position in the raw frame, with a ``quarantine_reason``
    column); ``rows_in`` counts raw rows read per source and ``rows_out`` the rows each
    source contributed to the output (rows in = rows out + rows quarantined is checked).
    """

    clean: pd.DataFrame
    quarantine: Mapping[str, pd.DataFrame]
    rows_in: Mapping[str, int]
    rows_out: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class DemoReport:
    """What building a use case's demo data produced: where, and rows per table."""

    url: str
    tables: Mapping[str, int]


@dataclass(frozen=True)
class SourceContext:
    """What a source kind is told about the use case and the stage when it extracts.

    ``request`` is the use case's answer to :meth:`UseCase.source_request` for this
    source: a kind-specific description (locations and variables for ``openmeteo``,
    the record schema and fixed parameters for ``json_pages``, None for ``sql``).
    """

    usecase: str
    source: str
    timezone: str
    request: Any
    resolve: Callable[[str], str]  # resolves ssm:/secretsmanager: references at call time


# -- training ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Quantity:
    """A column the models predict, with its human name and unit (for reports and messages).

    ``low`` and ``high`` (optional, either or both) bound its plausible values: for the
    target, the API clips an estimate outside them into them and names it in the answer's
    ``clipped`` (a linear model extrapolates, e.g. to negative rental counts).
    """

    column: str
    name: str
    unit: str = ""
    #: The smallest plausible value (None: no lower bound).
    low: float | None = None
    #: The largest plausible value (None: no upper bound).
    high: float | None = None

    def clip(self, value: float) -> float:
        """``value`` moved into ``low..high`` (itself when it lies within)."""
        if self.low is not None and value < self.low:
            return float(self.low)
        if self.high is not None and value > self.high:
            return float(self.high)
        return value


@dataclass(frozen=True)
class Baseline:
    """A naive rate baseline: the training label's mean per cell of ``columns``.

    Cells are smoothed towards the overall rate; with no columns it is the base rate.
    Every baseline is evaluated on the model's own holdout, and reported beside it.
    """

    name: str
    columns: tuple[str, ...]
    description: str


@dataclass(frozen=True)
class RegressionBaseline:
    """A naive regression baseline: predict the target with a clean column as it is.

    ``column`` is a clean column or a window's name (persistence: "the same hour yesterday"
    is the window ``rentals_24h_before``), read as it is even when a feature has the same
    name (a feature's default never stands in for it); it need not be a model feature. Rows
    where it is null take the training mean of the target (their count is reported).
    Evaluated on the model's own holdout (RMSE, MAE) beside the mean-target baseline.
    """

    name: str
    column: str
    description: str


#: What a :class:`Window` computes over the rows of its key, ordered by time.
WindowKind = Literal["lag", "lead", "rolling_mean", "rolling_sum", "rolling_count"]
WINDOW_KINDS: tuple[str, ...] = ("lag", "lead", "rolling_mean", "rolling_sum", "rolling_count")


@dataclass(frozen=True)
class Window:
    """A column computed over the whole clean range, across partitions, before the features.

    The training job adds ``name`` to the clean rows with a Spark window over the rows of the
    same ``keys`` (none: one series) ordered by ``order`` (a timestamp column):

    - ``lag`` / ``lead``: ``column`` at ``span`` before / after the row's time (the row whose
      ``order`` is exactly that instant), or ``rows`` rows before / after;
    - ``rolling_mean`` / ``rolling_sum`` / ``rolling_count``: the mean, sum or count of the
      non-null values of ``column`` over the rows in ``[t - span, t - gap)`` (``t`` the row's
      time: the row itself and rows at the same instant are never in), or the ``rows`` rows
      before.

    Exactly one of ``span`` and ``rows`` is set. A window that would reach outside the range
    (before its first instant, after its last) is incomplete and gives null: a ``lead``
    label that is null is "not yet known" (the row is neither trained on nor held out, and
    is counted in ``metrics.json``); the next, longer range labels it, from the same clean
    partitions. A window is a column like any other to ``input_columns``, the label, the
    target and the baselines.
    """

    name: str
    column: str
    kind: WindowKind
    order: str
    keys: tuple[str, ...] = ()
    span: timedelta | None = None
    rows: int | None = None
    #: Rolling windows only: the window closes this long before the row (outcomes not yet known).
    gap: timedelta = timedelta(0)
    description: str = ""

    def __post_init__(self) -> None:
        if self.kind not in WINDOW_KINDS:
            raise ValueError(f"window {self.name!r}: kind {self.kind!r} not in {WINDOW_KINDS}")
        if (self.span is None) == (self.rows is None):
            raise ValueError(f"window {self.name!r}: set exactly one of span and rows")
        if self.span is not None and self.span <= timedelta(0):
            raise ValueError(f"window {self.name!r}: span must be positive, not {self.span}")
        if self.rows is not None and self.rows < 1:
            raise ValueError(f"window {self.name!r}: rows must be 1 or more, not {self.rows}")
        if self.gap and (not self.kind.startswith("rolling") or self.span is None):
            raise ValueError(f"window {self.name!r}: a gap applies to a rolling span only")
        if self.span is not None and self.gap >= self.span:
            raise ValueError(f"window {self.name!r}: the gap {self.gap} leaves no window")


@dataclass(frozen=True)
class TrainingSpec:
    """What the generic Spark job needs to train a use case's two models.

    The feature table is built on Spark by running ``features_frame`` (pandas, the same
    definition the API's ``features_record`` uses) over ``input_columns`` of the clean
    dataset through ``mapInPandas``. Rows with a null label are neither trained on nor
    held out; the regression is fitted and evaluated where the target is known. The
    ``windows`` are added to the clean rows first, over the whole range (across partitions),
    so ``input_columns``, the label and the baselines may name them.
    """

    dataset: str
    date_column: str
    references: tuple[str, ...]
    label: Quantity
    target: Quantity
    categorical: tuple[str, ...]
    numeric: tuple[str, ...]
    input_columns: tuple[str, ...]
    baselines: tuple[Baseline, ...]
    human_names: Mapping[str, str]
    #: (train clean frame, {reference: frame}, all clean frame of the range) -> lookups.
    #: Spark DataFrames in, a JSON-able object out (``to_dict``); bounded aggregates only.
    build_lookups: Callable[[Any, Mapping[str, Any], Any], Any]
    #: (pandas batch of ``input_columns``, lookups) -> pandas frame of the features.
    features_frame: Callable[[pd.DataFrame, Any], pd.DataFrame]
    #: lookups.to_dict() -> lookups (the inverse, for the API and the parity check).
    load_lookups: Callable[[Mapping[str, Any]], Any]
    #: Columns computed across partitions before the features (labels, lags, rolling
    #: aggregates): see :class:`Window`. Optional; a use case without windows declares none.
    windows: tuple[Window, ...] = ()
    #: Regression baselines from a clean column (persistence), beside the mean-target one.
    regression_baselines: tuple[RegressionBaseline, ...] = ()

    @property
    def features(self) -> tuple[str, ...]:
        """Every model input, categorical first."""
        return (*self.categorical, *self.numeric)

    def human(self, feature: str) -> str:
        """The human name of a feature or of an encoded slot such as ``hour_ohe_06``."""
        if feature in self.human_names:
            return self.human_names[feature]
        base, _, value = feature.partition("_ohe_")
        if value and base in self.human_names:
            return f"{self.human_names[base]} = {value}"
        return feature


@dataclass(frozen=True)
class OutcomeSpec:
    """How a served prediction meets its realized outcome in the clean data: the optional
    member ``outcome`` of :class:`UseCase` (monitoring of live performance needs it).

    A served prediction is known by its request as the answer echoes it
    (:attr:`ServingSpec.describe`, recorded with each captured prediction); ``key_of_request``
    turns that echo into the values of ``key_columns``, the clean columns identifying one
    event (one departure, one hour). The realized outcome is the training spec's label and
    target columns of the clean row with that key. It is due ``known_after`` after the event's
    local time (``event_time``): before that, a missing outcome is pending, not missing.
    """

    #: The clean columns that identify one event, in order.
    key_columns: tuple[str, ...]
    #: The answer's echo of a request -> {key column: value}, values as the clean data holds
    #: them (a date for a date column, a naive local datetime for a local timestamp).
    key_of_request: Callable[[Mapping[str, Any]], dict[str, Any]]
    #: The answer's echo of a request -> the event's local time (naive, the use case's zone).
    event_time: Callable[[Mapping[str, Any]], datetime]
    #: How long after the event its outcome is in the clean data.
    known_after: timedelta


# -- serving -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class AnswerShape:
    """The keys of one prediction in the API's answer.

    An answer is ``{<echo>: {...}, <probability>: p, <decision>: bool, "threshold": t,
    <estimate>: x, "defaulted": [...], "unseen": [...], "model": {name, version}}``.
    """

    echo: str
    probability: str
    decision: str
    estimate: str


@dataclass(frozen=True)
class ServingSpec:
    """What the API needs to serve a use case without a JVM.

    ``request_model`` is a pydantic model of one instance: validation and the OpenAPI
    document are both derived from it, so every field rule (type, pattern, range,
    description, example) is written once, there.
    """

    request_model: type
    example: Mapping[str, Any]
    answer: AnswerShape
    #: (validated request, lookups) -> (feature record, names of inputs defaulted).
    features_record: Callable[[Any, Any], tuple[dict[str, Any], list[str]]]
    #: validated request -> the JSON-able echo of it in the answer.
    describe: Callable[[Any], dict[str, Any]]
    #: categorical features whose known values ``GET /v1/<use case>/model`` lists.
    listed_categories: tuple[str, ...] = ()
    description: str = ""
    #: Optional: one clean row (column -> value, as the lake reads it) -> the JSON body of the
    #: instance a client would have sent for it: the inverse of what the API reads, from what
    #: is known when the request is made (never the label or the target). ``headwater replay``
    #: sends these; the conformance suite checks that every clean row's request is answered.
    request_of_row: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None
    #: Optional: documented shifts ``headwater replay --shift NAME`` can inject, by name.
    shifts: Mapping[str, Shift] = field(default_factory=dict)


@dataclass(frozen=True)
class Shift:
    """A documented change injected into replayed requests: the demo's period that really shifts.

    ``apply`` returns a new request body (it never mutates its argument) that the API still
    accepts: a shift changes what the model sees, not whether the request is valid.
    """

    #: One sentence saying what changes, for the CLI and the docs.
    description: str
    #: request body -> shifted request body.
    apply: Callable[[Mapping[str, Any]], dict[str, Any]]


# -- the use case ------------------------------------------------------------------------------
class UseCase(Protocol):
    """The contract between the platform and one use case."""

    #: Registry name: lake paths (``raw/<name>/...``), model name, API routes.
    name: str
    #: One line for reports, notifications and the API's documentation.
    title: str
    #: Partitions are local calendar days/months of this zone (configuration may override).
    timezone: str
    #: Sources extracted per partition (names in ``usecase.<name>.sources``), in order.
    sources: tuple[str, ...]
    #: Reference tables extracted whole as dated snapshots.
    references: tuple[str, ...]
    #: The clean dataset each partition produces.
    clean_dataset: str
    # Optional ``keys: Mapping[str, tuple[str, ...]]``: the columns identifying one raw row
    # of each source. The pipeline quarantines a row repeating an earlier row's key (a source
    # without a key: an exact repeat), the first kept, and rows with unreadable cells,
    # before ``clean`` sees them (headwater.data.contracts.screen_rows).
    # Optional ``source_kinds: Mapping[str, str]``: the source kinds the use case brings, kind
    # name -> ``"module:attr"`` of the kind object (imported when first used). The platform
    # registers them when it loads the use case, before any source is validated, so a
    # ``[usecase.<name>.sources.<s>]`` table may name them (headwater.data.sources).
    training: TrainingSpec
    serving: ServingSpec
    # Optional ``conformance: ConformanceSpec``: the range the conformance suite runs the use
    # case on, and its own words (the suite refuses an enabled use case without it).
    # Optional ``outcome: OutcomeSpec``: how a served prediction meets its outcome in the
    # clean data. A use case whose outcome never arrives leaves it out: monitoring still
    # measures drift (served inputs, clean data) and says :data:`NO_OUTCOME`; the conformance
    # suite skips its outcome checks with that reason (see :func:`outcome_of`).

    def source_request(self, source: str) -> Any:
        """What to ask source ``source`` for (kind-specific; None when the kind needs nothing)."""
        ...

    def clean_schema(self) -> pa.Schema:
        """The Arrow schema of the clean dataset."""
        ...

    def clean(
        self, raw: Mapping[str, pd.DataFrame], partition: Partition, timezone: str
    ) -> CleanResult:
        """Validate and clean the raw frames of one partition."""
        ...

    def build_demo_data(self, sources: Mapping[str, Any], replace: bool) -> DemoReport:
        """Build the demo source database(s) the configured SQL sources point at."""
        ...

    def embedded_server(
        self, source: str, host: str, port: int, rate_limit: float
    ) -> AbstractContextManager[Any]:
        """A local HTTP server answering as source ``source`` does (a context manager).

        The platform starts it through ``headwater.data.sources.embedded.serve_stand_in``,
        which hands it the credential the source sends (``auth``) to check: build it on
        ``LoopbackJsonServer``.
        """
        ...


#: What monitoring says of a use case that declares no ``outcome`` (and the suite's skip reason).
NO_OUTCOME = "no outcomes: live performance not measured"


def outcome_of(usecase: Any) -> OutcomeSpec | None:
    """The use case's optional ``outcome``, or None when it declares none.

    Raises:
        TypeError: ``outcome`` is declared but is not an :class:`OutcomeSpec`.
    """
    outcome = getattr(usecase, "outcome", None)
    if outcome is None or isinstance(outcome, OutcomeSpec):
        return outcome
    raise TypeError(
        f"use case {getattr(usecase, 'name', '?')!r}: outcome must be an OutcomeSpec "
        f"(headwater.core.usecase), not {type(outcome).__name__}; leave it out when outcomes "
        "never arrive (monitoring then measures drift only)"
    )


#: The package under which use cases are found by name (unless configuration names a module).
PACKAGE = "headwater.usecases"


def get_usecase(name: str, module: str | None = None) -> UseCase:
    """Import the use case ``name`` (``headwater.usecases.<name>``, or ``module``): its USECASE."""
    target = module or f"{PACKAGE}.{name}"
    try:
        imported = importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if not target.startswith(exc.name or "\0"):
            raise
        raise ValueError(
            f"unknown use case {name!r}: no module {target} "
            f"(add the package headwater/usecases/{name}/ or set usecase.{name}.module)"
        ) from None
    usecase = getattr(imported, "USECASE", None)
    if usecase is None:
        raise ValueError(f"use case module {target} defines no USECASE")
    if usecase.name != name:
        raise ValueError(f"use case module {target} declares name {usecase.name!r}, not {name!r}")
    return usecase


# -- conformance -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConformanceSpec:
    """How the conformance suite (``tests/usecases/``) runs a use case: the optional member
    ``conformance`` of :class:`UseCase`.

    ``start`` to ``end`` (inclusive) is a small range of the use case's demo data that trains
    and holds out something; ``vocabulary`` lists words that are the use case's own besides
    its name (e.g. a source's or a column's name), which no platform module may contain.
    """

    start: date
    end: date
    vocabulary: tuple[str, ...] = ()
