"""Tests for headwater.aws.secrets: SSM and Secrets Manager references, against moto."""

from __future__ import annotations

import json
from typing import Any

import pytest

from headwater import aws


def test_resolve_ssm_secure_string(mocked_aws: None) -> None:
    aws.client("ssm").put_parameter(
        Name="/headwater/prod/db/password", Value="s3cr3t!", Type="SecureString"
    )

    assert aws.resolve_secret("ssm:/headwater/prod/db/password") == "s3cr3t!"


def test_resolve_ssm_in_another_region(mocked_aws: None) -> None:
    aws.client("ssm", "eu-west-1").put_parameter(Name="/hw/token", Value="eu", Type="String")

    assert aws.resolve_secret("ssm:/hw/token", region="eu-west-1") == "eu"
    with pytest.raises(aws.SecretNotFoundError):
        aws.resolve_secret("ssm:/hw/token")


def test_resolve_secretsmanager_plain_and_json_key(mocked_aws: None) -> None:
    secrets = aws.client("secretsmanager")
    secrets.create_secret(Name="headwater/api-token", SecretString="tok-123")
    secrets.create_secret(
        Name="headwater/db",
        SecretString=json.dumps({"username": "hw", "password": "pa#ss", "port": 5432}),
    )

    assert aws.resolve_secret("secretsmanager:headwater/api-token") == "tok-123"
    assert aws.resolve_secret("secretsmanager:headwater/db#password") == "pa#ss"
    assert aws.resolve_secret("secretsmanager:headwater/db#port") == "5432"


def test_resolve_secretsmanager_binary_secret(mocked_aws: None) -> None:
    aws.client("secretsmanager").create_secret(Name="headwater/bin", SecretBinary=b"raw-value")

    assert aws.resolve_secret("secretsmanager:headwater/bin") == "raw-value"


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("ssm:/headwater/missing", "SSM parameter '/headwater/missing' not found in us-east-1"),
        ("secretsmanager:headwater/missing", "secret 'headwater/missing' not found in us-east-1"),
        ("secretsmanager:headwater/db#missing", "secret 'headwater/db' has no key 'missing'"),
    ],
)
def test_missing_secrets_are_named(mocked_aws: None, ref: str, message: str) -> None:
    aws.client("secretsmanager").create_secret(
        Name="headwater/db", SecretString=json.dumps({"password": "hunter2"})
    )

    with pytest.raises(aws.SecretNotFoundError) as caught:
        aws.resolve_secret(ref)

    assert message in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_json_key_of_a_non_json_secret_is_a_clear_error(mocked_aws: None) -> None:
    aws.client("secretsmanager").create_secret(Name="headwater/plain", SecretString="hunter2")

    with pytest.raises(ValueError, match="'headwater/plain' is not a JSON object") as caught:
        aws.resolve_secret("secretsmanager:headwater/plain#password")

    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    "ref",
    [
        "",
        "/headwater/db/password",
        "ssm:",
        "SSM:/headwater/db",
        "vault:secret/headwater",
        "secretsmanager:",
        "secretsmanager:#password",
        "secretsmanager:headwater/db#",
        "env:HEADWATER_TOKEN",
    ],
)
def test_bad_reference_is_rejected_without_calling_aws(ref: str) -> None:
    def no_client(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("no AWS client should be needed")

    with pytest.raises(ValueError, match="bad secret reference") as caught:
        aws.resolve_secret(ref, client_factory=no_client)

    assert repr(ref) in str(caught.value)
