"""Local stand-ins of HTTP sources: the credential they check is the one their source sends."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pyarrow as pa
import pytest
import requests

from headwater.core.config import SourceConfig
from headwater.core.partitions import partition_of
from headwater.core.usecase import SourceContext
from headwater.data.sources import validate_source
from headwater.data.sources.embedded import (
    LoopbackJsonServer,
    Reply,
    json_reply,
    serve_stand_in,
    stand_in_credential,
)
from headwater.data.sources.http import Credential, HttpClientError, HttpSourceError
from headwater.data.sources.json_pages import KIND, PagedRequest

VARIABLE = "HEADWATER_TEST_STAND_IN_TOKEN"
SCHEMA = pa.schema([pa.field("n", pa.int64())])
MONTH = partition_of(date(2020, 1, 1), "month")


class CountingServer(LoopbackJsonServer):
    """Three records on one page; remembers the queries its ``answer`` saw."""

    path = "/v1/items"

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.seen: list[dict[str, list[str]]] = []

    def answer(self, path: str, query: Mapping[str, Sequence[str]]) -> Reply:
        self.seen.append({k: list(v) for k, v in query.items()})
        return json_reply(200, {"items": [{"n": 1}, {"n": 2}, {"n": 3}], "next": None})


@dataclass
class OneSourceUseCase:
    """A use case serving its one HTTP source from ``factory``."""

    name: str = "stand_in_test"
    factory: Any = CountingServer
    asked: list[tuple[str, str, int, float]] = field(default_factory=list)

    def embedded_server(self, source: str, host: str, port: int, rate_limit: float) -> Any:
        self.asked.append((source, host, port, rate_limit))
        return self.factory(host, port, rate_limit_per_second=rate_limit)


def _options(**auth: str) -> Any:
    keys: dict[str, Any] = {"base_url": "http://127.0.0.1:9/v1/items", "embedded_server": True}
    if auth:
        keys["auth"] = auth
    keys["embedded_server_rate_limit"] = 50
    return validate_source(SourceConfig(kind="json_pages", rate_limit_per_second=500, **keys))


def _extract(options: Any, url: str) -> pa.Table:
    options = options.model_copy(update={"base_url": url})
    ctx = SourceContext("stand_in_test", "items", "UTC", PagedRequest(SCHEMA), str)
    _, batches = KIND.extract(options, ctx, MONTH)
    return pa.concat_tables(list(batches))


@pytest.mark.parametrize(
    ("credential", "send", "expected"),
    [
        (Credential("s3cret", header="X-Token"), {"headers": {"x-token": "s3cret"}}, 200),
        (Credential("s3cret", header="X-Token"), {"headers": {"X-Token": "other"}}, 401),
        (Credential("s3cret", header="X-Token"), {}, 401),
        (Credential("s3cret", param="api_key"), {"params": {"api_key": "s3cret"}}, 200),
        (Credential("s3cret", param="api_key"), {"params": {"api_key": ["s3cret", "x"]}}, 401),
        (None, {}, 200),
    ],
    ids=["header", "wrong-header", "no-header", "param", "repeated-param", "none-expected"],
)
def test_a_stand_in_answers_only_the_credential_it_expects(
    credential: Credential | None, send: dict[str, Any], expected: int
) -> None:
    with CountingServer() as server:
        server.expect_credential(credential)
        response = requests.get(server.url, timeout=5, **send)

    assert response.status_code == expected
    if expected == 401:
        assert "credential" in response.json()["error"]["message"]
        assert "s3cret" not in response.text
    else:  # and the API's own answer never sees the platform's parameter
        assert server.seen == [{}]


def test_an_unset_env_credential_is_generated_and_the_extraction_sends_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a source sending a token from a variable nobody exported (a clean clone)
    monkeypatch.delenv(VARIABLE, raising=False)
    options = _options(header="token", value=f"env:{VARIABLE}")
    usecase = OneSourceUseCase()

    # When the platform starts its stand-in
    with serve_stand_in(usecase, "items", options) as stand_in:
        # Then the stand-in got the source's rate limit on a free port of the configured host
        assert usecase.asked == [("items", "127.0.0.1", 0, 50.0)]
        assert stand_in.url.endswith("/v1/items") and ":9/" not in stand_in.url
        # and a generated credential, handed over in the source's variable
        [(variable, token)] = stand_in.environment.items()
        assert variable == VARIABLE and len(token) >= 16
        assert requests.get(stand_in.url, timeout=5).status_code == 401
        monkeypatch.setenv(VARIABLE, token)
        assert _extract(options, stand_in.url)["n"].to_pylist() == [1, 2, 3]
        # and another token is refused at once, never retried
        monkeypatch.setenv(VARIABLE, "not-" + token)
        before = stand_in.server.request_count
        with pytest.raises(HttpClientError, match="HTTP 401"):
            _extract(options, stand_in.url)
        assert stand_in.server.request_count == before + 1


def test_a_set_env_credential_is_the_one_the_stand_in_checks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(VARIABLE, "exported-by-me")
    options = _options(param="api_key", value=f"env:{VARIABLE}")

    with serve_stand_in(OneSourceUseCase(), "items", options, port=0) as stand_in:
        assert stand_in.environment == {}
        assert _extract(options, stand_in.url).num_rows == 3
        assert requests.get(stand_in.url, params={"api_key": "x"}, timeout=5).status_code == 401


def test_a_secret_reference_is_resolved_as_the_client_resolves_it() -> None:
    options = _options(header="token", value="ssm:/headwater/local/token")

    credential, environment = stand_in_credential(
        options.auth, {"ssm:/headwater/local/token": "r"}.get
    )  # type: ignore[arg-type]

    assert credential == Credential("r", header="token") and environment == {}


def test_a_server_that_cannot_check_a_credential_is_refused_naming_the_source() -> None:
    options = _options(header="token", value="env:ANY")
    usecase = OneSourceUseCase(factory=lambda *a, **k: nullcontext())

    with pytest.raises(TypeError, match="source 'items' of use case 'stand_in_test' sends a cred"):
        with serve_stand_in(usecase, "items", options, environ={"ANY": "x"}):
            pass


def test_the_client_names_an_unset_variable_and_the_next_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(VARIABLE, raising=False)
    options = _options(header="token", value=f"env:{VARIABLE}")

    with pytest.raises(HttpSourceError) as refused:
        _extract(options, "http://127.0.0.1:9/v1/items")

    message = str(refused.value)
    assert f"environment variable {VARIABLE}, which is not set" in message
    assert f"export {VARIABLE}=" in message and "embedded_server = true" in message
