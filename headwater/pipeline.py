"""The data engineering steps as pure-ish functions: extract one source partition, clean one.

These are what the Lambda handlers call. They read configuration and sources,
write only through the lake (atomically) and return a small JSON-able result.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from headwater.config import OpenMeteoSourceConfig, Settings, SqlSourceConfig
from headwater.contracts import REASON
from headwater.lake import Lake, Manifest, open_lake
from headwater.logs import get_logger
from headwater.partitions import Partition
from headwater.usecases import UseCase, get_usecase

RAW, CLEAN, QUARANTINE = "raw", "clean", "quarantine"
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


def lake_for(settings: Settings) -> Lake:
    """Open the lake the settings point at (one filesystem object per process and lake)."""
    return _lake(settings.lake.uri, settings.aws.region, settings.aws.endpoint_url)


@functools.cache
def _lake(uri: str, region: str | None, endpoint_url: str | None) -> Lake:
    return open_lake(uri, region=region, endpoint_url=endpoint_url)


def resolve_reference(value: str, settings: Settings) -> str:
    """Resolve ``ssm:``/``secretsmanager:`` references (secrets never live in config files)."""
    if value.startswith(("ssm:", "secretsmanager:")):
        from headwater import aws

        return aws.resolve_secret(value, region=settings.aws.region)
    return value


@functools.cache
def _engine(url: str) -> Any:
    import sqlalchemy as sa

    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.is_file():
            raise FileNotFoundError(
                f"source database {path} does not exist: build it with `headwater demo-data`"
            )
    return sa.create_engine(url, pool_pre_ping=True)


@functools.cache
def _http_client(rate: float, timeout: float, retries: int) -> Any:
    from headwater.sources.http import HttpPolicy, JsonHttpClient

    return JsonHttpClient(
        HttpPolicy(rate_limit_per_second=rate, timeout_seconds=timeout, max_retries=retries)
    )


def _extract_sql(
    config: SqlSourceConfig, settings: Settings, partition: Partition
) -> tuple[pa.Schema, Any]:
    from headwater.sources.sql import iter_partition

    if config.date_column is None:
        raise ValueError(
            f"source table {config.table!r} has no date_column: it is a reference table, "
            "extracted whole with extract_snapshot"
        )
    engine = _engine(resolve_reference(config.url, settings))
    return iter_partition(
        engine,
        config.table,
        config.date_column,
        partition.start,
        partition.end,
        chunk_rows=config.chunk_rows,
    )


def _extract_openmeteo(
    config: OpenMeteoSourceConfig,
    settings: Settings,
    usecase: UseCase,
    source: str,
    partition: Partition,
) -> tuple[pa.Schema, Any]:
    from headwater.sources.openmeteo import fetch_hourly

    request = usecase.weather_request(source)
    lo, hi = partition.utc_bounds(settings.partitioning.timezone)
    client = _http_client(config.rate_limit_per_second, config.timeout_seconds, config.max_retries)
    frame = fetch_hourly(
        client,
        config.base_url,
        request.locations,
        lo.date(),
        (hi - timedelta(hours=1)).date(),
        request.variables,
        request.units,
        window_days=config.window_days,
    )
    schema = pa.schema(
        [
            pa.field("location", pa.string()),
            pa.field("time", pa.timestamp("us", tz="UTC")),
            *(pa.field(name, pa.float64()) for name in request.variables),
        ]
    )
    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    # The partition is a local calendar period: keep the UTC hours that fall inside it.
    start = pa.scalar(lo, type=schema.field("time").type)
    end = pa.scalar(hi, type=schema.field("time").type)
    inside = pc.and_(pc.greater_equal(table["time"], start), pc.less(table["time"], end))
    return schema, iter([table.filter(inside)])


def extract_partition(
    settings: Settings,
    source: str,
    partition: Partition,
    run_id: str,
    *,
    lake: Lake | None = None,
) -> PartitionResult:
    """Extract one partition of ``source`` into the raw zone (replacing any earlier version)."""
    started = time.perf_counter()
    usecase = get_usecase(settings.usecase)
    config = settings.source(source)
    if source not in usecase.source_names:
        raise ValueError(f"use case {usecase.name!r} has no source {source!r}")
    if isinstance(config, SqlSourceConfig):
        schema, batches = _extract_sql(config, settings, partition)
    else:
        schema, batches = _extract_openmeteo(config, settings, usecase, source, partition)
    lake = lake or lake_for(settings)
    manifest = lake.publish(
        RAW,
        source,
        partition.key,
        batches,
        schema=schema,
        source=f"{config.kind}:{source}",
        run_id=run_id,
    )
    result = _result(lake, manifest, started)
    log.info("extracted", source=source, rows=result.rows, uri=result.uri)
    return result


def snapshot_key(as_of: date) -> str:
    """The lake partition of a reference-table snapshot taken on ``as_of``."""
    return f"snapshot={as_of.isoformat()}"


def extract_snapshot(
    settings: Settings,
    source: str,
    as_of: date,
    run_id: str,
    *,
    lake: Lake | None = None,
) -> PartitionResult:
    """Extract a whole reference table (e.g. planes) as the raw snapshot of ``as_of``."""
    from headwater.sources.sql import iter_table

    started = time.perf_counter()
    config = settings.source(source)
    if not isinstance(config, SqlSourceConfig):
        raise ValueError(f"source {source!r} is not a SQL source: cannot snapshot it")
    engine = _engine(resolve_reference(config.url, settings))
    schema, batches = iter_table(engine, config.table, chunk_rows=config.chunk_rows)
    lake = lake or lake_for(settings)
    manifest = lake.publish(
        RAW,
        source,
        snapshot_key(as_of),
        batches,
        schema=schema,
        source=f"sql:{source}",
        run_id=run_id,
    )
    result = _result(lake, manifest, started)
    log.info("snapshot extracted", source=source, rows=result.rows, uri=result.uri)
    return result


def latest_snapshot(lake: Lake, source: str, as_of: date | None = None) -> str | None:
    """The newest published snapshot key of ``source`` (not after ``as_of``), if any."""
    keys = [k for k in lake.partitions(RAW, source) if k.startswith("snapshot=")]
    if as_of is not None:
        keys = [k for k in keys if k <= snapshot_key(as_of)]
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
    partition: Partition,
    run_id: str,
    *,
    lake: Lake | None = None,
) -> PartitionResult:
    """Validate and clean one partition; publish quarantine first, then the clean data."""
    started = time.perf_counter()
    usecase = get_usecase(settings.usecase)
    lake = lake or lake_for(settings)
    tables: dict[str, pa.Table] = {}
    inputs: dict[str, str] = {}
    for source in usecase.source_names:
        tables[source], manifest = lake.read(RAW, source, partition.key)
        inputs[source] = manifest.checksum
    frames = {name: table.to_pandas(date_as_object=False) for name, table in tables.items()}
    result = usecase.clean(frames, partition, settings.partitioning.timezone)
    quarantined = {name: len(result.quarantine.get(name, ())) for name in tables}
    ledger = reconcile(result.rows_in, result.rows_out, quarantined)
    for source, table in tables.items():
        rejected = result.quarantine.get(source)
        positions = [] if rejected is None else rejected.index.to_numpy()
        reasons = [] if rejected is None else rejected[REASON].astype(str).tolist()
        bad = table.take(pa.array(positions, type=pa.int64()))
        bad = bad.append_column(pa.field(REASON, pa.string()), pa.array(reasons, pa.string()))
        lake.publish(
            QUARANTINE,
            source,
            partition.key,
            [bad],
            schema=bad.schema,
            source=f"contract:{source}",
            run_id=run_id,
        )
    schema = usecase.clean_schema()
    clean = pa.Table.from_pandas(result.clean, schema=schema, preserve_index=False)
    manifest = lake.publish(
        CLEAN,
        usecase.clean_dataset,
        partition.key,
        [clean],
        schema=schema,
        source=f"clean:{usecase.name}",
        run_id=run_id,
        extra={"reconciliation": ledger, "inputs": inputs},
    )
    total_quarantined = sum(quarantined.values())
    out = _result(lake, manifest, started, quarantined=total_quarantined, reconciliation=ledger)
    log.info("cleaned", rows=out.rows, quarantined=total_quarantined, uri=out.uri)
    return out
