"""Monitoring records in the lake: ``monitoring/<usecase>/<partition>/``, and what they are
computed from.

:func:`monitor_published` gathers a partition's inputs (its collected predictions, its clean
rows and those of the partitions the served events fall in, the registry's production
pointer and, per version, ``metrics.json``, ``profile.json`` and ``lookups.json``), each read
through its manifest or the registry and verified, and calls the pure
:func:`headwater.monitoring.monitor.monitor_partition`. :func:`publish_monitoring` writes the
record as a one-row Parquet file with its manifest and checksum through
:meth:`headwater.data.lake.Lake.publish` (atomic: the manifest last; idempotent: a re-run
replaces the partition whole), and :func:`read_monitoring` reads it back, checksum verified.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta

import pandas as pd
import pyarrow as pa

from headwater.core import layout
from headwater.core.config import GateConfig
from headwater.core.partitions import Grain, Partition, partition_of
from headwater.core.records import DateRange, Lineage
from headwater.core.usecase import UseCase, outcome_of
from headwater.data.lake import Lake, LakeError, Manifest
from headwater.monitoring.collect import read_predictions
from headwater.monitoring.drift import Thresholds
from headwater.monitoring.monitor import (
    PartitionMonitoring,
    VersionInputs,
    join_outcomes,
    monitor_partition,
)
from headwater.monitoring.reference import ModelReference
from headwater.monitoring.shadow import ShadowComparison, ShadowPair, compare_shadow, pair_records
from headwater.monitoring.windows import with_windows
from headwater.registry.registry import Registry
from headwater.serving.capture import CaptureRecord

#: The Parquet schema of a monitoring partition: one row, the record as JSON.
SCHEMA = pa.schema([("usecase", pa.string()), ("partition", pa.string()), ("record", pa.string())])
#: The source named in the manifests of monitoring partitions.
SOURCE = "monitoring"


def publish_monitoring(
    lake: Lake, monitoring: PartitionMonitoring, partition: Partition, run_id: str
) -> Manifest:
    """Publish the record as ``monitoring/<usecase>/<partition>/`` (atomic, replaces it whole)."""
    body = json.dumps(monitoring.to_dict(), sort_keys=True, separators=(",", ":"))
    table = pa.table(
        {"usecase": [monitoring.usecase], "partition": [monitoring.partition], "record": [body]},
        schema=SCHEMA,
    )
    return lake.publish(
        layout.MONITORING,
        layout.dataset(monitoring.usecase, ""),
        partition.key,
        [table],
        schema=SCHEMA,
        source=SOURCE,
        run_id=run_id,
        extra={
            "predictions": monitoring.predictions,
            "clean_rows": monitoring.clean_rows,
            "production": monitoring.production,
        },
    )


def read_monitoring(lake: Lake, usecase: str, partition_key: str) -> PartitionMonitoring:
    """A published monitoring partition's record (checksum and row count verified)."""
    table, _ = lake.read(layout.MONITORING, layout.dataset(usecase, ""), partition_key)
    (body,) = table.column("record").to_pylist()
    return PartitionMonitoring.from_dict(json.loads(body))


def monitored_partitions(lake: Lake, usecase: str) -> list[str]:
    """The published monitoring partitions of ``usecase`` (their keys), sorted."""
    return lake.partitions(layout.MONITORING, layout.dataset(usecase, ""))


def latest_comparison(lake: Lake, usecase: str, shadow_version: str) -> ShadowComparison | None:
    """The newest published ``shadow`` section of ``shadow_version`` (partitions newest first;
    an unreadable partition is passed over), or None."""
    for key in reversed(monitored_partitions(lake, usecase)):
        try:
            section = read_monitoring(lake, usecase, key).shadow
        except LakeError:
            continue
        if section and section.get("shadow_version") == shadow_version:
            try:
                return ShadowComparison.from_dict(section)
            except ValueError:
                continue
    return None


def version_inputs(registry: Registry, usecase: UseCase, version: str) -> VersionInputs | None:
    """What monitoring needs of a version (None: not a complete version of the registry)."""
    if not registry.is_complete(version):
        return None
    metrics = registry.read_metrics(version)
    profile = registry.read_json(version, layout.PROFILE, default=None)
    lookups = registry.read_json(version, layout.LOOKUPS, default=None)
    return VersionInputs(
        version=version,
        reference=ModelReference.from_dict(profile) if profile else None,
        holdout=dict(metrics.holdout),
        regression=dict(metrics.regression),
        lookups=usecase.training.load_lookups(lookups) if lookups is not None else None,
        trained=trained_days(registry.read_lineage(version)),
    )


def trained_days(lineage: Lineage | None) -> DateRange | None:
    """The days a version trained on: its range's start to the day before its holdout (None:
    unknown)."""
    if lineage is None or lineage.range is None:
        return None
    last = lineage.range.end
    if lineage.holdout_from is not None:
        last = min(last, lineage.holdout_from - timedelta(days=1))
    return DateRange(lineage.range.start, last) if last >= lineage.range.start else None


def _clean(lake: Lake, usecase: UseCase, key: str) -> pd.DataFrame | None:
    dataset = layout.dataset(usecase.name, usecase.clean_dataset)
    if lake.manifest(layout.CLEAN, dataset, key) is None:
        return None
    table, _ = lake.read(layout.CLEAN, dataset, key)
    return table.to_pandas()


def shadow_of(
    predictions: Sequence[CaptureRecord],
    outcomes_from: pd.DataFrame,
    usecase: UseCase,
    gate: GateConfig,
    as_of: datetime,
) -> ShadowComparison | None:
    """The live comparison of the shadow against production on the partition's paired answers
    (None: no request was answered by both, or the use case declares no outcome).

    The pairs of the latest (production, shadow) versions served are compared (a promotion
    or a new shadow within the partition starts another pair); each pair's day is its
    event's (the live metrics' blocks), else the day it was served.
    """
    outcome = outcome_of(usecase)
    pairs = pair_records(predictions)
    if outcome is None or not pairs:
        return None
    latest = max(pairs, key=lambda pair: pair[0].served_at)
    versions = (latest[0].model_version, latest[1].model_version)
    pairs = [p for p in pairs if (p[0].model_version, p[1].model_version) == versions]
    spec = usecase.training
    joined = join_outcomes(
        [p for p, _ in pairs], outcomes_from, outcome, spec.label.column, spec.target.column, as_of
    )
    compared = [
        ShadowPair(
            request_id=p.request_id,
            instance=p.instance,
            day=day or p.served_at[:10],
            production=p.probability,
            shadow=s.probability,
            outcome=None if math.isnan(label) else bool(label),
        )
        for (p, s), day, label in zip(pairs, joined.days, joined.labels, strict=True)
    ]
    return compare_shadow(
        compared, gate, production_version=versions[0], shadow_version=versions[1]
    )


def monitor_published(
    lake: Lake,
    usecase: UseCase,
    partition: Partition,
    grain: Grain,
    thresholds: Thresholds,
    as_of: datetime,
    gate: GateConfig | None = None,
) -> PartitionMonitoring:
    """Monitor a published partition: predictions, clean data and versions read from the lake.

    Outcomes are looked for in the clean partitions the served events fall in (a prediction
    served this month may be of an event of another), those published. With the use case's
    ``gate``, the shadow's paired answers are compared with production's (:func:`shadow_of`).
    """
    predictions = []
    if lake.manifest(layout.PREDICTIONS, layout.dataset(usecase.name, ""), partition.key):
        predictions = read_predictions(lake, usecase.name, partition.key)
    clean = _clean(lake, usecase, partition.key)
    clean = clean if clean is not None else pd.DataFrame()
    windows = tuple(getattr(usecase.training, "windows", ()))
    if windows and len(clean):
        # The training job adds its windows over the whole range: here the partition and the
        # partitions either side (a lag reaches into the month before), then this month's rows.
        around = [clean]
        for day in (partition.start - timedelta(days=1), partition.end):
            neighbour = _clean(lake, usecase, partition_of(day, grain).key)
            if neighbour is not None and len(neighbour):
                around.append(neighbour)
        frame = pd.concat(around, ignore_index=True) if len(around) > 1 else clean
        own = frame.index < len(clean)
        clean = with_windows(frame, windows)[own].reset_index(drop=True)
    registry = Registry(lake, usecase.name)
    pointer = registry.production()
    production = pointer.version if pointer else None
    versions = {}
    for version in {r.model_version for r in predictions} | ({production} - {None}):
        found = version_inputs(registry, usecase, version)
        if found is not None:
            versions[version] = found
    outcomes_from = clean
    outcome = outcome_of(usecase)
    if outcome is not None:
        keys = set()
        for record in predictions:
            try:
                day: date = outcome.event_time(record.echo).date()
            except (KeyError, TypeError, ValueError):
                continue
            keys.add(partition_of(day, grain).key)
        others = [
            frame
            for key in sorted(keys - {partition.key})
            if (frame := _clean(lake, usecase, key)) is not None
        ]
        frames = [frame for frame in (clean, *others) if len(frame)]
        if len(frames) > 1:
            outcomes_from = pd.concat(frames, ignore_index=True)
        elif frames:
            outcomes_from = frames[0]
    monitoring = monitor_partition(
        usecase,
        partition.label,
        predictions,
        clean,
        versions,
        production,
        thresholds,
        as_of,
        outcomes_from=outcomes_from,
    )
    shadow = shadow_of(predictions, outcomes_from, usecase, gate, as_of) if gate else None
    if shadow is None:
        return monitoring
    # its text too: the run's Live section prints the record's shadow line as is
    return replace(monitoring, shadow={**shadow.to_dict(), "text": shadow.text()})
