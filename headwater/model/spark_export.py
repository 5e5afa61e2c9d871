"""Export fitted Spark ML pipelines to the portable JSON document that serving.scoring reads.

The onnxmltools Spark converter is not an option: it turns zero standard deviations
into NaN probabilities, works in float32 and ignores ``handleInvalid='keep'``. This
exporter writes exactly what each fitted stage holds, as float64 JSON numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from headwater.serving.scoring import FORMAT, FORMAT_VERSION, SUPPORTED, ExportError


def _cols(stage: Any, many: str, one: str) -> list[str]:
    if stage.hasParam(many) and stage.isSet(stage.getParam(many)):
        return list(stage.getOrDefault(stage.getParam(many)))
    return [stage.getOrDefault(stage.getParam(one))]


def export_stage(stage: Any) -> dict[str, Any]:
    """Describe one fitted stage as a JSON-able dict."""
    kind = type(stage).__name__.removesuffix("Model")
    if kind == "StringIndexer":
        return {
            "type": kind,
            "inputCols": _cols(stage, "inputCols", "inputCol"),
            "outputCols": _cols(stage, "outputCols", "outputCol"),
            "labels": [list(labels) for labels in stage.labelsArray],
            "handleInvalid": stage.getHandleInvalid(),
        }
    if kind == "OneHotEncoder":
        return {
            "type": kind,
            "inputCols": _cols(stage, "inputCols", "inputCol"),
            "outputCols": _cols(stage, "outputCols", "outputCol"),
            "categorySizes": [int(n) for n in stage.categorySizes],
            "dropLast": bool(stage.getDropLast()),
            "handleInvalid": stage.getHandleInvalid(),
        }
    if kind == "VectorAssembler":
        return {
            "type": kind,
            "inputCols": list(stage.getInputCols()),
            "outputCol": stage.getOutputCol(),
        }
    if kind == "StandardScaler":
        return {
            "type": kind,
            "inputCol": stage.getInputCol(),
            "outputCol": stage.getOutputCol(),
            "withMean": bool(stage.getWithMean()),
            "withStd": bool(stage.getWithStd()),
            "mean": [float(x) for x in stage.mean.toArray()],
            "std": [float(x) for x in stage.std.toArray()],
        }
    if kind == "LogisticRegression":
        if stage.numClasses != 2:
            raise ExportError("only binary logistic regression can be exported")
        return {
            "type": kind,
            "featuresCol": stage.getFeaturesCol(),
            "coefficients": [float(x) for x in stage.coefficients.toArray()],
            "intercept": float(stage.intercept),
            "threshold": float(stage.getThreshold()),
        }
    if kind == "LinearRegression":
        return {
            "type": kind,
            "featuresCol": stage.getFeaturesCol(),
            "coefficients": [float(x) for x in stage.coefficients.toArray()],
            "intercept": float(stage.intercept),
        }
    raise ExportError(f"cannot export stage {kind!r} (supported: {', '.join(SUPPORTED)})")


def export_pipeline(model: Any, inputs: Sequence[str]) -> dict[str, Any]:
    """Describe a fitted ``PipelineModel`` whose raw input columns are ``inputs``."""
    return {"inputs": list(inputs), "stages": [export_stage(s) for s in model.stages]}


def export_document(
    pipelines: Mapping[str, dict[str, Any]], metadata: Mapping[str, Any]
) -> dict[str, Any]:
    """Wrap exported pipelines in the versioned document the scorer reads."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "metadata": dict(metadata),
        "pipelines": dict(pipelines),
    }
