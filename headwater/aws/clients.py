"""Lazy, cached boto3 clients with an explicit region, endpoint, timeouts and retry policy."""

from __future__ import annotations

import os
import threading

import boto3
from botocore.client import BaseClient
from botocore.config import Config

DEFAULT_REGION = "us-east-1"
ENDPOINT_URL_ENV = "HEADWATER_AWS_ENDPOINT_URL"

CONNECT_TIMEOUT_SECONDS = 10
READ_TIMEOUT_SECONDS = 60
# A synchronous invoke holds the connection open for the whole run (Lambda's limit is 15 min).
LAMBDA_READ_TIMEOUT_SECONDS = 15 * 60 + 30

_clients: dict[tuple[str, str, str | None], BaseClient] = {}
_clients_lock = threading.Lock()


def resolve_region(region: str | None = None) -> str:
    """Return the region: the argument, else AWS_REGION / AWS_DEFAULT_REGION, else us-east-1."""
    return (
        region
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or DEFAULT_REGION
    )


def _client_config(service: str, region: str) -> Config:
    """Build the botocore Config (timeouts, retries) for one service client."""
    if service == "lambda":
        # LambdaExecutor owns the retry policy for invokes; botocore retrying underneath it would
        # multiply attempts and could re-run a function whose response merely timed out.
        return Config(
            region_name=region,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            read_timeout=LAMBDA_READ_TIMEOUT_SECONDS,
            retries={"mode": "standard", "total_max_attempts": 1},
            tcp_keepalive=True,
        )
    return Config(
        region_name=region,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        retries={"mode": "standard", "total_max_attempts": 5},
    )


def client(service: str, region: str | None = None, endpoint_url: str | None = None) -> BaseClient:
    """Return a cached boto3 client for service, created on first use.

    The endpoint is the argument, else HEADWATER_AWS_ENDPOINT_URL (a moto or LocalStack
    server), else AWS's own. Service modules call this through the module
    (``clients.client(...)``), so a test replaces every client by patching one name.
    """
    region = resolve_region(region)
    endpoint_url = endpoint_url or os.environ.get(ENDPOINT_URL_ENV) or None
    key = (service, region, endpoint_url)
    with _clients_lock:
        cached = _clients.get(key)
        if cached is None:
            # One Session per client: boto3's default session is not safe to share across threads.
            cached = boto3.session.Session().client(
                service,
                region_name=region,
                endpoint_url=endpoint_url,
                config=_client_config(service, region),
            )
            _clients[key] = cached
    return cached


def reset_clients() -> None:
    """Forget every cached client (tests call this between mocks)."""
    with _clients_lock:
        _clients.clear()
