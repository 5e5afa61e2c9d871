"""The served model: one promoted version, fully loaded, and how it scores a flight (no Flask).

A :class:`ServingModel` is immutable and built completely before anyone sees it,
so swapping versions is one reference assignment (see :mod:`api.model_cache`).
Features come from the shared definition
(:func:`headwater.usecases.flights.features.features_record`) and the lookups stored
with the version; scores from the portable export (:mod:`headwater.scoring`), the
same numbers as Spark's ``transform``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from headwater.model_store import ModelStore, ModelStoreError, ProductionPointer
from headwater.scoring import ExportError, PortablePipeline, load_pipelines
from headwater.usecases.flights.features import (
    CATEGORICAL,
    FEATURES,
    FeatureLookups,
    features_record,
)
from headwater.usecases.flights.prediction_requests import Flight

EXPORT, LOOKUPS, METRICS, LINEAGE = "export.json", "lookups.json", "metrics.json", "lineage.json"


@dataclass(frozen=True)
class ServingModel:
    """Everything needed to answer predictions for one model version."""

    name: str
    version: str
    classifier: PortablePipeline
    regressor: PortablePipeline
    lookups: FeatureLookups
    threshold: float
    # Categories seen in training, by categorical feature (anything else is "unseen").
    known: Mapping[str, frozenset[str]]
    # What GET /v1/model answers, computed once.
    info: Mapping[str, Any] = field(default_factory=dict)
    # Set when both heads share their feature stages: the regression head alone.
    regression_head: PortablePipeline | None = None

    @property
    def ref(self) -> dict[str, str]:
        """The model's name and version, as every prediction reports them."""
        return {"name": self.name, "version": self.version}


def _finite(value: Any) -> Any:
    """Replace NaN and infinities by None, recursively: they are not JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _known_categories(export: Mapping[str, Any]) -> dict[str, frozenset[str]]:
    known: dict[str, frozenset[str]] = {}
    for stage in export["pipelines"]["classifier"]["stages"]:
        if stage.get("type") == "StringIndexer":
            for column, labels in zip(stage["inputCols"], stage["labels"], strict=True):
                known[column] = frozenset(labels)
    return known


def _lineage_summary(lineage: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not isinstance(lineage, Mapping):
        return None
    inputs = lineage.get("inputs") or {}
    datasets = sorted({key.rsplit("/", 1)[0] for key in inputs})
    keep = (
        "run_id",
        "code_version",
        "trained_at",
        "date_range",
        "holdout_from",
        "spark_version",
        "pyspark_version",
        "python_version",
    )
    return {
        **{key: lineage.get(key) for key in keep},
        "input_partitions": len(inputs),
        "input_datasets": datasets,
    }


def build_serving_model(
    export: Mapping[str, Any],
    lookups: Mapping[str, Any],
    metrics: Mapping[str, Any] | None = None,
    lineage: Mapping[str, Any] | None = None,
    pointer: ProductionPointer | None = None,
    name: str = "",
) -> ServingModel:
    """Assemble a :class:`ServingModel` from a version's documents; fail rather than half-load.

    Raises:
        ExportError: the export is malformed, its model needs features this API
            cannot derive, or it cannot score a probe flight.
    """
    pipelines = load_pipelines(export)
    if not {"classifier", "regressor"} <= set(pipelines):
        raise ExportError(f"export has pipelines {sorted(pipelines)}, not classifier and regressor")
    classifier, regressor = pipelines["classifier"], pipelines["regressor"]
    for name, pipeline in (("classifier", classifier), ("regressor", regressor)):
        unknown = sorted(set(pipeline.inputs) - set(FEATURES))
        if unknown:
            raise ExportError(
                f"the {name} needs inputs this API does not derive: {', '.join(unknown)}"
            )
    try:
        feature_lookups = FeatureLookups.from_dict(lookups)
    except TypeError as exc:
        raise ExportError(f"malformed lookups: {exc}") from None
    metadata = export.get("metadata") or {}
    name = str(metadata.get("model") or name)
    version = str(metadata.get("version") or (pointer.version if pointer else ""))
    if pointer is not None and version != pointer.version:
        raise ExportError(f"export.json describes version {version}, not {pointer.version}")
    classifier_stages = export["pipelines"]["classifier"]["stages"]
    regressor_stages = export["pipelines"]["regressor"]["stages"]
    # fit_models fits the feature stages once for both heads: assemble and scale once, too.
    shared = classifier_stages[:-1] == regressor_stages[:-1]
    head = PortablePipeline((), regressor.stages[-1:]) if shared else None
    # The decision is the classifier stage's own (Spark's); report that threshold.
    threshold = classifier_stages[-1].get("threshold", metadata.get("threshold", 0.5))
    known = _known_categories(export)
    metrics = metrics if isinstance(metrics, Mapping) else {}
    info = {
        "name": name,
        "version": version,
        "promoted_at": pointer.promoted_at if pointer else None,
        "trained_at": metadata.get("trained_at"),
        "loaded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "threshold": float(threshold),
        "label": metadata.get("label"),
        "target": metadata.get("target"),
        "features": list(metadata.get("features") or classifier.inputs),
        "categories": {
            column: sorted(labels)
            for column, labels in known.items()
            if column in ("carrier", "origin", "dest")
        },
        "metrics": _finite(
            {
                key: metrics.get(key)
                for key in ("holdout_from", "train_rows", "holdout", "regression", "baselines")
            }
        ),
        "lineage": _finite(_lineage_summary(lineage)),
    }
    model = ServingModel(
        name=name,
        version=version,
        classifier=classifier,
        regressor=regressor,
        lookups=feature_lookups,
        threshold=info["threshold"],
        known=known,
        info=info,
        regression_head=head,
    )
    _probe(model)
    return model


def _probe(model: ServingModel) -> None:
    """Score one flight with every input defaulted: a version that cannot, is not served."""
    first = {column: min(labels, default="") for column, labels in model.known.items()}
    probe = Flight(
        carrier=first.get("carrier", "UA"),
        flight=1,
        origin=first.get("origin", "EWR"),
        dest=first.get("dest", "ORD"),
        scheduled_departure=datetime(2013, 1, 2, 8, 0),
    )
    try:
        answer = predict(model, probe)
    except Exception as exc:  # any failure here would be a 500 for every request
        raise ExportError(
            f"the version cannot score a flight: {type(exc).__name__}: {exc}"
        ) from exc
    if not 0.0 <= answer["delay_probability"] <= 1.0:
        raise ExportError(f"the version scores a probability of {answer['delay_probability']}")


def load_serving_model(store: ModelStore, pointer: ProductionPointer) -> ServingModel:
    """Read one complete version from the store and build its :class:`ServingModel`."""
    version = pointer.version
    if not store.is_complete(version):
        raise ModelStoreError(
            f"{store.uri(version)} is incomplete (no _SUCCESS): refusing to serve it"
        )
    export = store.read_json(version, EXPORT)
    lookups = store.read_json(version, LOOKUPS)
    optional: dict[str, Any] = {}
    for filename in (METRICS, LINEAGE):
        try:
            optional[filename] = store.read_json(version, filename)
        except ModelStoreError:
            optional[filename] = None  # shown as null by GET /v1/model; scoring does not need it
    return build_serving_model(
        export, lookups, optional[METRICS], optional[LINEAGE], pointer, store.name
    )


def predict(model: ServingModel, flight: Flight) -> dict[str, Any]:
    """Score one flight: delay probability, decision, expected arrival delay, provenance."""
    features, defaulted = features_record(
        carrier=flight.carrier,
        origin=flight.origin,
        dest=flight.dest,
        scheduled_departure=flight.scheduled_departure,
        lookups=model.lookups,
        tailnum=flight.tailnum,
        weather=flight.weather,
    )
    scored = model.classifier.transform(features)
    probability, decision = scored["probability"], scored["prediction"]
    if model.regression_head is not None:
        delay = model.regression_head.transform(scored)["prediction"]
    else:
        delay = model.regressor.transform(features)["prediction"]
    return {
        "flight": {
            "carrier": flight.carrier,
            "flight": flight.flight,
            "origin": flight.origin,
            "dest": flight.dest,
            "scheduled_departure": flight.scheduled_departure.isoformat(),
        },
        "delay_probability": probability,
        "delayed": decision == 1.0,
        "threshold": model.threshold,
        "expected_arrival_delay_minutes": delay,
        "defaulted": defaulted,
        "unseen": [name for name in CATEGORICAL if features[name] not in model.known.get(name, ())],
        "model": model.ref,
    }
