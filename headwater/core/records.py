"""What a training run leaves beside its model: ``metrics.json`` and ``lineage.json``, typed.

The training job builds a :class:`TrainingMetrics` and a :class:`Lineage` and writes them with
:meth:`~TrainingMetrics.to_dict`; the registry, the report, the notification, the CLI and the
API read them back with :meth:`~TrainingMetrics.from_dict`: every field is named here and
nowhere else. Plain Python (the API's Lambda package imports it).

Versions on disk stay readable: every section is optional (a missing one reads as empty or
None), a field this module does not know is kept in ``extra`` and written back as it was,
and ``to_dict(from_dict(document)) == document`` for every document a training job wrote,
including a lineage whose range is the old ``"start..end"`` string. A present field of the
wrong shape is a :class:`RecordError` naming the document and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

#: The document names used in errors when the caller gives none (the files' names).
METRICS_DOCUMENT = "metrics.json"
LINEAGE_DOCUMENT = "lineage.json"
#: The separator of a lineage range's old one-string form (``2013-01-01..2013-12-31``).
_RANGE_SEPARATOR = ".."

Number = int | float


class RecordError(ValueError):
    """A field of a training document has the wrong shape: which document, field, and why."""

    def __init__(self, document: str, field: str, problem: str) -> None:
        super().__init__(f"{document}: {field} {problem}")
        self.document = document
        self.field = field
        self.problem = problem

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.document, self.field, self.problem))


# -- readers of one field: the value, or a RecordError naming it --------------------------------
def _mapping(value: Any, document: str, name: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise RecordError(document, name, f"is {_shown(value)}, not a JSON object")
    return value


def _text(value: Any, document: str, name: str) -> str:
    if not isinstance(value, str):
        raise RecordError(document, name, f"is {_shown(value)}, not a string")
    return value


def _number(value: Any, document: str, name: str) -> Number:
    # NaN and infinities are numbers here (Spark gives an R² of NaN): readers show them as null.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError(document, name, f"is {_shown(value)}, not a number")
    return value


def _integer(value: Any, document: str, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordError(document, name, f"is {_shown(value)}, not a whole number")
    return value


def _date(value: Any, document: str, name: str) -> date:
    try:
        return date.fromisoformat(_text(value, document, name))
    except ValueError:
        raise RecordError(document, name, f"is {_shown(value)}, not an ISO date") from None


def _numbers(value: Any, document: str, name: str) -> dict[str, Number]:
    return {
        str(key): _number(item, document, f"{name}.{key}")
        for key, item in _mapping(value, document, name).items()
    }


def _texts(value: Any, document: str, name: str) -> dict[str, str]:
    return {
        str(key): _text(item, document, f"{name}.{key}")
        for key, item in _mapping(value, document, name).items()
    }


def _optional(data: Mapping[str, Any], key: str, read: Any, document: str) -> Any:
    """``read(data[key], document, key)``, or None when the key is absent."""
    return read(data[key], document, key) if key in data else None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _without_none(pairs: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in pairs.items() if value is not None}


# -- parts ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DateRange:
    """The first and last day (inclusive) a training read."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"the range ends ({self.end}) before it starts ({self.start})")

    def __str__(self) -> str:
        return f"{self.start}{_RANGE_SEPARATOR}{self.end}"

    def to_dict(self) -> dict[str, str]:
        """``{"start": ..., "end": ...}`` as ISO dates."""
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}

    @classmethod
    def from_dict(
        cls, data: Any, document: str = LINEAGE_DOCUMENT, name: str = "range"
    ) -> DateRange:
        """The range from :meth:`to_dict`'s form, or from the old ``"start..end"`` string."""
        if isinstance(data, str):
            first, separator, last = data.partition(_RANGE_SEPARATOR)
            if not separator:
                raise RecordError(document, name, f"is {data!r}, not 'start..end'")
            start, end = _date(first, document, name), _date(last, document, name)
        else:
            body = _mapping(data, document, name)
            for key in ("start", "end"):
                if key not in body:
                    raise RecordError(document, f"{name}.{key}", "is missing")
            start = _date(body["start"], document, f"{name}.start")
            end = _date(body["end"], document, f"{name}.end")
        if end < start:
            raise RecordError(document, name, f"ends ({end}) before it starts ({start})")
        return cls(start, end)


@dataclass(frozen=True)
class QuantityNames:
    """A predicted quantity as the job recorded it: its column, human name and unit."""

    column: str
    name: str
    unit: str = ""

    def to_dict(self) -> dict[str, str]:
        """``{"column", "name", "unit"}``."""
        return {"column": self.column, "name": self.name, "unit": self.unit}

    @classmethod
    def from_dict(cls, data: Any, document: str, name: str) -> QuantityNames:
        """The names from :meth:`to_dict`'s form."""
        body = _mapping(data, document, name)
        return cls(
            _text(body.get("column", ""), document, f"{name}.column"),
            _text(body.get("name", ""), document, f"{name}.name"),
            _text(body.get("unit", ""), document, f"{name}.unit"),
        )


@dataclass(frozen=True)
class HoldoutWindow:
    """The holdout the gate compares on: its first and last day, its rows and days with rows."""

    start: date
    end: date
    rows: int
    days: int

    def to_dict(self) -> dict[str, Any]:
        """``{"from", "to", "rows", "days"}`` (dates as ISO strings)."""
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "rows": self.rows,
            "days": self.days,
        }

    @classmethod
    def from_dict(cls, data: Any, document: str, name: str = "holdout_window") -> HoldoutWindow:
        """The window from :meth:`to_dict`'s form."""
        body = _mapping(data, document, name)
        missing = [key for key in ("from", "to", "rows", "days") if key not in body]
        if missing:
            raise RecordError(document, f"{name}.{missing[0]}", "is missing")
        return cls(
            _date(body["from"], document, f"{name}.from"),
            _date(body["to"], document, f"{name}.to"),
            _integer(body["rows"], document, f"{name}.rows"),
            _integer(body["days"], document, f"{name}.days"),
        )


@dataclass(frozen=True)
class ProductionScore:
    """The production version scored on the candidate's holdout: its metrics, or why not."""

    #: The production version.
    version: str
    #: Its holdout metrics (empty when it could not score the holdout).
    metrics: Mapping[str, Number] = field(default_factory=dict)
    #: Why it could not score the holdout (a model of another feature set, say).
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """``{"version", **metrics}``, or ``{"version", "error"}``."""
        out: dict[str, Any] = {"version": self.version, **self.metrics}
        if self.error is not None:
            out["error"] = self.error
        return out

    @classmethod
    def from_dict(
        cls, data: Any, document: str, name: str = "production_on_holdout"
    ) -> ProductionScore:
        """The score from :meth:`to_dict`'s form."""
        body = dict(_mapping(data, document, name))
        if "version" not in body:
            raise RecordError(document, f"{name}.version", "is missing")
        version = _text(body.pop("version"), document, f"{name}.version")
        error = body.pop("error", None)
        return cls(
            version,
            _numbers(body, document, name),
            None if error is None else _text(error, document, f"{name}.error"),
        )


# -- metrics.json ---------------------------------------------------------------------------------
#: metrics.json's fields, in the order the job writes them.
_METRICS_FIELDS = (
    "model",
    "usecase",
    "version",
    "label",
    "target",
    "holdout_from",
    "holdout",
    "regression",
    "baselines",
    "baseline_descriptions",
    "calibration",
    "train_rows",
    "threshold",
    "holdout_window",
    "production_on_holdout",
    "comparison",
    "export_parity",
)


@dataclass(frozen=True)
class TrainingMetrics:
    """A model version's evaluation (``metrics.json``): holdout, baselines, comparison, parity."""

    #: The model's (the use case's) name and the version's id.
    model: str | None = None
    usecase: str | None = None
    version: str | None = None
    #: What the classifier and the regression predict, with their human names and units.
    label: QuantityNames | None = None
    target: QuantityNames | None = None
    #: The holdout's first day.
    holdout_from: date | None = None
    #: The classifier's holdout metrics (``auc_roc``, ``log_loss``, ``rows``...).
    holdout: Mapping[str, Number] = field(default_factory=dict)
    #: The regression's holdout metrics (``rmse``, ``mae``, ``r2``).
    regression: Mapping[str, Number] = field(default_factory=dict)
    #: Each baseline's metrics on the same holdout.
    baselines: Mapping[str, Mapping[str, Number]] = field(default_factory=dict)
    #: Each of the use case's baselines described in words.
    baseline_descriptions: Mapping[str, str] | None = None
    #: Mean score against observed rate per score decile.
    calibration: tuple[Mapping[str, Number], ...] | None = None
    train_rows: int | None = None
    #: The classifier's decision threshold.
    threshold: float | None = None
    holdout_window: HoldoutWindow | None = None
    #: The production version on the same holdout (None: no production to compare with).
    production_on_holdout: ProductionScore | None = None
    #: The intervals on (candidate - production), as :mod:`headwater.model.comparison` and the
    #: gate define them (kept as recorded: that module owns its shape).
    comparison: Mapping[str, Any] | None = None
    #: How far the portable export's scores are from Spark's.
    export_parity: Mapping[str, Number] | None = None
    #: Fields this module does not know (a newer job's), written back as they were.
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The document (``metrics.json``): absent parts are left out, dates as ISO strings."""
        values: dict[str, Any] = {
            "model": self.model,
            "usecase": self.usecase,
            "version": self.version,
            "label": self.label.to_dict() if self.label else None,
            "target": self.target.to_dict() if self.target else None,
            "holdout_from": self.holdout_from.isoformat() if self.holdout_from else None,
            "holdout": dict(self.holdout),
            "regression": dict(self.regression),
            "baselines": {name: dict(values) for name, values in self.baselines.items()},
            "baseline_descriptions": (
                None if self.baseline_descriptions is None else dict(self.baseline_descriptions)
            ),
            "calibration": (
                None if self.calibration is None else [dict(row) for row in self.calibration]
            ),
            "train_rows": self.train_rows,
            "threshold": self.threshold,
            "holdout_window": self.holdout_window.to_dict() if self.holdout_window else None,
            "production_on_holdout": (
                self.production_on_holdout.to_dict() if self.production_on_holdout else None
            ),
            "comparison": None if self.comparison is None else dict(self.comparison),
            "export_parity": None if self.export_parity is None else dict(self.export_parity),
        }
        return {**_without_none(values), **self.extra}

    @classmethod
    def from_dict(cls, data: Any, document: str = METRICS_DOCUMENT) -> TrainingMetrics:
        """The metrics from a ``metrics.json`` (any version's); ``document`` names it in errors."""
        d = document
        body = _mapping(data, d, "the document")
        baselines = _mapping(body.get("baselines", {}), d, "baselines")
        calibration = _optional(body, "calibration", _rows, d)
        threshold = _optional(body, "threshold", _number, d)
        return cls(
            model=_optional(body, "model", _text, d),
            usecase=_optional(body, "usecase", _text, d),
            version=_optional(body, "version", _text, d),
            label=_optional(body, "label", QuantityNames.from_dict, d),
            target=_optional(body, "target", QuantityNames.from_dict, d),
            holdout_from=_optional(body, "holdout_from", _date, d),
            holdout=_numbers(body.get("holdout", {}), d, "holdout"),
            regression=_numbers(body.get("regression", {}), d, "regression"),
            baselines={
                str(name): _numbers(values, d, f"baselines.{name}")
                for name, values in baselines.items()
            },
            baseline_descriptions=_optional(body, "baseline_descriptions", _texts, d),
            calibration=calibration,
            train_rows=_optional(body, "train_rows", _integer, d),
            threshold=threshold,
            holdout_window=_optional(body, "holdout_window", HoldoutWindow.from_dict, d),
            production_on_holdout=_optional(
                body, "production_on_holdout", ProductionScore.from_dict, d
            ),
            comparison=_optional(body, "comparison", _mapping, d),
            export_parity=_optional(body, "export_parity", _numbers, d),
            extra={k: v for k, v in body.items() if k not in _METRICS_FIELDS},
        )


def _rows(value: Any, document: str, name: str) -> tuple[dict[str, Number], ...]:
    if not isinstance(value, list):
        raise RecordError(document, name, f"is {_shown(value)}, not a list")
    return tuple(_numbers(row, document, f"{name}[{i}]") for i, row in enumerate(value))


# -- lineage.json ---------------------------------------------------------------------------------
#: lineage.json's fields, in the order the job writes them (``date_range``: the old range).
_LINEAGE_FIELDS = (
    "model",
    "usecase",
    "version",
    "run_id",
    "code_version",
    "training_key",
    "trained_at",
    "range",
    "date_range",
    "holdout_from",
    "inputs",
    "config",
    "spark_version",
    "pyspark_version",
    "python_version",
)


@dataclass(frozen=True)
class Lineage:
    """Where a model version comes from (``lineage.json``): code, run, dates, inputs, versions."""

    model: str | None = None
    usecase: str | None = None
    version: str | None = None
    #: The run that trained it and the code's version.
    run_id: str | None = None
    code_version: str | None = None
    #: What identifies this training (:func:`headwater.model.runners.training_key`).
    training_key: str | None = None
    trained_at: datetime | None = None
    #: The days it read: trained on ``range.start`` up to ``holdout_from``, held out after.
    range: DateRange | None = None
    holdout_from: date | None = None
    #: The checksum of every input read (``zone/dataset/partition`` -> ``sha256:...``).
    inputs: Mapping[str, str] = field(default_factory=dict)
    #: The configuration the training depended on, as recorded.
    config: Mapping[str, Any] | None = None
    spark_version: str | None = None
    pyspark_version: str | None = None
    python_version: str | None = None
    #: Fields this module does not know (a newer job's), written back as they were.
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: Read from a version written before the range was two fields: written back that way,
    #: so that an old version's document reads the same (new documents never set it).
    range_as_text: bool = field(default=False, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The document (``lineage.json``): absent parts are left out, dates as ISO strings."""
        span: dict[str, Any] = {"range": None, "date_range": None}
        if self.range is not None:
            span["date_range" if self.range_as_text else "range"] = (
                str(self.range) if self.range_as_text else self.range.to_dict()
            )
        values: dict[str, Any] = {
            "model": self.model,
            "usecase": self.usecase,
            "version": self.version,
            "run_id": self.run_id,
            "code_version": self.code_version,
            "training_key": self.training_key,
            "trained_at": self.trained_at.isoformat() if self.trained_at else None,
            **span,
            "holdout_from": self.holdout_from.isoformat() if self.holdout_from else None,
            "inputs": dict(self.inputs),
            "config": None if self.config is None else dict(self.config),
            "spark_version": self.spark_version,
            "pyspark_version": self.pyspark_version,
            "python_version": self.python_version,
        }
        return {**_without_none(values), **self.extra}

    @classmethod
    def from_dict(cls, data: Any, document: str = LINEAGE_DOCUMENT) -> Lineage:
        """The lineage from a ``lineage.json`` (any version's); ``document`` names it in errors."""
        d = document
        body = _mapping(data, d, "the document")
        if "range" in body and "date_range" in body:
            raise RecordError(d, "range", "is given twice (range and date_range)")
        span = None
        if "range" in body:
            span = DateRange.from_dict(body["range"], d, "range")
        elif "date_range" in body:
            span = DateRange.from_dict(_text(body["date_range"], d, "date_range"), d, "date_range")
        trained_at = _optional(body, "trained_at", _text, d)
        try:
            when = None if trained_at is None else datetime.fromisoformat(trained_at)
        except ValueError:
            raise RecordError(d, "trained_at", f"is {trained_at!r}, not an ISO time") from None
        return cls(
            model=_optional(body, "model", _text, d),
            usecase=_optional(body, "usecase", _text, d),
            version=_optional(body, "version", _text, d),
            run_id=_optional(body, "run_id", _text, d),
            code_version=_optional(body, "code_version", _text, d),
            training_key=_optional(body, "training_key", _text, d),
            trained_at=when,
            range=span,
            holdout_from=_optional(body, "holdout_from", _date, d),
            inputs=_texts(body.get("inputs", {}), d, "inputs"),
            config=_optional(body, "config", _mapping, d),
            spark_version=_optional(body, "spark_version", _text, d),
            pyspark_version=_optional(body, "pyspark_version", _text, d),
            python_version=_optional(body, "python_version", _text, d),
            extra={k: v for k, v in body.items() if k not in _LINEAGE_FIELDS},
            range_as_text="date_range" in body,
        )

    @property
    def input_datasets(self) -> list[str]:
        """The datasets it read (``zone/dataset``), sorted."""
        return sorted({key.rsplit("/", 1)[0] for key in self.inputs})
