"""Secrets: resolve 'ssm:' and 'secretsmanager:' references to their values, never echoing them."""

from __future__ import annotations

import json
from collections.abc import Callable

from botocore.client import BaseClient
from botocore.exceptions import ClientError

from headwater.aws import clients
from headwater.aws.errors import SecretNotFoundError, error_code


def resolve_secret(
    ref: str,
    region: str | None = None,
    client_factory: Callable[..., BaseClient] | None = None,
) -> str:
    """Resolve 'ssm:/name' or 'secretsmanager:name[#key]' to its secret value."""
    make_client = client_factory or clients.client
    scheme, _, name = ref.partition(":")
    secret_id, has_key, key = name.partition("#")
    if scheme == "ssm" and name:
        return _read_ssm_parameter(name, make_client("ssm", region))
    if scheme == "secretsmanager" and secret_id and (key or not has_key):
        value = _read_secretsmanager(secret_id, make_client("secretsmanager", region))
        return _json_key(value, secret_id, key) if key else value
    raise ValueError(
        f"bad secret reference {ref!r}: expected 'ssm:/path/to/param', "
        "'secretsmanager:name' or 'secretsmanager:name#jsonkey'"
    )


def _read_ssm_parameter(name: str, ssm: BaseClient) -> str:
    """Read one SSM parameter, decrypting SecureStrings."""
    try:
        response = ssm.get_parameter(Name=name, WithDecryption=True)
    except ClientError as exc:
        if error_code(exc) in ("ParameterNotFound", "ParameterVersionNotFound"):
            raise SecretNotFoundError(
                f"SSM parameter {name!r} not found in {ssm.meta.region_name}"
            ) from exc
        raise
    return str(response["Parameter"]["Value"])


def _read_secretsmanager(secret_id: str, secrets: BaseClient) -> str:
    """Read the current value of one Secrets Manager secret as text."""
    try:
        response = secrets.get_secret_value(SecretId=secret_id)
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            raise SecretNotFoundError(
                f"Secrets Manager secret {secret_id!r} not found in {secrets.meta.region_name}"
            ) from exc
        raise
    if "SecretString" in response:
        return str(response["SecretString"])
    try:
        return bytes(response["SecretBinary"]).decode("utf-8")
    except (KeyError, UnicodeDecodeError) as exc:
        raise ValueError(f"Secrets Manager secret {secret_id!r} has no text value") from exc


def _json_key(value: str, secret_id: str, key: str) -> str:
    """Return key from a secret holding a JSON object; never echo the secret itself."""
    try:
        document = json.loads(value)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise ValueError(
            f"Secrets Manager secret {secret_id!r} is not a JSON object, cannot read key {key!r}"
        )
    if key not in document:
        raise SecretNotFoundError(f"Secrets Manager secret {secret_id!r} has no key {key!r}")
    item = document[key]
    return item if isinstance(item, str) else json.dumps(item)
