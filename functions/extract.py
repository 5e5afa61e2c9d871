"""Lambda: extract one partition of one source into the raw zone of the lake."""

from __future__ import annotations

from typing import Any

from headwater.core.config import load_settings
from headwater.core.logs import ensure_logging, log_context
from headwater.core.partitions import parse_partition
from headwater.data.events import ExtractEvent
from headwater.data.pipeline import extract_partition


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Parse the event, extract the partition, answer rows, uri and checksum."""
    ensure_logging()
    request = ExtractEvent.model_validate(event)
    settings = load_settings()
    partition = parse_partition(request.partition, settings.partitioning.grain)
    with log_context(
        run_id=request.run_id,
        task="extract",
        usecase=request.usecase,
        source=request.source,
        partition=request.partition,
    ):
        result = extract_partition(
            settings, request.usecase, request.source, partition, request.run_id
        )
    return result.to_dict()
