"""Bad input cannot break the API: ranges, finite answers, nesting depth, streamed bodies."""

from __future__ import annotations

import io
import json
import math
import tomllib
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from tests.api.conftest import TEST_STAGE
from tests.api.test_errors import error_of
from tests.conftest import MODEL

#: The use cases the API's test stage serves (tests/api/conftest.py), each checked on its own.
USECASES = tuple(tomllib.loads(TEST_STAGE)["usecases"])
#: Where the test model (its use case: tests/conftest.py's MODEL) answers.
URL = f"/v1/{MODEL}/predictions"


def _reject(name: str) -> Any:
    raise AssertionError(f"{name} in an answer: not JSON")


def strict_json(text: str) -> Any:
    """Parse ``text`` as standard JSON: NaN and ±Infinity fail the test."""
    return json.loads(text, parse_constant=_reject)


def request_model(app: Flask, usecase: str) -> type[BaseModel]:
    return app.extensions["headwater_api"].usecases[usecase].usecase.serving.request_model


def numbers(schema: dict[str, Any], defs: dict[str, Any], path: str = "") -> Iterator[tuple]:
    """``(path, number schema)`` of every numeric input of a request model's JSON schema."""
    if "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[1]]
    if schema.get("type") in ("number", "integer"):
        yield path, schema
    for option in schema.get("anyOf", ()):
        yield from numbers(option, defs, path)
    for name, body in schema.get("properties", {}).items():
        yield from numbers(body, defs, f"{path}.{name}" if path else name)


def numeric_inputs(app: Flask, usecase: str) -> list[tuple[str, dict[str, Any]]]:
    schema = request_model(app, usecase).model_json_schema()
    return list(numbers(schema, schema.get("$defs", {})))


def with_value(example: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``example`` with the dotted ``path`` set to ``value``."""
    body = json.loads(json.dumps(example))
    *parents, last = path.split(".")
    node = body
    for name in parents:
        if node.get(name) is None:
            node[name] = {}
        node = node[name]
    node[last] = value
    return body


def example_of(app: Flask, usecase: str) -> dict[str, Any]:
    return dict(app.extensions["headwater_api"].usecases[usecase].usecase.serving.example)


# -- every numeric input has a declared, plausible range ------------------------------------------
@pytest.mark.parametrize("usecase", USECASES)
def test_every_numeric_input_has_a_range_in_the_openapi_document(
    client: FlaskClient, app: Flask, usecase: str
) -> None:
    inputs = numeric_inputs(app, usecase)
    assert inputs
    document = client.get("/openapi.json").get_json()
    schemas = document["components"]["schemas"]
    documented = dict(numbers(schemas[f"{usecase}.Request"], schemas))
    for path, schema in inputs:
        assert "minimum" in schema and "maximum" in schema, f"{usecase}: {path} has no range"
        assert documented[path]["minimum"] == schema["minimum"]
        assert documented[path]["maximum"] == schema["maximum"]


#: Values no physical input takes, relative to a field's declared range (low, high).
IMPOSSIBLE = {
    "below-the-range": lambda low, high: low - max(1.0, high - low),
    "above-the-range": lambda low, high: high + max(1.0, high - low),
    "most-negative-float": lambda low, high: -1.7976931348623157e308,
    "huge": lambda low, high: 1e300,
}


#: Inputs whose ``expected`` text (the use case's own field description) does not state their
#: range yet: their 400 names the field and the bound it broke. Found by the test below when it
#: began to cover every numeric input; this set only shrinks (the test after it).
RANGE_NOT_DESCRIBED = frozenset(
    {
        "recent_rentals.rentals_1h_before",
        "recent_rentals.rentals_24h_before",
        "recent_rentals.rentals_168h_before",
    }
)


@pytest.mark.parametrize("value_of", IMPOSSIBLE.values(), ids=IMPOSSIBLE.keys())
@pytest.mark.parametrize("usecase", USECASES)
def test_a_physically_impossible_value_is_a_400_naming_the_field_and_the_range(
    client: FlaskClient, app: Flask, usecase: str, value_of: Any
) -> None:
    # Given each numeric input of the use case's request, in turn set outside its range
    inputs = numeric_inputs(app, usecase)
    assert inputs
    for path, schema in inputs:
        low, high = schema["minimum"], schema["maximum"]
        body = with_value(example_of(app, usecase), path, value_of(low, high))
        # Then the answer is a 400 naming that field alone, its range, in the message too
        error = error_of(client.post(f"/v1/{usecase}/predictions", json=body), 400)
        assert error["code"] == "invalid_request"
        (problem,) = error["problems"]
        assert problem["field"] == path
        if path in RANGE_NOT_DESCRIBED:
            assert "than or equal to" in problem["message"], problem
        else:
            assert f"{low:g} to {high:g}" in problem["expected"], problem
        assert path in error["message"]


@pytest.mark.parametrize("path", sorted(RANGE_NOT_DESCRIBED))
def test_an_input_listed_without_a_described_range_still_lacks_it(
    client: FlaskClient, app: Flask, path: str
) -> None:
    # Given the served use case with that input, the input set above its range
    (usecase,) = [u for u in USECASES if path in dict(numeric_inputs(app, u))]
    schema = dict(numeric_inputs(app, usecase))[path]
    body = with_value(example_of(app, usecase), path, schema["maximum"] + 1)

    (problem,) = error_of(client.post(f"/v1/{usecase}/predictions", json=body), 400)["problems"]

    range_ = f"{schema['minimum']:g} to {schema['maximum']:g}"
    assert range_ not in problem["expected"], f"{path} states its range now: strike it"


@pytest.mark.parametrize("usecase", USECASES)
def test_the_bounds_themselves_are_accepted(client: FlaskClient, app: Flask, usecase: str) -> None:
    for path, schema in numeric_inputs(app, usecase):
        for value in (schema["minimum"], schema["maximum"]):
            body = with_value(example_of(app, usecase), path, value)
            response = client.post(f"/v1/{usecase}/predictions", json=body)
            assert response.status_code == 200, (path, value, response.get_data(as_text=True))
            strict_json(response.get_data(as_text=True))


# -- no answer holds a non-finite number ----------------------------------------------------------
def _in_range(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    low, high = schema["minimum"], schema["maximum"]
    if schema.get("type") == "integer":
        return st.integers(low, high)
    edges = st.sampled_from([low, high, math.nextafter(low, high), math.nextafter(high, low)])
    return st.one_of(edges, st.floats(low, high, allow_nan=False, allow_infinity=False))


def _instances(app: Flask, usecase: str) -> st.SearchStrategy[dict[str, Any]]:
    """Valid instances whose numbers sit anywhere in their ranges, at the edges most often."""
    example = example_of(app, usecase)
    values = {path: _in_range(schema) for path, schema in numeric_inputs(app, usecase)}
    when = st.datetimes(datetime(1900, 1, 1), datetime(2199, 12, 31, 23, 59)).map(
        lambda moment: moment.isoformat(timespec="minutes")
    )

    def build(chosen: dict[str, Any], moment: str) -> dict[str, Any]:
        body = json.loads(json.dumps(example))
        for path, value in chosen.items():
            body = with_value(body, path, value)
        for key in ("scheduled_departure", "hour_start"):
            if key in body:
                body[key] = moment
        return body

    return st.builds(build, st.fixed_dictionaries(values), when)


@pytest.mark.parametrize("usecase", USECASES)
def test_no_answer_holds_a_non_finite_number(app: Flask, usecase: str) -> None:
    client = app.test_client()

    @settings(
        max_examples=150,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(body=_instances(app, usecase))
    def check(body: dict[str, Any]) -> None:
        response = client.post(f"/v1/{usecase}/predictions", json=body)
        assert response.status_code == 200, (body, response.get_data(as_text=True))
        answer = strict_json(response.get_data(as_text=True))
        assert all(math.isfinite(v) for v in answer.values() if isinstance(v, float))

    check()


def test_a_non_finite_number_never_reaches_the_wire(
    client: FlaskClient, app: Flask, monkeypatch: pytest.MonkeyPatch, example: dict[str, Any]
) -> None:
    import api.blueprints.predictions as predictions
    from headwater.serving.predictor import Scored

    shape = app.extensions["headwater_api"].usecases[MODEL].usecase.serving.answer

    def broken(model: Any, request: Any) -> Scored:
        return Scored(answer={shape.probability: math.nan, shape.estimate: -math.inf}, features={})

    monkeypatch.setattr(predictions, "score", broken)
    response = client.post(URL, json=example)
    text = response.get_data(as_text=True)
    strict_json(text)
    assert response.status_code == 500


# -- the body: nesting and streaming -------------------------------------------------------------
@pytest.mark.parametrize(
    "data",
    [
        "[" * 1000 + "]" * 1000,
        '{"a":' * 1000 + "1" + "}" * 1000,
        "[" * 100_000,
        '{"field": ' + "[" * 65 + "]" * 65 + "}",
    ],
)
def test_deeply_nested_json_is_a_400_naming_the_depth(client: FlaskClient, data: str) -> None:
    error = error_of(client.post(URL, data=data, content_type="application/json"), 400)
    assert error["code"] == "malformed_json"
    assert "nest" in error["message"] and "levels" in error["message"]


def post_chunked(client: FlaskClient, body: bytes) -> Any:
    """POST ``body`` without Content-Length, as a server that de-chunks (gunicorn) passes it on."""
    return client.post(
        URL,
        input_stream=io.BytesIO(body),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )


LIMIT = 4096


@pytest.fixture
def small_limit_client(app_for: Any, model_lake: str) -> FlaskClient:
    return app_for(model_lake, MAX_BODY_BYTES=LIMIT).test_client()


@pytest.mark.parametrize("size", [LIMIT + 1, LIMIT + 10, 5 * LIMIT])
def test_a_chunked_body_over_the_limit_is_a_413(small_limit_client: FlaskClient, size: int) -> None:
    body = b'{"a_field": "UA"' + b" " * (size - 17) + b"}"
    assert len(body) == size
    error = error_of(post_chunked(small_limit_client, body), 413)
    assert error["code"] == "request_entity_too_large"
    assert str(LIMIT) in error["message"]


@pytest.mark.parametrize("pad", [0, "to the limit"])
def test_a_chunked_body_within_the_limit_is_answered(
    small_limit_client: FlaskClient, example: dict[str, Any], pad: Any
) -> None:
    body = json.dumps(example).encode()
    if pad:
        body = body[:-1] + b" " * (LIMIT - len(body)) + b"}"
        assert len(body) == LIMIT
    response = post_chunked(small_limit_client, body)
    assert response.status_code == 200, response.get_data(as_text=True)


class FramingError(Exception):
    """Stands in for gunicorn 27's chunk errors: ParseException(Exception), not OSError."""


class BrokenStream(io.BytesIO):
    """A server's body reader that delivers a few bytes, then raises ``error``."""

    def __init__(self, error: Exception) -> None:
        super().__init__(b'{"field": ')
        self.error = error

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        if not data:
            raise self.error
        return data

    def readinto(self, buffer: Any) -> int:
        count = super().readinto(buffer)
        if not count:
            raise self.error
        return count


@pytest.mark.parametrize(
    "error",
    [FramingError("Invalid chunk size: b'zz'"), OSError("Invalid chunk size: b'zz'")],
    ids=["parse-exception", "os-error"],
)
def test_a_body_the_server_cannot_read_is_a_400(
    client: FlaskClient, caplog: pytest.LogCaptureFixture, error: Exception
) -> None:
    # Given a server whose body reader raises mid-body (broken chunked framing)
    response = client.post(
        URL,
        input_stream=BrokenStream(error),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    # Then the client is told, as a 400 naming the reader's problem; no crash is logged
    error_body = error_of(response, 400)
    assert error_body["code"] == "malformed_body"
    assert "Invalid chunk size: b'zz'" in error_body["message"]
    assert "unhandled error" not in caplog.text


# -- the documented date-time pattern ------------------------------------------------------------
@pytest.mark.parametrize("year", [1899, 1900, 1904, 2000, 2012, 2013, 2100, 2199, 2200])
def test_the_date_time_pattern_admits_real_days_of_the_years_only(year: int) -> None:
    import re
    from datetime import date

    from headwater.core.fields import local_datetime_pattern

    pattern = re.compile(local_datetime_pattern(1900, 2199))
    for month in range(0, 14):
        for day in range(0, 33):
            text = f"{year:04d}-{month:02d}-{day:02d}T23:59"
            try:
                real = 1900 <= date(year, month, day).year <= 2199
            except ValueError:
                real = False
            assert bool(pattern.fullmatch(text)) is real, text
    assert pattern.fullmatch("2013-11-04T17:15:30.123456")
    assert not pattern.fullmatch("2013-11-04T24:00") and not pattern.fullmatch("2013-11-04")


def test_the_date_time_pattern_needs_whole_centuries() -> None:
    from headwater.core.fields import local_datetime_pattern

    with pytest.raises(ValueError, match="whole centuries"):
        local_datetime_pattern(1950, 2199)


def test_a_body_shorter_than_its_content_length_is_a_400(client: FlaskClient) -> None:
    response = client.post(
        URL,
        data=b'{"field": ',
        content_type="application/json",
        environ_overrides={"CONTENT_LENGTH": "100"},
    )
    error = error_of(response, 400)
    assert error["code"] == "malformed_body"
    assert "ended before its declared length" in error["message"]
