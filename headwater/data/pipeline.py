"""The data engineering steps as pure-ish functions: extract one source partition, clean one.

These are what the Lambda handlers call. They read configuration and sources,
write only through the lake (atomically) and return a small JSON-able result.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

import pandas as pd
import pyarrow as pa

from headwater import aws
from headwater.core import layout
from headwater.core.config import Settings
from headwater.core.layout import CLEAN, QUARANTINE, RAW
from headwater.core.logs import get_logger
from headwater.core.partitions import Partition
from headwater.core.usecase import SourceContext, UseCase, get_usecase
from headwater.data.contracts import REASON, screen_rows
from headwater.data.lake import Lake, Manifest, lake_for
from headwater.data.sources import get_kind, register_usecase_kinds, validate_source

__all__ = ["CLEAN", "QUARANTINE", "RAW"]  # re-exported: callers name the zones through here too
log = get_logger(__name__)


class ReconciliationError(RuntimeError):
    """Rows in do not equal rows out plus rows quarantined."""


@dataclass(frozen=True)
class PartitionResult:
    """What a step returns (and what a Lambda function answers)."""

    dataset: str
    partition: str
    rows: int
    uri: str
    checksum: str
    quarantined: int = 0
    seconds: float = 0.0
    reconciliation: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-able form."""
        return asdict(self)


def resolve_reference(value: str, settings: Settings) -> str:
    """Resolve ``ssm:``/``secretsmanager:`` references (secrets never live in config files)."""
    if value.startswith(("ssm:", "secretsmanager:")):
        return aws.resolve_secret(value, region=settings.aws.region)
    return value


def usecase_of(settings: Settings, usecase: str) -> UseCase:
    """The configured use case ``usecase`` (its module from configuration, if set).

    The source kinds it brings (``source_kinds``) are registered before it is returned.
    """
    case = get_usecase(usecase, settings.usecase_config(usecase).module)
    register_usecase_kinds(case)
    return case


def timezone_of(settings: Settings, usecase: str) -> str:
    """The zone of the use case's partitions: the configured override, else its own."""
    configured = settings.usecase_config(usecase).timezone
    return configured or usecase_of(settings, usecase).timezone


def _context(settings: Settings, case: UseCase, source: str) -> SourceContext:
    return SourceContext(
        usecase=case.name,
        source=source,
        timezone=timezone_of(settings, case.name),
        request=case.source_request(source),
        resolve=lambda value: resolve_reference(value, settings),
    )


def extract_partition(
    settings: Settings,
    usecase: str,
    source: str,
    partition: Partition,
    run_id: str,
    *,
    lake: Lake | None = None,
) -> PartitionResult:
    """Extract one partition of a use case's source into the raw zone (replacing any earlier)."""
    started = time.perf_counter()
    case = usecase_of(settings, usecase)
    if source not in case.sources:
        raise ValueError(
            f"use case {usecase!r} extracts no source {source!r} by partition "
            f"(its sources: {', '.join(case.sources)})"
        )
    result = _publish_raw(
        settings,
        case,
        usecase,
        source,
        partition.key,
        lambda kind, options, ctx: kind.extract(options, ctx, partition),
        run_id,
        lake,
        started,
    )
    log.info("extracted", usecase=usecase, source=source, rows=result.rows, uri=result.uri)
    return result


def extract_snapshot(
    settings: Settings,
    usecase: str,
    source: str,
    as_of: date,
    run_id: str,
    *,
    lake: Lake | None = None,
) -> PartitionResult:
    """Extract a whole reference table of a use case as the raw snapshot of ``as_of``."""
    started = time.perf_counter()
    case = usecase_of(settings, usecase)
    if source not in case.references:
        raise ValueError(
            f"use case {usecase!r} has no reference table {source!r} "
            f"(its references: {', '.join(case.references) or 'none'})"
        )
    result = _publish_raw(
        settings,
        case,
        usecase,
        source,
        layout.snapshot_key(as_of),
        lambda kind, options, ctx: kind.snapshot(options, ctx, as_of),
        run_id,
        lake,
        started,
    )
    log.info("snapshot extracted", usecase=usecase, source=source, rows=result.rows)
    return result


def _publish_raw(
    settings: Settings,
    case: UseCase,
    usecase: str,
    source: str,
    key: str,
    read: Callable[[Any, Any, SourceContext], tuple[pa.Schema, Iterable[pa.Table]]],
    run_id: str,
    lake: Lake | None,
    started: float,
) -> PartitionResult:
    """Read one source through its kind (``read(kind, options, context)``) into raw ``key``."""
    config = settings.source(usecase, source)
    options = validate_source(config, f"source {source!r} of use case {usecase!r}")
    schema, batches = read(get_kind(config.kind), options, _context(settings, case, source))
    lake = lake or lake_for(settings)
    manifest = lake.publish(
        RAW,
        layout.dataset(usecase, source),
        key,
        batches,
        schema=schema,
        source=f"{config.kind}:{usecase}/{source}",
        run_id=run_id,
    )
    return _result(lake, manifest, started)


def latest_snapshot(lake: Lake, usecase: str, source: str, as_of: date | None = None) -> str | None:
    """The newest published snapshot key of a use case's reference table (not after ``as_of``)."""
    prefix = layout.SNAPSHOT_PREFIX
    keys = [
        k for k in lake.partitions(RAW, layout.dataset(usecase, source)) if k.startswith(prefix)
    ]
    if as_of is not None:
        keys = [k for k in keys if k <= layout.snapshot_key(as_of)]
    return max(keys) if keys else None


def _result(lake: Lake, manifest: Manifest, started: float, **extra: Any) -> PartitionResult:
    return PartitionResult(
        dataset=manifest.dataset,
        partition=manifest.partition,
        rows=manifest.rows,
        uri=lake.uri_of(manifest.zone, manifest.dataset, manifest.partition, manifest.file),
        checksum=manifest.checksum,
        seconds=round(time.perf_counter() - started, 4),
        **extra,
    )


def reconcile(
    rows_in: Mapping[str, int], rows_out: Mapping[str, int], quarantined: Mapping[str, int]
) -> dict[str, dict[str, int]]:
    """Check rows in = rows out + rows quarantined for every source; return the ledger."""
    ledger = {
        name: {"in": rows_in[name], "out": rows_out[name], "quarantined": quarantined[name]}
        for name in rows_in
    }
    broken = {n: v for n, v in ledger.items() if v["in"] != v["out"] + v["quarantined"]}
    if broken:
        raise ReconciliationError(f"partition does not reconcile: {broken}")
    return ledger


def clean_partition(
    settings: Settings,
    usecase: str,
    partition: Partition,
    run_id: str,
    *,
    lake: Lake | None = None,
) -> PartitionResult:
    """Validate and clean one partition of a use case; publish quarantine first, then clean.

    Before the use case sees them, rows a source could not read and duplicates (by the
    use case's key of that source, else exact) are quarantined here, the first kept, so
    every use case gets both rules. Rows in = rows out + rows quarantined, per source.
    """
    started = time.perf_counter()
    case = usecase_of(settings, usecase)
    lake = lake or lake_for(settings)
    tables: dict[str, pa.Table] = {}
    inputs: dict[str, str] = {}
    for source in case.sources:
        tables[source], manifest = lake.read(RAW, layout.dataset(usecase, source), partition.key)
        inputs[source] = manifest.checksum
    keys: Mapping[str, tuple[str, ...]] = getattr(case, "keys", None) or {}
    screened = {
        name: screen_rows(table.to_pandas(date_as_object=False), keys.get(name, ()))
        for name, table in tables.items()
    }
    # The use case cleans the rows kept, renumbered 0..n-1; kept[name] maps them back.
    kept = {name: rows.index.to_numpy() for name, (rows, _) in screened.items()}
    frames = {name: rows.reset_index(drop=True) for name, (rows, _) in screened.items()}
    result = case.clean(frames, partition, timezone_of(settings, usecase))
    reasons = {}
    for name in tables:
        rejected = result.quarantine.get(name)
        own = (
            pd.Series(dtype="str")
            if rejected is None
            else pd.Series(
                rejected[REASON].astype(str).to_numpy(), index=kept[name][rejected.index]
            )
        )
        reasons[name] = pd.concat([screened[name][1], own]).sort_index()
    quarantined = {name: len(reasons[name]) for name in tables}
    rows_in = {name: table.num_rows for name, table in tables.items()}
    ledger = reconcile(rows_in, result.rows_out, quarantined)
    for source, table in tables.items():
        bad = table.take(pa.array(reasons[source].index.to_numpy(), type=pa.int64()))
        bad = bad.append_column(
            pa.field(REASON, pa.string()), pa.array(reasons[source].tolist(), pa.string())
        )
        lake.publish(
            QUARANTINE,
            layout.dataset(usecase, source),
            partition.key,
            [bad],
            schema=bad.schema,
            source=f"contract:{usecase}/{source}",
            run_id=run_id,
        )
    schema = case.clean_schema()
    clean = pa.Table.from_pandas(result.clean, schema=schema, preserve_index=False)
    manifest = lake.publish(
        CLEAN,
        layout.dataset(usecase, case.clean_dataset),
        partition.key,
        [clean],
        schema=schema,
        source=f"clean:{usecase}",
        run_id=run_id,
        extra={"reconciliation": ledger, "inputs": inputs},
    )
    total_quarantined = sum(quarantined.values())
    out = _result(lake, manifest, started, quarantined=total_quarantined, reconciliation=ledger)
    log.info("cleaned", usecase=usecase, rows=out.rows, quarantined=total_quarantined, uri=out.uri)
    return out
