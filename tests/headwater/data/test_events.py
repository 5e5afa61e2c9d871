"""The Lambda functions' events: what they accept, what they refuse, and their JSON form."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from headwater.core.partitions import parse_partition, partition_of
from headwater.data.events import CleanEvent, ExtractEvent

EVENTS = Path(__file__).parents[2] / "events"
EXTRACT = {"run_id": "run-1", "usecase": "meters", "source": "readings", "partition": "2013-01-02"}
CLEAN = {key: value for key, value in EXTRACT.items() if key != "source"}


def sample(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"{name}.json").read_text(encoding="utf-8"))


def field_errors(error: ValidationError) -> list[tuple[str, str]]:
    return [(".".join(map(str, e["loc"])), e["type"]) for e in error.errors()]


@pytest.mark.parametrize(
    ("model", "event"), [(ExtractEvent, EXTRACT), (CleanEvent, CLEAN)], ids=["extract", "clean"]
)
def test_an_event_survives_the_wire_unchanged(model: type[Any], event: dict[str, str]) -> None:
    parsed = model.model_validate(event)

    assert json.loads(parsed.model_dump_json()) == event
    assert model.model_validate_json(parsed.model_dump_json()) == parsed


EXTRACT_SAMPLES = sorted(
    path.stem for path in EVENTS.glob("extract_*.json") if not path.stem.endswith("bad_partition")
)


@pytest.mark.parametrize("name", EXTRACT_SAMPLES)
def test_the_sample_extract_events_are_what_the_function_expects(name: str) -> None:
    # each sample is named for the source it extracts
    assert name == f"extract_{ExtractEvent.model_validate(sample(name)).source}"


def test_the_sample_clean_event_is_what_the_function_expects() -> None:
    assert EXTRACT_SAMPLES  # the glob found the extract samples
    assert CleanEvent.model_validate(sample("clean_meters")).partition == "2013-01-02"


def test_a_clean_event_is_not_an_extract_event_nor_the_other_way_round() -> None:
    with pytest.raises(ValidationError) as no_source:
        ExtractEvent.model_validate(CLEAN)
    with pytest.raises(ValidationError) as extra_source:
        CleanEvent.model_validate(EXTRACT)

    assert field_errors(no_source.value) == [("source", "missing")]
    assert field_errors(extra_source.value) == [("source", "extra_forbidden")]


def test_events_are_frozen() -> None:
    event = ExtractEvent.model_validate(EXTRACT)

    with pytest.raises(ValidationError, match="frozen"):
        event.partition = "2013-01-03"  # type: ignore[misc]


@pytest.mark.parametrize(
    "partition",
    [
        "2013-1-02",
        "2013-01-2",
        "20130102",
        "2013/01/02",
        "2013-01-02T00:00",
        "2013-01-02\n",  # a line end after the date is not the end of the label
        " 2013-01",
        "2013",
        "",
        "date=2013-01-02",  # the lake key, not the label
    ],
)
def test_a_partition_that_is_not_a_label_is_refused(partition: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ExtractEvent.model_validate({**EXTRACT, "partition": partition})

    assert field_errors(caught.value) == [("partition", "string_pattern_mismatch")]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("usecase", "Meters"),
        ("usecase", "1meters"),
        ("usecase", "meters-2"),
        ("usecase", "meters\n"),
        ("usecase", "m\u0131nimal"),  # a dotless i: only ASCII names
        ("usecase", "a" * 65),
        ("source", ""),
        ("source", "../weather"),
        ("run_id", ""),
        ("run_id", "r" * 129),
    ],
)
def test_bad_names_and_run_ids_are_refused_naming_the_field(field: str, value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ExtractEvent.model_validate({**EXTRACT, field: value})

    assert [loc for loc, _ in field_errors(caught.value)] == [field]


def test_the_longest_names_and_run_id_are_accepted() -> None:
    longest = {**EXTRACT, "usecase": "a" * 64, "source": "s" + "_9" * 31 + "z", "run_id": "r" * 128}

    assert ExtractEvent.model_validate(longest).run_id == "r" * 128


def test_an_event_reports_every_bad_field_at_once() -> None:
    with pytest.raises(ValidationError) as caught:
        ExtractEvent.model_validate({"usecase": "Bad", "partition": "x", "extra": 1})

    assert sorted(field_errors(caught.value)) == [
        ("extra", "extra_forbidden"),
        ("partition", "string_pattern_mismatch"),
        ("run_id", "missing"),
        ("source", "missing"),
        ("usecase", "string_pattern_mismatch"),
    ]


@given(st.dates(min_value=date(1000, 1, 1)), st.sampled_from(["day", "month"]))
def test_every_partition_label_is_a_valid_event_partition(day: date, grain: str) -> None:
    # The runner sends Partition.label; the function parses it back with parse_partition
    label = partition_of(day, grain).label  # type: ignore[arg-type]

    event = CleanEvent(run_id="r", usecase="meters", partition=label)

    assert parse_partition(event.partition, grain) == partition_of(day, grain)  # type: ignore[arg-type]


def test_a_label_shaped_but_impossible_date_is_refused_before_any_work() -> None:
    # The event checks the shape only; the function's parse_partition refuses the date
    event = ExtractEvent.model_validate(sample("extract_readings_bad_partition"))

    with pytest.raises(ValueError, match="bad partition '2013-13-01'"):
        parse_partition(event.partition, "day")


def test_a_label_of_non_ascii_digits_is_refused_by_the_event() -> None:
    with pytest.raises(ValidationError):
        ExtractEvent.model_validate(
            {**EXTRACT, "partition": "\u0662\u0660\u0661\u0663-\u0660\u0661"}
        )
