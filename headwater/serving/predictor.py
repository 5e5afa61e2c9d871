"""Serve a use case's promoted model without a JVM: requests, features, scores and answers.

Generic: what is specific comes from the use case's :class:`ServingSpec` (the pydantic
request model, feature derivation, answer keys, example) and :class:`TrainingSpec`
(categorical features, the lookups loader). A request is validated by the request
model, and every problem is reported with its path (``instances[3].origin``), what is
wrong and what was expected (the field's own description). Features come from the use
case's ``features_record`` and the lookups stored with the version; scores from the
portable export (:mod:`headwater.serving.scoring`): the same numbers as Spark's ``transform``.

A :class:`ServingModel` is immutable and built completely (and made to score the use
case's example) before anyone sees it, so swapping versions is one reference assignment.
No Flask here, and neither pandas nor pyarrow.

The answers' shapes are declared once here as pydantic models (:class:`ModelRef`,
:class:`ModelInfo`, and per use case :func:`prediction_model` from its answer keys): the
OpenAPI document is generated from them. Answers are built as plain dicts, not validated
per request (that would cost more than scoring); the tests validate real answers against
the document.
"""

import functools
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

from headwater.core import layout
from headwater.core.fields import kind_of, show
from headwater.core.logs import get_logger
from headwater.core.records import Lineage, RecordError, TrainingMetrics
from headwater.core.usecase import Quantity, ServingSpec, UseCase
from headwater.serving.scoring import (
    ExportError,
    LinearForm,
    PortablePipeline,
    fold,
    load_pipelines,
)
from headwater.serving.store import ABSENT, ModelStore, ModelStoreError, ProductionPointer

log = get_logger(__name__)
MAX_PROBLEMS = 50  # reported per request; the message says how many there were in all
BATCH_EXPECTED = 'a JSON object: one instance, or {"instances": [instance, ...]}'


# -- request problems ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """What is wrong with one field, and what was expected there."""

    field: Annotated[str, Field(examples=["instances[3].origin"])]
    message: str
    expected: str

    def to_dict(self) -> dict[str, str]:
        """JSON-able form."""
        return {"field": self.field, "message": self.message, "expected": self.expected}


class InvalidRequest(ValueError):
    """The request's content is not a valid prediction request."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        where = f"{first.field}: " if first.field else ""
        super().__init__(f"{where}{first.message}{more}")


class BatchTooLarge(ValueError):
    """More instances than the configured maximum."""

    def __init__(self, count: int, limit: int) -> None:
        self.count, self.limit = count, limit
        super().__init__(
            f"{count} instances in one request; at most {limit} are accepted: "
            "split the batch into several requests"
        )


class UnscorableInstance(ValueError):
    """The model gives a non-finite number for a valid instance (extreme inputs)."""


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model an annotation holds (``Model``, ``Model | None``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for argument in typing.get_args(annotation):
            found = _model_in(argument)
            if found is not None:
                return found
    return None


def _first_line(model: type[BaseModel]) -> str:
    return (model.__doc__ or model.__name__).strip().splitlines()[0].rstrip(".").lower()


def _expected(model: type[BaseModel], names: list[str], error_type: str) -> str:
    """What was expected at ``names``: the field's own description, found through the models."""
    container: type[BaseModel] | None = model
    description = f"a JSON object: {_first_line(model)}"
    for name in names:
        if container is None:
            break
        if name not in container.model_fields:
            if error_type == "extra_forbidden":
                return f"one of {', '.join(container.model_fields)}"
            break
        info = container.model_fields[name]
        description = info.description or description
        container = _model_in(info.annotation)
    return description


def _message(error: Mapping[str, Any]) -> str:
    kind, value = error["type"], error.get("input")
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "value_error":
        return str(error["ctx"]["error"])
    if kind.endswith("_type") or kind in ("model_attributes_type", "dict_type"):
        return f"got {kind_of(value)}"
    text = error["msg"]
    return f"got {show(value)}: {text[:1].lower()}{text[1:]}"


def problems_of(error: ValidationError, model: type[BaseModel], prefix: str = "") -> list[Problem]:
    """Turn pydantic's errors into problems: path, what is wrong, what was expected."""
    problems: list[Problem] = []
    for item in error.errors(include_url=False):
        path, names = prefix, []
        for part in item["loc"]:
            if isinstance(part, int):
                path = f"{path}[{part}]"
            else:
                path = f"{path}.{str(part)[:64]}" if path else str(part)[:64]
                names.append(str(part))
        problems.append(Problem(path, _message(item), _expected(model, names, item["type"])))
    return problems


@functools.cache
def _batch_adapter(model: type[BaseModel]) -> TypeAdapter[list[Any]]:
    return TypeAdapter(list[model])  # type: ignore[valid-type]


def parse_request(spec: ServingSpec, body: Any, max_batch: int) -> tuple[list[Any], bool]:
    """Validate a whole request: one instance, or ``{"instances": [...]}``.

    Returns:
        The validated instances and whether the request was a batch.

    Raises:
        InvalidRequest: listing the problems of every instance.
        BatchTooLarge: more than ``max_batch`` instances.
    """
    model: type[BaseModel] = spec.request_model
    if not isinstance(body, dict):
        raise InvalidRequest([Problem("", f"the body is {kind_of(body)}", BATCH_EXPECTED)])
    if "instances" not in body:
        try:
            return [model.model_validate(body)], False
        except ValidationError as exc:
            raise InvalidRequest(problems_of(exc, model)) from None
    instances = body["instances"]
    problems = [
        Problem(name[:64], "unknown field", 'only "instances" in a batch request')
        for name in body
        if name != "instances"
    ]
    expected = f"an array of 1 to {max_batch} instances"
    if not isinstance(instances, list):
        raise InvalidRequest(
            [*problems, Problem("instances", f"got {kind_of(instances)}", expected)]
        )
    if not instances:
        raise InvalidRequest([*problems, Problem("instances", "the array is empty", expected)])
    if len(instances) > max_batch:
        raise BatchTooLarge(len(instances), max_batch)
    try:
        validated = _batch_adapter(model).validate_python(instances)
    except ValidationError as exc:
        raise InvalidRequest([*problems, *problems_of(exc, model, "instances")]) from None
    if problems:
        raise InvalidRequest(problems)
    return validated, True


# -- the answers' shapes (the OpenAPI document's) ------------------------------------------------
class AnswerModel(BaseModel):
    """The base of every answer's shape: its schema is built when first used (the OpenAPI
    document, a test), not when the module is imported by a cold start that never needs it."""

    model_config = ConfigDict(defer_build=True)


class ModelRef(AnswerModel):
    """The model version that answers: its name (the use case's) and version."""

    name: str
    version: str


class ModelMetrics(AnswerModel):
    """Holdout metrics of the training run (metrics.json)."""

    holdout_from: str | None
    train_rows: int | None
    holdout: dict[str, Any] | None
    regression: dict[str, Any] | None
    baselines: dict[str, Any] | None


class ModelInfo(AnswerModel):
    """The model in service: version, training date, holdout metrics, lineage, features."""

    name: str = Field(description="The use case (the model's name).")
    title: str
    version: str
    promoted_at: str | None = Field(description="When it was promoted (null: unknown).")
    trained_at: str | None
    loaded_at: str
    threshold: float
    label: str | None
    target: str | None
    features: list[str]
    categories: dict[str, list[str]] = Field(
        description="Values seen in training of the listed categorical inputs "
        "(others are `unseen`)."
    )
    metrics: ModelMetrics
    lineage: dict[str, Any] | None = Field(description="Summary of lineage.json.")


def _plausible(quantity: Quantity) -> str:
    """The plausible range of a quantity, in words (for the answer's documentation)."""
    low = "-inf" if quantity.low is None else f"{quantity.low:g}"
    high = "+inf" if quantity.high is None else f"{quantity.high:g}"
    return f"{low}..{high} (the use case's declared range)"


def prediction_model(usecase: UseCase) -> type[BaseModel]:
    """The model of one answer of ``usecase``: keys from its AnswerShape, words from its spec.

    Built per use case (the keys are the use case's). Each field carries its key as its
    alias (the attribute is ``field_<n>``), so any key is possible, even a pydantic name.
    """
    answer, training = usecase.serving.answer, usecase.training
    label, target = training.label, training.target
    unit = f" ({target.unit})" if target.unit else ""
    unseen: Any = Literal[tuple(training.categorical)] if training.categorical else str
    fields: list[tuple[str, Any, dict[str, Any]]] = [
        (answer.echo, dict[str, Any], {"description": "The instance as understood."}),
        (
            answer.probability,
            float,
            {"ge": 0, "le": 1, "description": f"Probability of: {label.name}."},
        ),
        (
            answer.decision,
            bool,
            {"description": f"The decision: {answer.probability} above the threshold."},
        ),
        ("threshold", float, {"description": "The model version's decision threshold."}),
        (answer.estimate, float, {"description": f"Expected {target.name}{unit}."}),
        (
            "defaulted",
            list[str],
            {
                "description": "Inputs taken from the model version's defaults (not given, "
                "or not in its lookups)."
            },
        ),
        (
            "unseen",
            list[unseen],
            {
                "description": "Categorical features whose value the model never saw in "
                "training (scored as Spark scores them)."
            },
        ),
        (
            "out_of_range",
            list[Literal[tuple(training.numeric)]] if training.numeric else list[str],
            {
                "description": "Numeric model inputs outside the range seen in training (the "
                "model extrapolates there); empty when none, or when the version has no "
                "profile."
            },
        ),
        (
            "clipped",
            list[Literal[answer.estimate]],
            {
                "description": f"Outputs moved into their plausible range: {answer.estimate} "
                f"when the model's estimate lies outside {_plausible(target)}."
            },
        ),
        ("model", ModelRef, {"description": "The model version that answered."}),
    ]
    return create_model(  # type: ignore[call-overload, no-any-return]
        "Prediction",
        __config__=ConfigDict(validate_by_name=True),
        __doc__=f"One answer: {usecase.title}",
        **{
            f"field_{i}": (kind, Field(alias=key, **rules))
            for i, (key, kind, rules) in enumerate(fields)
        },
    )


def batch_prediction_model(usecase: UseCase) -> type[BaseModel]:
    """The model of a batch's answer: the use case's predictions, in the order of the instances."""
    return create_model(
        "BatchResponse",
        __doc__=f"The answers to a batch: {usecase.title}",
        predictions=(
            list[prediction_model(usecase)],  # type: ignore[misc]
            Field(description="One prediction per instance, in the order of the instances."),
        ),
    )


# -- the served model ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ServingModel:
    """Everything needed to answer predictions for one version of one use case's model."""

    name: str
    version: str
    spec: ServingSpec
    classifier: PortablePipeline
    regressor: PortablePipeline
    lookups: Any
    threshold: float
    categorical: tuple[str, ...]
    # Categories seen in training, by categorical feature (anything else is "unseen").
    known: Mapping[str, frozenset[str]]
    # What GET /v1/<use case>/model answers, computed once.
    info: Mapping[str, Any] = field(default_factory=dict)
    # (input, minimum, maximum) of each numeric model input seen in training (profile.json).
    ranges: tuple[tuple[str, float, float], ...] = ()
    # The estimate's plausible range (the use case's target), clipped into at serving.
    target: Quantity | None = None
    # The classifier folded for scoring (derived from ``classifier``, never passed).
    classifier_form: LinearForm = field(init=False, repr=False, compare=False)
    # The regressor folded for scoring (derived from ``regressor``, never passed).
    regressor_form: LinearForm = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Fold both pipelines once per version.

        Raises:
            ExportError: a pipeline does not fold, the classifier is not a logistic
                regression, or the regressor is one.
        """
        classifier, regressor = fold(self.classifier), fold(self.regressor)
        if not classifier.logistic:
            raise ExportError(
                "the classifier pipeline ends in a linear, not a logistic, regression"
            )
        if regressor.logistic:
            raise ExportError("the regressor pipeline ends in a logistic, not a linear, regression")
        object.__setattr__(self, "classifier_form", classifier)
        object.__setattr__(self, "regressor_form", regressor)

    @property
    def ref(self) -> dict[str, str]:
        """The model's name and version, as every prediction reports them."""
        return {"name": self.name, "version": self.version}


def finite(value: Any) -> Any:
    """Replace NaN and infinities by None, recursively: they are not JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def _known_categories(export: Mapping[str, Any]) -> dict[str, frozenset[str]]:
    known: dict[str, frozenset[str]] = {}
    for stage in export["pipelines"]["classifier"]["stages"]:
        if stage.get("type") == "StringIndexer":
            for column, labels in zip(stage["inputCols"], stage["labels"], strict=True):
                known[column] = frozenset(labels)
    return known


def _record(parse: Any, document: Any, name: str) -> Any:
    """The typed record of an optional document; None when absent or malformed (logged)."""
    if document is None:
        return None
    try:
        return parse(document, name)
    except RecordError as exc:  # an info document: the model still serves, its info says null
        log.warning("model document unreadable", document=name, error=str(exc))
        return None


def _lineage_summary(lineage: Lineage | None) -> dict[str, Any] | None:
    if lineage is None:
        return None
    return {
        "run_id": lineage.run_id,
        "code_version": lineage.code_version,
        "trained_at": lineage.trained_at.isoformat() if lineage.trained_at else None,
        "date_range": str(lineage.range) if lineage.range else None,  # the answer's own form
        "holdout_from": lineage.holdout_from.isoformat() if lineage.holdout_from else None,
        "spark_version": lineage.spark_version,
        "pyspark_version": lineage.pyspark_version,
        "python_version": lineage.python_version,
        "input_partitions": len(lineage.inputs),
        "input_datasets": lineage.input_datasets,
    }


def _metrics_summary(metrics: TrainingMetrics | None) -> dict[str, Any]:
    if metrics is None:
        return dict.fromkeys(("holdout_from", "train_rows", "holdout", "regression", "baselines"))
    return {
        "holdout_from": metrics.holdout_from.isoformat() if metrics.holdout_from else None,
        "train_rows": metrics.train_rows,
        "holdout": dict(metrics.holdout),
        "regression": dict(metrics.regression),
        "baselines": {name: dict(values) for name, values in metrics.baselines.items()},
    }


def ranges_of(
    profile: Mapping[str, Any], inputs: tuple[str, ...]
) -> tuple[tuple[str, float, float], ...]:
    """The training range of each numeric input among ``inputs``, from ``profile.json``.

    Reads the profile's JSON as :class:`headwater.monitoring.profile.NumericProfile` writes
    it (the API has no numpy to import that module); checked against it in the tests.

    Raises:
        ExportError: the profile is malformed.
    """
    try:
        features = profile["profile"]["features"]
        out = []
        for name in inputs:
            body = features.get(name)
            if body is not None and body["kind"] == "numeric":
                out.append((name, float(body["minimum"]), float(body["maximum"])))
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise ExportError(f"malformed {layout.PROFILE}: {type(exc).__name__}: {exc}") from None
    return tuple(out)


def build_serving_model(
    usecase: UseCase,
    export: Mapping[str, Any],
    lookups: Mapping[str, Any],
    metrics: Mapping[str, Any] | None = None,
    lineage: Mapping[str, Any] | None = None,
    pointer: ProductionPointer | None = None,
    profile: Mapping[str, Any] | None = None,
) -> ServingModel:
    """Assemble a :class:`ServingModel` from a version's documents; fail rather than half-load.

    ``metrics`` and ``lineage`` (``metrics.json``, ``lineage.json``) only describe the version:
    absent or malformed (logged), its info shows them as null and it still serves.

    Raises:
        ExportError: the export is malformed, needs inputs the use case does not derive,
            its lookups do not load, or it cannot score the use case's example.
    """
    training, spec = usecase.training, usecase.serving
    pipelines = load_pipelines(export)
    if not {"classifier", "regressor"} <= set(pipelines):
        raise ExportError(f"export has pipelines {sorted(pipelines)}, not classifier and regressor")
    classifier, regressor = pipelines["classifier"], pipelines["regressor"]
    for head, pipeline in (("classifier", classifier), ("regressor", regressor)):
        unknown = sorted(set(pipeline.inputs) - set(training.features))
        if unknown:
            raise ExportError(
                f"the {head} needs inputs use case {usecase.name} does not derive: "
                f"{', '.join(unknown)}"
            )
    try:
        loaded_lookups = training.load_lookups(lookups)
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise ExportError(f"malformed lookups: {type(exc).__name__}: {exc}") from None
    metadata = export.get("metadata") or {}
    version = str(metadata.get("version") or (pointer.version if pointer else ""))
    if pointer is not None and version != pointer.version:
        raise ExportError(f"{layout.EXPORT} describes version {version}, not {pointer.version}")
    classifier_stages = export["pipelines"]["classifier"]["stages"]
    # The decision is the classifier stage's own (Spark's); report that threshold.
    threshold = float(classifier_stages[-1].get("threshold", metadata.get("threshold", 0.5)))
    known = _known_categories(export)
    metrics_record = _record(TrainingMetrics.from_dict, metrics, layout.METRICS)
    lineage_record = _record(Lineage.from_dict, lineage, layout.LINEAGE)
    info = {
        "name": usecase.name,
        "title": usecase.title,
        "version": version,
        "promoted_at": (pointer.promoted_at or None) if pointer else None,  # null: unknown
        "trained_at": metadata.get("trained_at"),
        "loaded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "threshold": threshold,
        "label": metadata.get("label") or training.label.column,
        "target": metadata.get("target") or training.target.column,
        "features": list(metadata.get("features") or classifier.inputs),
        "categories": {column: sorted(known.get(column, ())) for column in spec.listed_categories},
        "metrics": finite(_metrics_summary(metrics_record)),
        "lineage": finite(_lineage_summary(lineage_record)),
    }
    model = ServingModel(
        name=usecase.name,
        version=version,
        spec=spec,
        classifier=classifier,
        regressor=regressor,
        lookups=loaded_lookups,
        threshold=threshold,
        categorical=tuple(training.categorical),
        known=known,
        info=info,
        # computed once here: an answer only compares (a version without a profile: none)
        ranges=ranges_of(profile, tuple(training.numeric)) if profile is not None else (),
        target=training.target,
    )
    _probe(model)
    return model


def _probe(model: ServingModel) -> None:
    """Score the use case's example: a version that cannot, is not served."""
    try:
        request = model.spec.request_model.model_validate(model.spec.example)
        predict(model, request)
    except Exception as exc:  # any failure here would be a 500 for every request
        raise ExportError(
            f"the version cannot score the use case's example: {type(exc).__name__}: {exc}"
        ) from exc


def load_serving_model(
    store: ModelStore, pointer: ProductionPointer, usecase: UseCase
) -> ServingModel:
    """Read one complete version from the store and build its :class:`ServingModel`."""
    version = pointer.version
    if not store.is_complete(version):
        raise ModelStoreError(
            f"{store.uri(version)} is incomplete (no {layout.SUCCESS}): refusing to serve it"
        )
    recorded = pointer.checksums.get(version, {})
    # The files the registry took checksums of at promotion, verified as they are read.
    served: dict[str, Any] = {}
    for filename in layout.SERVING_FILES:
        checksum = recorded.get(filename)
        if (
            filename in layout.OPTIONAL_SERVING_FILES
            and checksum in (None, ABSENT)
            and not store.exists(version, filename)
        ):
            served[filename] = None  # a version trained before the file existed
            continue
        # recorded ABSENT but there now: read_json refuses it (written after promotion)
        served[filename] = store.read_json(version, filename, checksum)
    optional: dict[str, Any] = {}
    for filename in (layout.METRICS, layout.LINEAGE):
        try:
            optional[filename] = store.read_json(version, filename)
        except ModelStoreError:
            optional[filename] = None  # shown as null by GET /v1/<use case>/model
    return build_serving_model(
        usecase,
        served[layout.EXPORT],
        served[layout.LOOKUPS],
        optional[layout.METRICS],
        optional[layout.LINEAGE],
        pointer,
        served[layout.PROFILE],
    )


class Scored(NamedTuple):
    """One scored request: the answer, and the feature record the model scored to give it."""

    #: What the client is answered (:func:`predict`).
    answer: dict[str, Any]
    #: ``ServingSpec.features_record`` of the request with the version's lookups, as scored:
    #: prediction capture records this very object (never derived a second time).
    features: dict[str, Any]


def predict(model: ServingModel, request: Any) -> dict[str, Any]:
    """Score one validated request: probability, decision, estimate, defaults, provenance.

    Raises:
        UnscorableInstance: the model gives a non-finite number for this instance.
    """
    return score(model, request).answer


def score(model: ServingModel, request: Any) -> Scored:
    """:func:`predict`'s answer with the features it was computed from (for capture).

    Raises:
        UnscorableInstance: the model gives a non-finite number for this instance.
    """
    spec = model.spec
    features, defaulted = spec.features_record(request, model.lookups)
    probability, decision = model.classifier_form.classify(features)
    estimate = model.regressor_form.margin(features)
    if not (math.isfinite(probability) and math.isfinite(estimate)):
        raise UnscorableInstance(
            f"the model gives no finite answer (probability {probability}, estimate {estimate}): "
            "check the inputs for extreme values"
        )
    answer = spec.answer
    clipped: list[str] = []
    if model.target is not None and (bounded := model.target.clip(estimate)) != estimate:
        estimate, clipped = bounded, [answer.estimate]
    answered = {
        answer.echo: spec.describe(request),
        answer.probability: probability,
        answer.decision: decision == 1.0,
        "threshold": model.threshold,
        answer.estimate: estimate,
        "defaulted": defaulted,
        "unseen": [
            name for name in model.categorical if features[name] not in model.known.get(name, ())
        ],
        # NaN and None compare False both ways: a missing value is never out of range
        "out_of_range": [
            name
            for name, low, high in model.ranges
            if (value := features[name]) is not None and (value < low or value > high)
        ],
        "clipped": clipped,
        "model": model.ref,
    }
    return Scored(answered, features)
