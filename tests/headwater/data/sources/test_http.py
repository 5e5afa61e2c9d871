"""JsonHttpClient against a real local HTTP server (a cursor-paged API with injected faults)."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from headwater.data.sources import HttpAuth
from headwater.data.sources.http import (
    Credential,
    HttpClientError,
    HttpPolicy,
    HttpRetriesExhausted,
    HttpSourceError,
    InvalidJsonResponse,
    JsonHttpClient,
    TokenBucket,
    parse_retry_after,
    redact_url,
    resolve_credential,
)
from tests.headwater.data.sources.conftest import TOKEN, CursorServer, NoaaLikeServer

QUERY = {"start": "2011-03-01T00:00:00Z", "end": "2011-03-02T00:00:00Z"}
FAST = {"rate_limit_per_second": 1000.0, "backoff_base_seconds": 0.01, "backoff_max_seconds": 0.05}


@pytest.fixture
def server() -> Iterator[CursorServer]:
    with CursorServer(timeout_fault_seconds=1.0) as srv:
        yield srv


class FakeTime:
    """The client's clock and sleep: records each wait; the clock moves only by them (or never)."""

    def __init__(self, moves: bool = True) -> None:
        self.now, self.moves = 1_000.0, moves
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.moves:
            self.now += seconds


@pytest.fixture
def make_client() -> Iterator[Callable[..., JsonHttpClient]]:
    clients: list[JsonHttpClient] = []

    def make(fake: FakeTime | None = None, **policy: Any) -> JsonHttpClient:
        options = HttpPolicy(**{**FAST, "timeout_seconds": 5.0, **policy})
        if fake is None:
            client = JsonHttpClient(options)
        else:  # the rate limiter and the retries wait on the fake clock
            limiter = TokenBucket(
                options.rate_limit_per_second, burst=1, clock=fake.clock, sleep=fake.sleep
            )
            client = JsonHttpClient(options, limiter=limiter, sleep=fake.sleep)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_ok_returns_decoded_json(server: CursorServer, make_client) -> None:
    payload = make_client().get_json(server.url, QUERY)

    assert len(payload["observations"]) == 24 and payload["next"] is None
    assert server.request_count == 1


def test_429_waits_for_retry_after_then_succeeds(server: CursorServer, make_client) -> None:
    server.inject_faults(["429:0.3"])
    fake = FakeTime()
    client = make_client(fake)

    payload = client.get_json(server.url, QUERY)

    assert payload["observations"][0]["observed_at"] == "2011-03-01T00:00:00+00:00"
    assert server.request_count == 2
    assert fake.sleeps == [pytest.approx(0.3)]  # the server's Retry-After, once


def test_retry_after_is_capped_by_policy(server: CursorServer, make_client) -> None:
    server.inject_faults(["429:30"])
    fake = FakeTime()
    client = make_client(fake, max_retry_after_seconds=0.1)

    client.get_json(server.url, QUERY)

    assert fake.sleeps == [pytest.approx(0.1)]  # not the 30 s the server asked for
    assert server.request_count == 2


def test_5xx_is_retried_with_logged_backoff(
    server: CursorServer, make_client, caplog: pytest.LogCaptureFixture
) -> None:
    server.inject_faults(["500", "503"])
    caplog.set_level(logging.WARNING, logger="headwater.data.sources.http")

    payload = make_client().get_json(server.url, QUERY)

    assert "observations" in payload
    assert server.request_count == 3
    retries = [r.msg for r in caplog.records if r.name == "headwater.data.sources.http"]
    assert [r["attempt"] for r in retries] == [1, 2]
    assert "HTTP 500" in retries[0]["reason"] and "HTTP 503" in retries[1]["reason"]
    assert all(0 <= r["wait_seconds"] <= 0.05 for r in retries)
    assert retries[0]["max_attempts"] == 6


def test_timeout_is_retried_then_succeeds(server: CursorServer, make_client) -> None:
    server.inject_faults(["timeout"])
    client = make_client(timeout_seconds=0.2)

    started = time.perf_counter()
    payload = client.get_json(server.url, QUERY)

    assert "observations" in payload
    assert server.request_count == 2
    assert time.perf_counter() - started >= 0.2


def test_dropped_connection_is_retried(server: CursorServer, make_client) -> None:
    server.inject_faults(["disconnect"])

    assert "observations" in make_client().get_json(server.url, QUERY)
    assert server.request_count == 2


def test_404_is_not_retried(server: CursorServer, make_client) -> None:
    with pytest.raises(HttpClientError) as caught:
        make_client().get_json(server.base_url + "/v1/nowhere", QUERY)

    assert caught.value.status == 404
    assert server.request_count == 1
    assert "/v1/nowhere" in str(caught.value) and "404" in str(caught.value)


def test_400_carries_the_server_reason_and_is_not_retried(
    server: CursorServer, make_client
) -> None:
    with pytest.raises(HttpClientError) as caught:
        make_client().get_json(server.url, {**QUERY, "start": "snow_in_july"})

    error = caught.value
    assert error.status == 400
    assert "snow_in_july" in error.reason
    assert error.url.startswith(server.url + "?")
    assert f"GET {error.url} failed with HTTP 400: {error.reason}" == str(error)
    assert server.request_count == 1


def test_injected_4xx_is_final_even_with_retry_budget(server: CursorServer, make_client) -> None:
    server.inject_faults(["403"])

    with pytest.raises(HttpClientError, match="HTTP 403: Injected fault"):
        make_client(max_retries=5).get_json(server.url, QUERY)
    assert server.request_count == 1


def test_retries_exhausted_names_url_status_and_attempts(server: CursorServer, make_client) -> None:
    server.inject_faults(["503", "503", "503"])

    with pytest.raises(HttpRetriesExhausted) as caught:
        make_client(max_retries=2).get_json(server.url, QUERY)

    error = caught.value
    assert (error.attempts, error.last_status, error.status) == (3, 503, 503)
    message = str(error)
    assert server.url in message and "start=2011-03-01" in message
    assert "after 3 attempt(s)" in message and "HTTP 503" in message
    assert server.request_count == 3


def test_connection_refused_exhausts_retries(make_client) -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1/archive"

    with pytest.raises(HttpRetriesExhausted) as caught:
        make_client(max_retries=1).get_json(url, QUERY)

    assert caught.value.attempts == 2
    assert caught.value.last_status is None
    assert "ConnectionError" in str(caught.value) and url in str(caught.value)


def test_invalid_json_in_200_is_a_clear_error(server: CursorServer, make_client) -> None:
    server.inject_faults(["badjson"])

    with pytest.raises(InvalidJsonResponse, match="not JSON") as caught:
        make_client().get_json(server.url, QUERY)
    assert caught.value.status == 200
    assert server.request_count == 1


def test_client_rate_limit_throttles_sequential_calls(server: CursorServer, make_client) -> None:
    fake = FakeTime()
    client = make_client(fake, rate_limit_per_second=20)

    for _ in range(10):
        client.get_json(server.base_url + "/health")

    # The first call is free, the other nine wait 1/20 s each.
    assert fake.sleeps == [pytest.approx(0.05)] * 9


def test_client_rate_limit_holds_across_threads(server: CursorServer, make_client) -> None:
    # A clock that stands still while ten calls from five threads queue for tokens
    fake = FakeTime(moves=False)
    client = make_client(fake, rate_limit_per_second=20)

    def call_twice() -> None:
        for _ in range(2):
            client.get_json(server.base_url + "/health")

    threads = [threading.Thread(target=call_twice) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Each call got a slot of its own: one free, then 1/20 s, 2/20 s ... 9/20 s ahead
    assert sorted(fake.sleeps) == [pytest.approx(n / 20) for n in range(1, 10)]


def test_token_bucket_spaces_reservations_with_a_fake_clock() -> None:
    now = [100.0]
    bucket = TokenBucket(4, burst=2, clock=lambda: now[0], sleep=lambda _: None)

    waits = [bucket.reserve() for _ in range(4)]
    now[0] += 1.0
    later = bucket.reserve()

    assert waits == [0.0, 0.0, 0.25, 0.5]
    assert later == 0.0
    assert bucket.try_acquire() == 0.0
    assert bucket.try_acquire() == pytest.approx(0.25)


def test_secrets_are_redacted_from_errors_and_logs(
    server: CursorServer, make_client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="headwater.data.sources.http")
    secret_params = {**QUERY, "apikey": "s3cr3t-value", "access_token": "tok/en+1"}
    client = make_client(max_retries=1, timeout_seconds=0.2)

    with pytest.raises(HttpClientError) as rejected:
        client.get_json(server.base_url + "/v1/nowhere", secret_params)
    server.inject_faults(["timeout", "timeout"])
    with pytest.raises(HttpRetriesExhausted) as exhausted:
        client.get_json(server.url, secret_params)

    texts = [str(rejected.value), str(exhausted.value), caplog.text]
    leaks = ["s3cr3t", "tok/en+1", "tok%2Fen%2B1", "tok%2Fen+1"]
    assert not [leak for leak in leaks for text in texts if leak in text]
    assert "apikey=***" in str(rejected.value) and "access_token=***" in str(exhausted.value)
    assert "timed out" in str(exhausted.value)
    assert exhausted.value.__cause__ is None


def test_redact_url_drops_userinfo_and_masks_key_like_params() -> None:
    url = "https://user:pw@api.example.com/v1?q=1&API_KEY=abc&session_token=xyz&keep=2"

    assert redact_url(url) == "https://api.example.com/v1?q=1&API_KEY=***&session_token=***&keep=2"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("2", 2.0),
        (" 0.25 ", 0.25),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
        ("soon", None),
        ("nan", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    now = datetime(2015, 10, 21, 7, 28, tzinfo=UTC)

    assert parse_retry_after(header, now=now) == expected


@pytest.mark.parametrize(
    "bad", [{"rate_limit_per_second": 0}, {"timeout_seconds": 0}, {"max_retries": -1}]
)
def test_policy_rejects_unsafe_settings(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        HttpPolicy(**{"rate_limit_per_second": 1.0, **bad})


# --- credentials: a token header or query parameter, resolved when used, never shown ----------


NOAA_QUERY = {"startdate": "2013-01-01", "enddate": "2013-01-02", "limit": "5"}


@pytest.fixture
def noaa_param() -> Iterator[NoaaLikeServer]:
    with NoaaLikeServer(token_in="param") as srv:
        yield srv


def test_a_header_credential_is_sent_on_every_attempt(
    noaa: NoaaLikeServer, make_client: Callable[..., JsonHttpClient]
) -> None:
    client = make_client()
    with pytest.raises(HttpClientError, match="HTTP 400: Token parameter is required"):
        client.get_json(noaa.url, NOAA_QUERY)

    noaa.inject_faults(["503"])
    payload = client.get_json(noaa.url, NOAA_QUERY, credential=Credential(TOKEN, header="token"))

    assert payload["metadata"]["resultset"]["count"] == 4
    assert noaa.request_count == 3  # refused, 503, then answered with the token


def test_a_retried_request_never_writes_its_token_to_the_json_log(
    noaa_param: NoaaLikeServer,
    make_client: Callable[..., JsonHttpClient],
    json_log: Callable[[], list[dict[str, Any]]],
) -> None:
    # Given a token sent as a query parameter, and a server failing twice before answering
    noaa_param.inject_faults(["503", "429:0.01"])

    # When the request is retried until it succeeds
    credential = Credential(TOKEN, param="token")
    payload = make_client().get_json(noaa_param.url, NOAA_QUERY, credential=credential)

    # Then the JSON log holds the two retries, with the URL masked, and no form of the token
    assert payload["results"]
    lines = json_log()
    retries = [line for line in lines if line.get("logger") == "headwater.data.sources.http"]
    assert len(retries) == 2
    assert all("token=***" in line["url"] for line in retries)
    text = json.dumps(lines)
    assert not [form for form in _forms(TOKEN) if form in text]


def test_a_credential_param_is_masked_whatever_its_name(
    noaa: NoaaLikeServer, make_client: Callable[..., JsonHttpClient]
) -> None:
    # Given a credential in a parameter whose name does not look like one ("appid")
    credential = Credential("s3cr3t-appid-value", param="appid")

    # When the server refuses the request, then the error shows the URL with it masked
    with pytest.raises(HttpClientError) as refused:
        make_client().get_json(noaa.url, NOAA_QUERY, credential=credential)
    assert "appid=***" in str(refused.value) and "s3cr3t" not in str(refused.value)
    assert "s3cr3t" not in repr(credential)


def test_an_exhausted_request_never_shows_its_header_credential(
    noaa: NoaaLikeServer, make_client: Callable[..., JsonHttpClient]
) -> None:
    # Given a server failing every attempt with a token in a header
    noaa.inject_faults(["503", "503"])
    with pytest.raises(HttpRetriesExhausted) as exhausted:
        make_client(max_retries=1).get_json(
            noaa.url, NOAA_QUERY, credential=Credential(TOKEN, header="token")
        )
    assert not [form for form in _forms(TOKEN) if form in str(exhausted.value)]
    assert exhausted.value.__cause__ is None


def _forms(secret: str) -> list[str]:
    return [secret, quote(secret, safe=""), quote_plus(secret), "t0ken"]


@pytest.mark.parametrize(
    ("reference", "store"),
    [
        ("ssm:/headwater/test/noaa-token", "ssm"),
        ("secretsmanager:headwater/noaa", "secretsmanager"),
        ("secretsmanager:headwater/noaa-json#token", "secretsmanager-json"),
        ("env:HW_TEST_NOAA_TOKEN", "env"),
    ],
)
def test_credentials_are_resolved_as_database_urls_are(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, reference: str, store: str
) -> None:
    from moto import mock_aws

    from headwater import aws
    from headwater.core.config import Settings
    from headwater.data.pipeline import resolve_reference

    with mock_aws():
        # Given the token stored where the reference points
        aws.client("ssm").put_parameter(
            Name="/headwater/test/noaa-token", Value=TOKEN, Type="SecureString"
        )
        secrets = aws.client("secretsmanager")
        secrets.create_secret(Name="headwater/noaa", SecretString=TOKEN)
        secrets.create_secret(Name="headwater/noaa-json", SecretString=json.dumps({"token": TOKEN}))
        monkeypatch.setenv("HW_TEST_NOAA_TOKEN", TOKEN)
        auth = HttpAuth(header="token", value=reference)

        # When it is resolved through the stage's lookup, then the credential holds it
        credential = resolve_credential(auth, lambda v: resolve_reference(v, Settings()))

    assert credential == Credential(TOKEN, header="token")


def test_a_credential_is_read_each_time_not_once(monkeypatch: pytest.MonkeyPatch) -> None:
    auth = HttpAuth(param="api_key", value="env:HW_TEST_KEY")
    monkeypatch.setenv("HW_TEST_KEY", "first")
    first = resolve_credential(auth, lambda v: v)
    monkeypatch.setenv("HW_TEST_KEY", "rotated")

    assert first is not None and first.value == "first"
    assert resolve_credential(auth, lambda v: v) == Credential("rotated", param="api_key")
    monkeypatch.delenv("HW_TEST_KEY")
    with pytest.raises(HttpSourceError, match="variable HW_TEST_KEY, .*: export HW_TEST_KEY="):
        resolve_credential(auth, lambda v: v)


@pytest.mark.parametrize(
    ("keys", "words"),
    [
        ({"value": "env:X"}, "set exactly one of header"),
        ({"header": "token", "param": "token", "value": "env:X"}, "set exactly one of header"),
        ({"header": "token", "value": "abc123-literal"}, "value must be a reference"),
        ({"header": "token"}, "auth.value: Field required"),
        ({"header": "token", "value": "env:X", "scheme": "Bearer"}, "auth.scheme: Extra inputs"),
    ],
)
def test_auth_keys_are_checked_with_the_source(keys: dict[str, Any], words: str) -> None:
    from headwater.core.config import SourceConfig
    from headwater.data.sources import SourceOptionsError, validate_source

    with pytest.raises(SourceOptionsError) as refused:
        validate_source(SourceConfig(kind="json_pages", base_url="http://x", auth=keys))
    assert words in str(refused.value)
    assert "abc123" not in str(refused.value)  # a literal secret is not echoed


def test_a_retry_reaches_the_json_log_with_its_url_attempt_and_wait(
    server: CursorServer, make_client, json_log
) -> None:
    # Given a server that fails once with a 503
    server.inject_faults(["503"])

    # When the client retries through it
    make_client().get_json(server.url, {**QUERY, "apikey": "s3cr3t-value"})

    # Then the JSON log has one retry line carrying the URL (redacted), attempt and wait
    retries = [r for r in json_log() if r.get("logger") == "headwater.data.sources.http"]
    assert len(retries) == 1, retries
    retry = retries[0]
    assert retry["url"].startswith(server.url) and "apikey=***" in retry["url"]
    assert retry["attempt"] == 1 and retry["max_attempts"] == 6
    assert 0 <= retry["wait_seconds"] <= 0.05
    assert "HTTP 503" in retry["reason"]
