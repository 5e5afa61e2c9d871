"""JSON over HTTP for rate-limited third-party APIs: a client-side throttle and bounded retries.

Every request goes through a token bucket (the API's published rate), carries a timeout,
and is retried by tenacity only when retrying can help: 429 (after the server's
``Retry-After``), 5xx, connection errors and timeouts. Other 4xx answers are final.
Error messages and logs name the URL with credentials masked.
"""

from __future__ import annotations

import json
import math
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

import requests
from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
)

from headwater.core.logs import get_logger

log = get_logger(__name__)

REDACTED = "***"
# A query parameter whose name contains one of these is a credential: never shown.
SECRET_PARAM_MARKERS = ("key", "token", "secret", "password")
_MAX_REASON_CHARS = 300


@dataclass(frozen=True)
class HttpPolicy:
    """How politely to call one API: request rate, timeout and retry budget."""

    rate_limit_per_second: float
    timeout_seconds: float = 10
    max_retries: int = 5
    backoff_base_seconds: float = 0.5
    backoff_max_seconds: float = 30
    max_retry_after_seconds: float = 120

    def __post_init__(self) -> None:
        """Reject settings that would hammer the API or never return."""
        if not self.rate_limit_per_second > 0:
            raise ValueError("rate_limit_per_second must be > 0")
        if not self.timeout_seconds > 0:
            raise ValueError("timeout_seconds must be > 0")
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if self.backoff_base_seconds < 0 or self.backoff_max_seconds < 0:
            raise ValueError("backoff seconds must be >= 0")
        if self.max_retry_after_seconds < 0:
            raise ValueError("max_retry_after_seconds must be >= 0")


@dataclass(frozen=True)
class Credential:
    """A resolved secret sent with every request: as header ``header`` or query parameter ``param``.

    Never logged: the client masks its value in URLs, log lines and error messages.
    """

    value: str = field(repr=False)
    header: str | None = None
    param: str | None = None

    def __post_init__(self) -> None:
        """Exactly one of ``header`` and ``param``, and a value to send."""
        if (self.header is None) == (self.param is None):
            raise ValueError("a credential goes in exactly one of a header or a query parameter")
        if not self.value:
            raise ValueError("a credential needs a non-empty value")


def resolve_credential(
    auth: Any,
    resolve: Callable[[str], str],
    environ: Mapping[str, str] | None = None,
) -> Credential | None:
    """The credential an ``HttpAuth`` (or None) names, its value read now.

    ``env:NAME`` is read from the environment; ``ssm:``/``secretsmanager:`` references go
    through ``resolve`` (the stage's secret lookup, as for database URLs). Errors name the
    reference, never the secret.
    """
    if auth is None:
        return None
    reference = auth.value
    if reference.startswith("env:"):
        name = reference.removeprefix("env:")
        value = (os.environ if environ is None else environ).get(name, "")
        if not value:
            raise HttpSourceError(": ".join(missing_variable(auth, name)))
    else:
        value = resolve(reference)
        if not value:
            raise HttpSourceError(f"the credential reference {reference!r} resolved to ''")
    return Credential(value=value, header=auth.header, param=auth.param)


def missing_variable(auth: Any, name: str) -> tuple[str, str]:
    """Why an ``env:NAME`` credential cannot be read, and the next step."""
    where = f"header {auth.header!r}" if auth.header else f"query parameter {auth.param!r}"
    reason = (
        f"the credential sent as {where} is read from the environment variable {name}, "
        "which is not set or empty"
    )
    fix = (
        f"export {name}=<the API's credential> where the run extracts, or reference a secret "
        "(auth.value = 'ssm:/path' or 'secretsmanager:name'); a local stage with "
        "embedded_server = true needs neither (the run generates one for its stand-in)"
    )
    return reason, fix


def missing_credential_variable(options: Any, environ: Mapping[str, str] | None = None) -> str:
    """The unset ``env:`` variable an HTTP source's credential needs ('' when none is missing).

    A source served by its embedded server needs none: the run generates the credential.
    """
    auth = getattr(options, "auth", None)
    if auth is None or not auth.value.startswith("env:") or options.embedded_server:
        return ""
    name = auth.value.removeprefix("env:")
    return "" if (os.environ if environ is None else environ).get(name) else name


class HttpSourceError(Exception):
    """A third-party HTTP source failed or answered something unusable."""

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None):
        super().__init__(message)
        self.url = url
        self.status = status


class HttpClientError(HttpSourceError):
    """The server rejected the request (4xx other than 429): retrying cannot help."""

    def __init__(self, *, url: str, status: int, reason: str):
        super().__init__(f"GET {url} failed with HTTP {status}: {reason}", url=url, status=status)
        self.reason = reason


class HttpRetriesExhausted(HttpSourceError):
    """Every attempt failed with a retryable error (429, 5xx, timeout, connection)."""

    def __init__(
        self,
        *,
        url: str,
        attempts: int,
        reason: str,
        last_status: int | None,
        last_exception: BaseException | None,
    ):
        super().__init__(
            f"GET {url} failed after {attempts} attempt(s); last error: {reason}",
            url=url,
            status=last_status,
        )
        self.attempts = attempts
        self.reason = reason
        self.last_status = last_status
        self.last_exception = last_exception


class InvalidJsonResponse(HttpSourceError):
    """The server answered 2xx with a body that is not JSON."""


class _RetryableResponse(Exception):
    """A 429 or 5xx answer, raised inside an attempt so tenacity retries it."""

    def __init__(self, status: int, reason: str, retry_after: float | None):
        super().__init__(f"HTTP {status}: {reason}")
        self.status = status
        self.reason = reason
        self.retry_after = retry_after


_RETRYABLE_EXCEPTIONS = (
    _RetryableResponse,
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


class TokenBucket:
    """Thread-safe token bucket: ``rate_per_second`` tokens a second, ``burst`` saved at most."""

    def __init__(
        self,
        rate_per_second: float,
        burst: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if not rate_per_second > 0:
            raise ValueError("rate_per_second must be > 0")
        if burst < 1:
            raise ValueError("burst must be >= 1")
        self._rate = float(rate_per_second)
        self._burst = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self._burst
        self._updated = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._rate)
        self._updated = now

    def reserve(self) -> float:
        """Take one token, going into debt if none is left; return seconds to wait before use."""
        with self._lock:
            self._refill()
            self._tokens -= 1
            return 0.0 if self._tokens >= 0 else -self._tokens / self._rate

    def try_acquire(self) -> float:
        """Take a token and return 0 if one is available, else return seconds until one is."""
        with self._lock:
            self._refill()
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            return (1 - self._tokens) / self._rate

    def acquire(self) -> float:
        """Block until a token is ours (waiters queue in call order); return seconds waited."""
        # Reserve under the lock, sleep outside it, so concurrent callers space themselves out.
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)
        return wait


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (seconds or HTTP-date); None if unusable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def backoff_seconds(attempt: int, base: float, maximum: float) -> float:
    """Exponential backoff plus jitter: ``base * 2**(attempt-1) + U(0, base)``, at most maximum."""
    # Written out rather than tenacity's wait_exponential_jitter, whose arguments changed in 9.x.
    try:
        exponential = base * 2 ** (attempt - 1)
    except OverflowError:
        return maximum
    return min(maximum, exponential + random.uniform(0, base))


def is_secret_param(name: str) -> bool:
    """Whether a query parameter name looks like a credential (api_key, access_token, ...)."""
    lowered = name.lower()
    return any(marker in lowered for marker in SECRET_PARAM_MARKERS)


def redact_url(url: str) -> str:
    """Return ``url`` with userinfo dropped and credential-looking query values masked."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        masked = [(name, REDACTED if is_secret_param(name) else value) for name, value in pairs]
        query = urlencode(masked, safe="*,:")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _secret_values(
    url: str, params: Mapping[str, Any] | None, credential: Credential | None = None
) -> list[str]:
    """Every credential value in the URL, params and credential, as sent and as URL-encoded."""
    found: list[str] = [credential.value] if credential is not None else []
    parts = urlsplit(url)
    if parts.password:
        found.append(parts.password)
    found += [v for k, v in parse_qsl(parts.query, keep_blank_values=True) if is_secret_param(k)]
    for name, value in (params or {}).items():
        if is_secret_param(str(name)):
            values = value if isinstance(value, list | tuple) else [value]
            found += [str(v) for v in values if v is not None]
    forms = {form for raw in found if raw for form in (raw, quote(raw, safe=""), quote_plus(raw))}
    return sorted(forms, key=len, reverse=True)


def _scrub(text: str, secrets: Iterable[str]) -> str:
    """Mask every occurrence of a secret value in free text (server messages, exceptions)."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def _error_reason(body: bytes, fallback: str) -> str:
    """The server's own explanation: JSON ``reason``/``message``/``error``, else the body text."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        for field in ("reason", "message", "error", "detail"):
            value = payload.get(field)
            if isinstance(value, str) and value.strip():
                return value.strip()[:_MAX_REASON_CHARS]
    if text and payload is None:
        return text[:_MAX_REASON_CHARS]
    return fallback or "no reason given"


def _describe(exc: BaseException | None) -> str:
    """A one-line description of an attempt's failure."""
    if isinstance(exc, _RetryableResponse):
        return str(exc)
    if exc is None:
        return "unknown error"
    return f"{type(exc).__name__}: {exc}"


class JsonHttpClient:
    """GET JSON from a rate-limited API: throttled, with timeouts and bounded retries."""

    def __init__(
        self,
        policy: HttpPolicy,
        session: requests.Session | None = None,
        *,
        limiter: TokenBucket | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._policy = policy
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()
        # burst=1: requests are evenly spaced, never bunched, whatever the caller does.
        self._limiter = limiter or TokenBucket(policy.rate_limit_per_second, burst=1, sleep=sleep)
        self._sleep = sleep

    @property
    def policy(self) -> HttpPolicy:
        """The policy this client applies."""
        return self._policy

    def close(self) -> None:
        """Close the HTTP session if this client created it."""
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> JsonHttpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def get_json(
        self,
        url: str,
        params: Mapping[str, Any] | None = None,
        *,
        credential: Credential | None = None,
    ) -> Any:
        """GET ``url`` with ``params`` and return the decoded JSON body, retrying transient errors.

        A ``credential`` is sent as its header or query parameter on every attempt; its value
        is masked wherever the URL or a reason is shown.

        Raises:
            HttpClientError: a 4xx answer other than 429 (never retried).
            HttpRetriesExhausted: 429/5xx/timeouts/connection errors on every attempt.
            InvalidJsonResponse: a 2xx answer whose body is not JSON.
        """
        headers = {"Accept": "application/json"}
        query = dict(params or {})
        if credential is not None and credential.header is not None:
            headers[credential.header] = credential.value
        elif credential is not None and credential.param is not None:
            query[credential.param] = credential.value
        secrets = _secret_values(url, query, credential)
        try:
            full_url = requests.Request("GET", url, params=query).prepare().url
        except requests.RequestException as exc:
            raise HttpSourceError(
                f"invalid request URL {_scrub(redact_url(url), secrets)}: "
                f"{_scrub(str(exc), secrets)}"
            ) from None
        shown_url = _scrub(redact_url(str(full_url)), secrets)
        max_attempts = self._policy.max_retries + 1
        retrying = Retrying(
            stop=stop_after_attempt(max_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(_RETRYABLE_EXCEPTIONS),
            before_sleep=lambda state: self._log_retry(state, shown_url, max_attempts, secrets),
            sleep=self._sleep,
            reraise=False,
        )
        try:
            return retrying(self._attempt, url, query, headers, shown_url, secrets)
        except RetryError as exhausted:
            last = exhausted.last_attempt.exception()
            status = last.status if isinstance(last, _RetryableResponse) else None
            error = HttpRetriesExhausted(
                url=shown_url,
                attempts=exhausted.last_attempt.attempt_number,
                reason=_scrub(_describe(last), secrets),
                last_status=status,
                last_exception=last,
            )
            # Exceptions from requests quote the full URL: do not chain them when it has secrets.
            raise error from (None if secrets else last)

    def _attempt(
        self,
        url: str,
        params: Mapping[str, Any],
        headers: Mapping[str, str],
        shown_url: str,
        secrets: list[str],
    ) -> Any:
        """One throttled request; raise a retryable error for 429/5xx."""
        self._limiter.acquire()
        with self._session.get(
            url,
            params=params,
            timeout=self._policy.timeout_seconds,
            headers=dict(headers),
        ) as response:
            status = response.status_code
            body = response.content
            retry_after_header = response.headers.get("Retry-After")
            http_reason = response.reason or ""
        if 200 <= status < 300:
            try:
                return json.loads(body)
            except ValueError as exc:
                snippet = _scrub(body[:80].decode("utf-8", errors="replace"), secrets)
                raise InvalidJsonResponse(
                    f"GET {shown_url} answered HTTP {status} with a body that is not JSON "
                    f"({exc}); body starts {snippet!r}",
                    url=shown_url,
                    status=status,
                ) from None
        reason = _scrub(_error_reason(body, http_reason), secrets)
        if status == 429:
            raise _RetryableResponse(status, reason, parse_retry_after(retry_after_header))
        if status >= 500:
            raise _RetryableResponse(status, reason, None)
        if 400 <= status < 500:
            raise HttpClientError(url=shown_url, status=status, reason=reason)
        raise HttpSourceError(
            f"GET {shown_url} answered unexpected HTTP {status}: {reason}",
            url=shown_url,
            status=status,
        )

    def _wait(self, state: RetryCallState) -> float:
        """Seconds before the next attempt: the server's Retry-After (capped), else backoff."""
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _RetryableResponse) and exc.retry_after is not None:
            return min(exc.retry_after, self._policy.max_retry_after_seconds)
        return backoff_seconds(
            state.attempt_number,
            self._policy.backoff_base_seconds,
            self._policy.backoff_max_seconds,
        )

    def _log_retry(
        self, state: RetryCallState, shown_url: str, max_attempts: int, secrets: list[str]
    ) -> None:
        """Log one failed attempt and the wait before the next."""
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        reason = _scrub(_describe(exc), secrets)
        log.warning(
            "GET failed, retrying",
            url=shown_url,
            attempt=state.attempt_number,
            max_attempts=max_attempts,
            wait_seconds=round(wait, 3),
            reason=reason,
        )


_clients: dict[tuple[float, float, int], JsonHttpClient] = {}
_clients_lock = threading.Lock()


def client_for(options: Any) -> JsonHttpClient:
    """The process's client for an HTTP source's policy (``HttpSourceOptions``), shared per policy.

    One client (and so one token bucket) per rate, timeout and retry budget: every
    extraction of a process with the same policy spaces its requests together.
    """
    key = (
        float(options.rate_limit_per_second),
        float(options.timeout_seconds),
        int(options.max_retries),
    )
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = JsonHttpClient(
                HttpPolicy(rate_limit_per_second=key[0], timeout_seconds=key[1], max_retries=key[2])
            )
            _clients[key] = client
        return client
