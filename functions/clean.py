"""Lambda: validate and clean one partition into the clean zone (rejects to quarantine)."""

from __future__ import annotations

from typing import Any

from headwater.core.config import load_settings
from headwater.core.logs import ensure_logging, log_context
from headwater.core.partitions import parse_partition
from headwater.data.events import CleanEvent
from headwater.data.pipeline import clean_partition


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Parse the event, clean the partition, answer rows, uri, checksum and quarantined."""
    ensure_logging()
    request = CleanEvent.model_validate(event)
    settings = load_settings()
    partition = parse_partition(request.partition, settings.partitioning.grain)
    with log_context(
        run_id=request.run_id, task="clean", usecase=request.usecase, partition=request.partition
    ):
        result = clean_partition(settings, request.usecase, partition, request.run_id)
    return result.to_dict()
