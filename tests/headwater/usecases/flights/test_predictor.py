"""The generic serving model without Flask: request parsing, problems, building and predicting.

Runs on the flights test version of this folder's fixtures.py (``model_documents``, a real
export of a Spark-trained version) and, for loading, on versions published with the real registry
(moved from tests/headwater/serving/test_predictor.py).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from typing import Any

import pytest

from headwater.core.usecase import get_usecase
from headwater.serving.predictor import (
    BATCH_EXPECTED,
    BatchTooLarge,
    InvalidRequest,
    Problem,
    ServingModel,
    UnscorableInstance,
    build_serving_model,
    finite,
    load_serving_model,
    parse_request,
    predict,
    ranges_of,
)
from headwater.serving.scoring import ExportError, load_pipelines
from headwater.serving.store import ModelStore, ModelStoreError, ProductionPointer
from tests.headwater.usecases.flights.fixtures import TEST_MODEL

SPARK_CASES = TEST_MODEL / "spark_predictions.json"
FLIGHTS = get_usecase("flights")
SPEC = FLIGHTS.serving
EXAMPLE = dict(SPEC.example)


def documents_copy(model_documents: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(model_documents)


def build(documents: dict[str, Any], pointer: ProductionPointer | None = None) -> ServingModel:
    return build_serving_model(
        FLIGHTS,
        documents["export.json"],
        documents["lookups.json"],
        documents["metrics.json"],
        documents["lineage.json"],
        pointer,
    )


@pytest.fixture(scope="module")
def model(model_documents: dict[str, Any]) -> ServingModel:
    """The flights test version, built once for the module (it is immutable)."""
    return build(model_documents)


def problems(body: Any, max_batch: int = 10) -> list[Problem]:
    with pytest.raises(InvalidRequest) as caught:
        parse_request(SPEC, body, max_batch)
    return caught.value.problems


# -- parse_request -------------------------------------------------------------------------


def test_one_instance_is_validated_and_is_not_a_batch() -> None:
    instances, batch = parse_request(SPEC, {**EXAMPLE, "origin": "ewr", "carrier": "ua"}, 10)

    assert batch is False
    [request] = instances
    assert (request.origin, request.carrier) == ("EWR", "UA")  # codes are case-insensitive


def test_a_batch_keeps_its_order_and_says_it_is_one() -> None:
    body = {"instances": [{**EXAMPLE, "flight": n} for n in (3, 1, 2)]}

    instances, batch = parse_request(SPEC, body, 3)  # exactly the limit

    assert batch is True
    assert [i.flight for i in instances] == [3, 1, 2]


def test_a_batch_of_one_is_still_a_batch() -> None:
    assert parse_request(SPEC, {"instances": [EXAMPLE]}, 1)[1] is True


@pytest.mark.parametrize(
    ("body", "kind"),
    [([EXAMPLE], "an array"), ("{}", "a string"), (None, "null"), (3, "a number")],
    ids=["array", "string", "null", "number"],
)
def test_a_body_that_is_not_an_object_is_one_problem_at_the_top(body: Any, kind: str) -> None:
    [problem] = problems(body)

    assert problem.field == ""
    assert problem.message == f"the body is {kind}"
    assert problem.expected == BATCH_EXPECTED


def test_a_too_large_batch_is_refused_before_its_instances_are_validated() -> None:
    body = {"instances": [{"not": "an instance"}] * 11}

    with pytest.raises(BatchTooLarge) as caught:
        parse_request(SPEC, body, 10)

    assert (caught.value.count, caught.value.limit) == (11, 10)
    assert "11 instances" in str(caught.value) and "at most 10" in str(caught.value)


@pytest.mark.parametrize(
    ("instances", "message"),
    [([], "the array is empty"), (EXAMPLE, "got an object"), ("x", "got a string")],
)
def test_instances_must_be_a_non_empty_array(instances: Any, message: str) -> None:
    [problem] = problems({"instances": instances}, max_batch=5)

    assert (problem.field, problem.message) == ("instances", message)
    assert problem.expected == "an array of 1 to 5 instances"


def test_every_problem_of_every_instance_is_reported_with_its_path() -> None:
    # Given a batch with an unknown top-level key, a good instance and two bad ones
    body = {
        "instances": [
            EXAMPLE,
            {**EXAMPLE, "origin": "NEWARK", "weather": {"temp_f": 900.0}},
            {key: value for key, value in EXAMPLE.items() if key != "carrier"},
        ],
        "model": "latest",
    }

    found = problems(body)

    # Then each problem names where it is, in order, the unknown key first
    assert [p.field for p in found] == [
        "model",
        "instances[1].origin",
        "instances[1].weather.temp_f",
        "instances[2].carrier",
    ]
    assert found[0] == Problem("model", "unknown field", 'only "instances" in a batch request')
    assert found[3].message == "required field is missing"
    # and what was expected is the field's own description, found through the nested model
    fields = SPEC.request_model.model_fields
    assert found[1].expected == fields["origin"].description
    weather_model = fields["weather"].annotation.__args__[0]
    assert found[2].expected == weather_model.model_fields["temp_f"].description


def test_an_unknown_field_is_told_the_known_ones() -> None:
    [problem] = problems({**EXAMPLE, "airline": "UA"})

    assert (problem.field, problem.message) == ("airline", "unknown field")
    assert problem.expected == f"one of {', '.join(SPEC.request_model.model_fields)}"


def test_an_unknown_field_inside_a_nested_object_lists_that_objects_fields() -> None:
    [problem] = problems({**EXAMPLE, "weather": {"snow_in": 1.0}})

    assert problem.field == "weather.snow_in"
    assert problem.expected.startswith("one of temp_f, ")


def test_a_wrong_type_says_what_it_got() -> None:
    [problem] = problems({**EXAMPLE, "weather": "sunny"})

    assert (problem.field, problem.message) == ("weather", "got a string")


def test_a_huge_unknown_field_name_is_cut_in_the_report() -> None:
    name = "x" * 10_000

    [problem] = problems({**EXAMPLE, name: 1})
    [batch_problem] = problems({"instances": [EXAMPLE], name: 1})

    assert problem.field == "x" * 64 and batch_problem.field == "x" * 64


def test_the_message_names_the_first_problem_and_counts_the_others() -> None:
    with pytest.raises(InvalidRequest) as one:
        parse_request(SPEC, {**EXAMPLE, "origin": 7}, 10)
    with pytest.raises(InvalidRequest) as three:
        parse_request(SPEC, {"flight": 0}, 10)
    with pytest.raises(InvalidRequest) as top:
        parse_request(SPEC, [], 10)

    assert str(one.value) == "origin: got a number"
    assert str(three.value).endswith("(and 4 more)")  # carrier, origin, dest, departure missing
    assert str(top.value) == "the body is an array"  # no field: no leading colon


# -- build_serving_model -------------------------------------------------------------------


def test_the_model_describes_its_version_from_the_documents(
    model: ServingModel, model_documents: dict[str, Any]
) -> None:
    metadata = model_documents["export.json"]["metadata"]
    info = model.info

    assert model.ref == {"name": "flights", "version": metadata["version"]}
    assert model.threshold == 0.5 and info["threshold"] == 0.5
    assert (info["label"], info["target"]) == ("dep_delayed_15", "arr_delay")
    assert info["promoted_at"] is None  # no pointer: unknown, not invented
    assert info["metrics"]["holdout_from"] == model_documents["metrics.json"]["holdout_from"]
    assert info["lineage"]["input_partitions"] == len(model_documents["lineage.json"]["inputs"])
    assert set(info["categories"]) == {"carrier", "origin", "dest"}
    assert "UA" in info["categories"]["carrier"] and "EWR" in info["categories"]["origin"]
    assert info["categories"]["carrier"] == sorted(info["categories"]["carrier"])


def test_the_threshold_is_the_classifier_stages_not_the_metadatas(
    model_documents: dict[str, Any],
) -> None:
    documents = documents_copy(model_documents)
    documents["export.json"]["pipelines"]["classifier"]["stages"][-1]["threshold"] = 0.25
    documents["export.json"]["metadata"]["threshold"] = 0.9

    built = build(documents)
    answer = predict(built, SPEC.request_model.model_validate(EXAMPLE))

    assert built.threshold == 0.25 and answer["threshold"] == 0.25
    assert answer["delayed"] is (answer["delay_probability"] > 0.25)


def test_a_pointer_supplies_promotion_time_and_must_name_the_same_version(
    model_documents: dict[str, Any],
) -> None:
    version = model_documents["export.json"]["metadata"]["version"]
    pointer = ProductionPointer(version=version, promoted_at="2026-11-25T00:00:00+00:00")

    assert build(model_documents, pointer).info["promoted_at"] == pointer.promoted_at
    with pytest.raises(ExportError, match=f"describes version {version}, not other"):
        build(model_documents, dataclasses.replace(pointer, version="other"))


def test_non_finite_metrics_are_null_in_the_info(model_documents: dict[str, Any]) -> None:
    documents = documents_copy(model_documents)
    documents["metrics.json"]["holdout"]["auc"] = float("nan")
    documents["metrics.json"]["baselines"]["base_rate"]["brier"] = float("inf")

    info = build(documents).info

    assert info["metrics"]["holdout"]["auc"] is None
    assert info["metrics"]["baselines"]["base_rate"]["brier"] is None
    assert info["metrics"]["train_rows"] == documents["metrics.json"]["train_rows"]
    json.dumps(info, allow_nan=False)  # the answer of GET /v1/flights/model is strict JSON


def test_a_new_lineages_range_is_summarised_as_an_old_ones(
    model: ServingModel, model_documents: dict[str, Any]
) -> None:
    # Given the test version's lineage as the job writes it now: the range as two fields
    documents = documents_copy(model_documents)
    lineage = documents["lineage.json"]
    start, end = lineage.pop("date_range").split("..")
    lineage["range"] = {"start": start, "end": end}

    info = build(documents).info

    # Then the model's info says the same as for the old form
    assert info["lineage"] == model.info["lineage"]
    assert info["lineage"]["date_range"] == "2013-01-01..2013-12-31"
    assert info["lineage"]["trained_at"] == lineage["trained_at"]
    assert info["lineage"]["input_datasets"] == ["clean/flights", "raw/planes"]


def test_malformed_metrics_and_lineage_are_shown_as_nulls_and_the_model_serves(
    model_documents: dict[str, Any],
) -> None:
    documents = documents_copy(model_documents)
    documents["metrics.json"]["holdout"]["auc_roc"] = "high"
    documents["lineage.json"]["date_range"] = "2013"

    built = build(documents)

    assert set(built.info["metrics"].values()) == {None} and built.info["lineage"] is None
    assert predict(built, SPEC.request_model.model_validate(EXAMPLE))["model"] == built.ref


def test_missing_metrics_and_lineage_are_shown_as_nulls(model_documents: dict[str, Any]) -> None:
    info = build_serving_model(
        FLIGHTS, model_documents["export.json"], model_documents["lookups.json"]
    ).info

    assert set(info["metrics"].values()) == {None}
    assert info["lineage"] is None


def _drop_regressor(export: dict[str, Any]) -> str:
    del export["pipelines"]["regressor"]
    return "not classifier and regressor"


def _unknown_input(export: dict[str, Any]) -> str:
    export["pipelines"]["classifier"]["inputs"].append("moon_phase")
    return "the classifier needs inputs use case flights does not derive: moon_phase"


def _nan_intercept(export: dict[str, Any]) -> str:
    export["pipelines"]["classifier"]["stages"][-1]["intercept"] = float("nan")
    return "cannot score the use case's example: UnscorableInstance"


@pytest.mark.parametrize(
    "break_export",
    [_drop_regressor, _unknown_input, _nan_intercept],
    ids=["no-regressor", "unknown-input", "unscorable"],
)
def test_an_export_that_cannot_serve_is_refused_before_anyone_sees_it(
    model_documents: dict[str, Any], break_export: Any
) -> None:
    documents = documents_copy(model_documents)
    expected = break_export(documents["export.json"])

    with pytest.raises(ExportError, match=expected):
        build(documents)


@pytest.mark.parametrize(
    ("lookups", "expected"),
    [
        ([], "malformed lookups: TypeError"),  # the loader itself refuses it
        ({}, "cannot score the use case's example: KeyError"),  # loads, but has no defaults
        ({"weather": "not a table"}, "cannot score the use case's example"),
    ],
    ids=["array", "empty", "wrong-shape"],
)
def test_lookups_that_cannot_serve_are_an_export_error(
    model_documents: dict[str, Any], lookups: Any, expected: str
) -> None:
    with pytest.raises(ExportError, match=expected):
        build_serving_model(FLIGHTS, model_documents["export.json"], lookups)


# -- predict -------------------------------------------------------------------------------


def test_predictions_equal_what_spark_gave_the_same_flights(model: ServingModel) -> None:
    cases = json.loads(SPARK_CASES.read_text(encoding="utf-8"))
    assert cases["version"] == model.version

    for case in cases["cases"]:
        answer = predict(model, SPEC.request_model.model_validate(case["request"]))
        spark = case["spark"]
        assert answer["delay_probability"] == pytest.approx(spark["probability"], abs=1e-9)
        assert answer["delayed"] is (spark["decision"] == 1.0)
        assert answer["expected_arrival_delay_minutes"] == pytest.approx(
            spark["arrival_delay"], abs=1e-6
        )


def test_an_answer_has_the_use_cases_keys_and_its_provenance(model: ServingModel) -> None:
    answer = predict(model, SPEC.request_model.model_validate(EXAMPLE))

    assert set(answer) == {
        "flight",
        "delay_probability",
        "delayed",
        "threshold",
        "expected_arrival_delay_minutes",
        "defaulted",
        "unseen",
        "out_of_range",
        "clipped",
        "model",
    }
    assert answer["flight"]["scheduled_departure"] == "2013-11-04T17:15:00"
    # a version without a profile judges no range; the example's estimate is plausible
    assert answer["out_of_range"] == [] and answer["clipped"] == []
    assert 0.0 < answer["delay_probability"] < 1.0
    assert answer["unseen"] == [] and answer["model"] == model.ref
    json.dumps(answer, allow_nan=False)


def test_codes_never_seen_in_training_are_scored_and_listed(model: ServingModel) -> None:
    request = SPEC.request_model.model_validate({**EXAMPLE, "carrier": "ZZ", "dest": "XYZ"})

    answer = predict(model, request)

    assert answer["unseen"] == ["carrier", "dest"]  # in the model's categorical order
    assert math.isfinite(answer["delay_probability"])


def test_inputs_not_given_are_defaulted_and_said_so(model: ServingModel) -> None:
    given = predict(model, SPEC.request_model.model_validate(EXAMPLE))
    bare = {key: value for key, value in EXAMPLE.items() if key not in ("tailnum", "weather")}

    answer = predict(model, SPEC.request_model.model_validate(bare))

    assert answer["defaulted"] and set(given["defaulted"]) < set(answer["defaulted"])
    assert answer["delay_probability"] != given["delay_probability"]


def test_a_higher_intercept_raises_every_probability(model_documents: dict[str, Any]) -> None:
    shifted = documents_copy(model_documents)
    shifted["export.json"]["pipelines"]["classifier"]["stages"][-1]["intercept"] += 2.0
    base, higher = build(model_documents), build(shifted)
    request = SPEC.request_model.model_validate(EXAMPLE)

    assert (
        predict(higher, request)["delay_probability"] > predict(base, request)["delay_probability"]
    )
    # the regressor is untouched
    assert predict(higher, request)["expected_arrival_delay_minutes"] == pytest.approx(
        predict(base, request)["expected_arrival_delay_minutes"]
    )


def test_a_non_finite_score_is_unscorable_not_a_nan_answer(
    model: ServingModel, model_documents: dict[str, Any]
) -> None:
    export = documents_copy(model_documents)["export.json"]
    export["pipelines"]["regressor"]["stages"][-1]["intercept"] = float("inf")
    broken = load_pipelines(export)
    model = dataclasses.replace(model, regressor=broken["regressor"])

    with pytest.raises(UnscorableInstance, match="no finite answer"):
        predict(model, SPEC.request_model.model_validate(EXAMPLE))


@pytest.mark.parametrize(
    ("swap", "message"),
    [
        ({"classifier": "regressor"}, "the classifier pipeline ends in a linear, not a logistic"),
        ({"regressor": "classifier"}, "the regressor pipeline ends in a logistic, not a linear"),
    ],
)
def test_each_head_must_be_the_regression_it_answers_with(
    model: ServingModel, swap: dict[str, str], message: str
) -> None:
    # a logistic "regressor" would answer its logit as minutes; a linear "classifier" no
    # probability at all
    heads = {head: getattr(model, source) for head, source in swap.items()}

    with pytest.raises(ExportError, match=message):
        dataclasses.replace(model, **heads)


def test_finite_replaces_nan_and_infinities_at_any_depth() -> None:
    value = {"a": [1.0, float("nan"), {"b": float("-inf")}], "c": "nan", "d": 2}

    assert finite(value) == {"a": [1.0, None, {"b": None}], "c": "nan", "d": 2}


# -- load_serving_model --------------------------------------------------------------------


def test_load_reads_the_promoted_version_through_the_store(lake_uri: str, publish: Any) -> None:
    version = publish(lake_uri)
    store = ModelStore(lake_uri, "flights")
    pointer = store.production()
    assert pointer is not None

    loaded = load_serving_model(store, pointer, FLIGHTS)

    assert loaded.version == version
    assert loaded.info["promoted_at"] == pointer.promoted_at


def test_load_refuses_an_incomplete_version(lake_uri: str, publish: Any) -> None:
    # Given a pointer naming a version whose files are there but not its _SUCCESS flag
    version = publish(lake_uri, complete=False, promote=False)
    store = ModelStore(lake_uri, "flights")
    pointer = ProductionPointer(version=version)

    with pytest.raises(ModelStoreError, match="incomplete"):
        load_serving_model(store, pointer, FLIGHTS)


def test_load_refuses_a_serving_file_changed_since_promotion(
    lake_uri: str, publish: Any, model_documents: dict[str, Any]
) -> None:
    from headwater.core.layout import LOOKUPS, model_parts
    from headwater.data.lake import open_lake

    version = publish(lake_uri)
    store = ModelStore(lake_uri, "flights")
    pointer = store.production()
    assert pointer is not None
    changed = json.dumps(model_documents["lookups.json"], indent=1).encode()  # same content
    open_lake(lake_uri).write_bytes(changed, *model_parts("flights", version, LOOKUPS))

    with pytest.raises(ModelStoreError, match="changed since it was promoted"):
        load_serving_model(store, pointer, FLIGHTS)


def test_load_serves_a_version_without_metrics_or_lineage(lake_uri: str, publish: Any) -> None:
    publish(lake_uri, skip=("metrics.json", "lineage.json"))
    store = ModelStore(lake_uri, "flights")
    pointer = store.production()
    assert pointer is not None

    info = load_serving_model(store, pointer, FLIGHTS).info

    assert info["lineage"] is None and set(info["metrics"].values()) == {None}


# -- out of range inputs and plausible estimates ---------------------------------------------


def training_profile(
    documents: dict[str, Any], usecase: Any, requests: list[Any]
) -> dict[str, Any]:
    """A profile.json of the inputs of ``requests`` (as training would record them)."""
    from headwater.monitoring.profile import build_profile

    spec, training = usecase.serving, usecase.training
    lookups = training.load_lookups(documents["lookups.json"])
    rows = [
        spec.features_record(spec.request_model.model_validate(r), lookups)[0] for r in requests
    ]
    columns = {name: [row[name] for row in rows] for name in training.features}
    profile = build_profile(columns, categorical=training.categorical)
    return {"format": 1, "profile": profile.to_dict()}


def flights_profile(documents: dict[str, Any]) -> dict[str, Any]:
    """Flights at 20 to 80 °F only: the example's weather lies within."""
    requests = [
        {**EXAMPLE, "weather": {**EXAMPLE["weather"], "temp_f": float(t)}} for t in range(20, 81)
    ]
    return training_profile(documents, FLIGHTS, requests)


def test_the_ranges_read_by_the_api_are_the_profiles_own(model_documents: dict[str, Any]) -> None:
    from headwater.monitoring.profile import Profile

    body = flights_profile(model_documents)

    expected = Profile.from_dict(body["profile"]).ranges()
    got = ranges_of(body, FLIGHTS.training.numeric)
    assert {name: (low, high) for name, low, high in got} == {
        name: (r.minimum, r.maximum) for name, r in expected.items()
    }
    assert [name for name, _, _ in got] == [n for n in FLIGHTS.training.numeric if n in expected]


@pytest.mark.parametrize(
    ("temp_f", "flagged"), [(20.0, []), (80.0, []), (19.5, ["temp_f"]), (95.0, ["temp_f"])]
)
def test_inputs_outside_the_training_range_are_named(
    model_documents: dict[str, Any], temp_f: float, flagged: list[str]
) -> None:
    from headwater.monitoring.profile import Profile, outside_range

    body = flights_profile(model_documents)
    model = dataclasses.replace(
        build(model_documents), ranges=ranges_of(body, FLIGHTS.training.numeric)
    )
    request = SPEC.request_model.model_validate(
        {**EXAMPLE, "weather": {**EXAMPLE["weather"], "temp_f": temp_f}}
    )

    answer = predict(model, request)

    assert answer["out_of_range"] == flagged
    # the same judgement as the monitoring's, on the same features
    features, _ = SPEC.features_record(request, model.lookups)
    ranges = Profile.from_dict(body["profile"]).ranges()
    assert answer["out_of_range"] == list(outside_range(ranges, features))


def test_an_estimate_outside_the_plausible_range_is_clipped_and_named(
    model_documents: dict[str, Any],
) -> None:
    from headwater.core.usecase import Quantity

    model = build(model_documents)
    request = SPEC.request_model.model_validate(EXAMPLE)
    free = predict(dataclasses.replace(model, target=None), request)[
        "expected_arrival_delay_minutes"
    ]
    key = SPEC.answer.estimate

    above = Quantity("arr_delay", "arrival delay", "min", low=free + 1.0)
    below = Quantity("arr_delay", "arrival delay", "min", high=free - 1.0)
    within = Quantity("arr_delay", "arrival delay", "min", low=free - 1.0, high=free + 1.0)

    raised = predict(dataclasses.replace(model, target=above), request)
    lowered = predict(dataclasses.replace(model, target=below), request)
    kept = predict(dataclasses.replace(model, target=within), request)
    assert (raised[key], raised["clipped"]) == (free + 1.0, [key])
    assert (lowered[key], lowered["clipped"]) == (free - 1.0, [key])
    assert (kept[key], kept["clipped"]) == (free, [])
    # the use case's own declared range is the one served
    assert model.target == FLIGHTS.training.target


def publish_profile(lake_uri: str, publish: Any, profile: bytes | None) -> str:
    """Publish the flights test version with ``profile`` as its profile.json, then promote."""
    from headwater.core.layout import PROFILE, model_parts
    from headwater.data.lake import open_lake
    from headwater.registry.registry import Registry

    version = publish(lake_uri, promote=False)
    lake = open_lake(lake_uri)
    if profile is not None:
        lake.write_bytes(profile, *model_parts("flights", version, PROFILE))
    Registry(lake, "flights").promote(version, "test")
    return version


def test_load_serves_the_profiles_ranges_verified_like_the_export(
    lake_uri: str, publish: Any, model_documents: dict[str, Any]
) -> None:
    from headwater.core.layout import PROFILE

    body = flights_profile(model_documents)
    version = publish_profile(lake_uri, publish, json.dumps(body).encode())
    store = ModelStore(lake_uri, "flights")
    pointer = store.production()
    assert pointer is not None and pointer.checksums[version][PROFILE] != "absent"

    loaded = load_serving_model(store, pointer, FLIGHTS)

    assert dict((n, (lo, hi)) for n, lo, hi in loaded.ranges)["temp_f"] == (20.0, 80.0)


def test_load_refuses_a_profile_changed_since_promotion(
    lake_uri: str, publish: Any, model_documents: dict[str, Any]
) -> None:
    from headwater.core.layout import PROFILE, model_parts
    from headwater.data.lake import open_lake

    body = flights_profile(model_documents)
    version = publish_profile(lake_uri, publish, json.dumps(body).encode())
    widened = json.dumps(body, indent=1).encode()  # same content, other bytes
    open_lake(lake_uri).write_bytes(widened, *model_parts("flights", version, PROFILE))
    store = ModelStore(lake_uri, "flights")
    pointer = store.production()
    assert pointer is not None

    with pytest.raises(ModelStoreError, match="changed since it was promoted"):
        load_serving_model(store, pointer, FLIGHTS)


def test_a_version_without_a_profile_still_serves_and_judges_no_range(
    lake_uri: str, publish: Any
) -> None:
    from headwater.core.layout import PROFILE

    version = publish_profile(lake_uri, publish, None)
    store = ModelStore(lake_uri, "flights")
    pointer = store.production()
    assert pointer is not None and pointer.checksums[version][PROFILE] == "absent"

    loaded = load_serving_model(store, pointer, FLIGHTS)
    # and an older pointer that recorded no checksum of it at all
    older = load_serving_model(
        store,
        ProductionPointer(
            version,
            checksums={
                version: {k: v for k, v in pointer.checksums[version].items() if k != PROFILE}
            },
        ),
        FLIGHTS,
    )

    assert loaded.ranges == () == older.ranges


def test_a_profile_written_after_promotion_is_refused(
    lake_uri: str, publish: Any, model_documents: dict[str, Any]
) -> None:
    from headwater.core.layout import PROFILE, model_parts
    from headwater.data.lake import open_lake

    version = publish_profile(lake_uri, publish, None)
    body = json.dumps(flights_profile(model_documents)).encode()
    open_lake(lake_uri).write_bytes(body, *model_parts("flights", version, PROFILE))
    store = ModelStore(lake_uri, "flights")
    pointer = store.production()
    assert pointer is not None

    with pytest.raises(ModelStoreError, match="absent when version"):
        load_serving_model(store, pointer, FLIGHTS)


def test_a_malformed_profile_is_an_export_error(model_documents: dict[str, Any]) -> None:
    documents = documents_copy(model_documents)

    with pytest.raises(ExportError, match="malformed profile.json"):
        build_serving_model(
            FLIGHTS,
            documents["export.json"],
            documents["lookups.json"],
            profile={"profile": {"features": {"temp_f": {"kind": "numeric"}}}},
        )


def test_a_bike_share_hour_in_1900_is_flagged_and_never_a_negative_count(
    bike_documents: dict[str, Any],
) -> None:
    bikeshare = get_usecase("bikeshare")
    spec = bikeshare.serving
    # Given the test version with the profile of hours of its training years, 2011 and 2012
    hours = [
        {**spec.example, "hour_start": f"{year}-{month:02d}-{day:02d}T{hour:02d}:00"}
        for year in (2011, 2012)
        for month in range(1, 13)
        for day in (1, 15, 28)
        for hour in range(0, 24, 3)
    ]
    profile = training_profile(bike_documents, bikeshare, hours)
    model = build_serving_model(
        bikeshare, bike_documents["export.json"], bike_documents["lookups.json"], profile=profile
    )
    request = spec.request_model.model_validate({**spec.example, "hour_start": "1900-06-01T17:00"})

    # When an hour in 1900 is asked for
    answer = predict(model, request)
    unclipped = predict(dataclasses.replace(model, target=None), request)

    # Then the trend input lies far outside training and is named; the model's own estimate is a
    # negative count, answered as 0 and said to be clipped
    assert answer["out_of_range"] == ["years_since_start"]
    assert unclipped[spec.answer.estimate] < -1000
    assert answer[spec.answer.estimate] == 0.0
    assert answer["clipped"] == [spec.answer.estimate]
    # while the documented example is answered as it was
    example = predict(model, spec.request_model.model_validate(spec.example))
    assert example["out_of_range"] == [] and example["clipped"] == []
    assert bikeshare.training.target.low == 0
