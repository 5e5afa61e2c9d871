"""The OpenAPI 3.1 document of the API (every served use case), and an HTML page from it.

Request schemas come from each use case's pydantic request model
(``model_json_schema``), answer schemas from its answer keys and the names of its
label and target: nothing about a use case is written here. The tests check every
route is documented, every documented route exists, and real answers validate.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from typing import Any

from headwater.core.usecase import UseCase

VERSION = "2.0.0"

_STRINGS = {"type": "array", "items": {"type": "string"}}

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["status", "code", "message"],
            "properties": {
                "status": {"type": "integer"},
                "code": {"type": "string"},
                "message": {"type": "string"},
                "problems": {
                    "type": "array",
                    "description": "Each problem with the input: where, what, what was expected.",
                    "items": {
                        "type": "object",
                        "required": ["field", "message", "expected"],
                        "properties": {
                            "field": {"type": "string", "examples": ["instances[3].origin"]},
                            "message": {"type": "string"},
                            "expected": {"type": "string"},
                        },
                    },
                },
            },
        }
    },
}

_MODEL_INFO = {
    "type": "object",
    "required": ["name", "version", "trained_at", "threshold", "features", "metrics", "lineage"],
    "properties": {
        "name": {"type": "string", "description": "The use case (the model's name)."},
        "title": {"type": "string"},
        "version": {"type": "string"},
        "promoted_at": {"type": ["string", "null"]},
        "trained_at": {"type": ["string", "null"]},
        "loaded_at": {"type": "string"},
        "threshold": {"type": "number"},
        "label": {"type": ["string", "null"]},
        "target": {"type": ["string", "null"]},
        "features": _STRINGS,
        "categories": {
            "type": "object",
            "description": "Values seen in training of the listed categorical inputs "
            "(others are `unseen`).",
            "additionalProperties": _STRINGS,
        },
        "metrics": {
            "type": "object",
            "description": "Holdout metrics of the training run (metrics.json).",
            "properties": {
                "holdout_from": {"type": ["string", "null"]},
                "train_rows": {"type": ["integer", "null"]},
                "holdout": {"type": ["object", "null"]},
                "regression": {"type": ["object", "null"]},
                "baselines": {"type": ["object", "null"]},
            },
        },
        "lineage": {"type": ["object", "null"], "description": "Summary of lineage.json."},
    },
}

_HEALTH = {
    "type": "object",
    "required": ["status", "stage", "models"],
    "properties": {
        "status": {
            "enum": ["ok", "degraded"],
            "description": "degraded: a production pointer names a version that cannot be loaded.",
        },
        "stage": {"type": "string"},
        "models": {
            "type": "object",
            "description": "One entry per served use case.",
            "additionalProperties": {
                "type": "object",
                "required": ["loaded", "model", "error"],
                "properties": {
                    "loaded": {"type": "boolean"},
                    "model": {
                        "oneOf": [{"$ref": "#/components/schemas/ModelRef"}, {"type": "null"}]
                    },
                    "production": {
                        "type": ["string", "null"],
                        "description": "The version the production pointer names.",
                    },
                    "pointer_checked_at": {"type": ["string", "null"]},
                    "error": {
                        "type": ["string", "null"],
                        "description": "The last failed load, if any.",
                    },
                    "message": {"type": ["string", "null"]},
                },
            },
        },
        "capture": {
            "type": "object",
            "description": "This process's prediction capture: counters since it started.",
            "required": ["enabled"],
            "properties": {
                "enabled": {"type": "boolean"},
                "sink": {"enum": ["spool", "log", "firehose"]},
                "sample_rate": {"type": "number"},
                "process": {"type": "integer"},
                **{
                    name: {"type": "integer", "minimum": 0}
                    for name in ("offered", "sampled_out", "dropped", "written", "failed", "queued")
                },
            },
        },
    },
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: str, example: Any = None) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": _ref(schema)}
    if example is not None:
        content["example"] = example
    return {"application/json": content}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": _json("Error")}


def request_schemas(usecase: UseCase) -> dict[str, Any]:
    """The request model's JSON schema and its nested models, named ``<use case>.<Model>``."""
    prefix = f"{usecase.name}."
    schema = usecase.serving.request_model.model_json_schema(
        ref_template=f"#/components/schemas/{prefix}{{model}}"
    )
    nested = schema.pop("$defs", {})
    return {f"{prefix}Request": schema, **{f"{prefix}{k}": v for k, v in nested.items()}}


def prediction_schema(usecase: UseCase) -> dict[str, Any]:
    """One answer of the use case, from its answer keys and its label's and target's names."""
    answer, training = usecase.serving.answer, usecase.training
    label, target = training.label, training.target
    unit = f" ({target.unit})" if target.unit else ""
    return {
        "type": "object",
        "required": [
            answer.echo,
            answer.probability,
            answer.decision,
            "threshold",
            answer.estimate,
            "defaulted",
            "unseen",
            "model",
        ],
        "properties": {
            answer.echo: {"type": "object", "description": "The instance as understood."},
            answer.probability: {
                "type": "number",
                "minimum": 0,
                "maximum": 1,
                "description": f"Probability of: {label.name}.",
            },
            answer.decision: {
                "type": "boolean",
                "description": f"The decision: {answer.probability} above the threshold.",
            },
            "threshold": {"type": "number"},
            answer.estimate: {"type": "number", "description": f"Expected {target.name}{unit}."},
            "defaulted": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Inputs taken from the model version's defaults (not given, "
                "or not in its lookups).",
            },
            "unseen": {
                "type": "array",
                "items": {"enum": list(training.categorical)},
                "description": "Categorical features whose value the model never saw in "
                "training (scored as Spark scores them).",
            },
            "model": _ref("ModelRef"),
        },
    }


def _paths(usecase: UseCase, max_batch: int) -> dict[str, Any]:
    name, spec = usecase.name, usecase.serving
    prefix = f"{name}."
    example = dict(spec.example)
    return {
        f"/v1/{name}/predictions": {
            "post": {
                "operationId": f"{name}_createPredictions",
                "tags": [name],
                "summary": f"{usecase.title}: score one instance, or a batch of up to {max_batch}",
                "description": spec.description,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "oneOf": [_ref(f"{prefix}Request"), _ref(f"{prefix}BatchRequest")]
                            },
                            "examples": {
                                "one": {"value": example},
                                "batch": {"value": {"instances": [example]}},
                            },
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": 'One prediction, or `{"predictions": [...]}` in '
                        "the order of the instances.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        _ref(f"{prefix}Prediction"),
                                        _ref(f"{prefix}BatchResponse"),
                                    ]
                                }
                            }
                        },
                    },
                    "400": _error(
                        "Malformed JSON, a body that cannot be read as sent (broken chunked "
                        "framing), invalid fields (each one in `problems`, with what was "
                        f"expected), or more than {max_batch} instances (`batch_too_large`)."
                    ),
                    "413": _error("A body over the size limit (with or without Content-Length)."),
                    "415": _error("The Content-Type is not application/json."),
                    "422": _error("The model gives no finite answer for an instance."),
                    "503": _error("No model is promoted yet, or it cannot be loaded."),
                },
            }
        },
        f"/v1/{name}/model": {
            "get": {
                "operationId": f"{name}_getModel",
                "tags": [name],
                "summary": f"{usecase.title}: the serving model (version, training date, holdout "
                "metrics, lineage, features)",
                "responses": {
                    "200": {"description": "The model in service.", "content": _json("ModelInfo")},
                    "503": _error("No model is loaded."),
                },
            }
        },
    }


def _schemas(usecase: UseCase, max_batch: int) -> dict[str, Any]:
    prefix = f"{usecase.name}."
    return {
        **request_schemas(usecase),
        f"{prefix}BatchRequest": {
            "type": "object",
            "required": ["instances"],
            "additionalProperties": False,
            "properties": {
                "instances": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": max_batch,
                    "items": _ref(f"{prefix}Request"),
                }
            },
        },
        f"{prefix}Prediction": prediction_schema(usecase),
        f"{prefix}BatchResponse": {
            "type": "object",
            "required": ["predictions"],
            "properties": {"predictions": {"type": "array", "items": _ref(f"{prefix}Prediction")}},
        },
    }


def openapi_document(usecases: Mapping[str, UseCase], max_batch: int) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the served use cases, with this deployment's batch limit."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for usecase in usecases.values():
        paths.update(_paths(usecase, max_batch))
        schemas.update(_schemas(usecase, max_batch))
    paths |= {
        "/health": {
            "get": {
                "operationId": "getHealth",
                "summary": "Liveness, and per use case whether (and which) model is loaded",
                "responses": {
                    "200": {"description": "The process is alive.", "content": _json("Health")}
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1 document.",
                        "content": {"application/json": {}},
                    }
                },
            }
        },
        "/docs": {
            "get": {
                "operationId": "getDocs",
                "summary": "This document as a web page",
                "responses": {"200": {"description": "HTML page.", "content": {"text/html": {}}}},
            }
        },
    }
    listed = "; ".join(f"`{u.name}`: {u.title}" for u in usecases.values()) or "none"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Headwater prediction API",
            "version": VERSION,
            "description": (
                f"Predictions of the model in production for each use case ({listed}). "
                "Every error is JSON: "
                '`{"error": {"status", "code", "message", "problems"?}}`; an unknown use case '
                "in the path is a 404 naming the known ones."
            ),
        },
        "tags": [{"name": u.name, "description": u.title} for u in usecases.values()],
        "paths": paths,
        "components": {
            "schemas": {
                **schemas,
                "ModelRef": {
                    "type": "object",
                    "required": ["name", "version"],
                    "properties": {"name": {"type": "string"}, "version": {"type": "string"}},
                },
                "ModelInfo": _MODEL_INFO,
                "Health": _HEALTH,
                "Error": _ERROR,
            }
        },
        "x-limits": {"max_batch": max_batch},
    }


def _fields_table(document: dict[str, Any], name: str) -> list[str]:
    schemas = document["components"]["schemas"]
    schema = schemas[name]
    parts = [f"<p>{html.escape(schema.get('description', ''))}</p><table>"]
    parts.append("<tr><th>Field</th><th>Required</th><th>Expected</th></tr>")
    for field, body in schema["properties"].items():
        required = "yes" if field in schema.get("required", ()) else "no"
        parts.append(
            f"<tr><td><code>{html.escape(field)}</code></td><td>{required}</td>"
            f"<td>{html.escape(body.get('description', ''))}</td></tr>"
        )
    parts.append("</table>")
    return parts


def docs_page(document: dict[str, Any]) -> str:
    """A self-contained HTML page describing the API (no scripts, nothing fetched)."""
    esc = html.escape
    info = document["info"]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{esc(info['title'])}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;"
        "padding:0 1rem;line-height:1.45}code,pre{background:#f4f4f4;padding:.1rem .3rem}"
        "pre{padding:.6rem;overflow:auto}h2{border-top:1px solid #ddd;padding-top:1rem}"
        "table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.3rem .5rem;"
        "text-align:left;vertical-align:top}</style></head><body>",
        f"<h1>{esc(info['title'])} <small>{esc(info['version'])}</small></h1>",
        f"<p>{esc(info['description'])}</p>",
        "<p>Machine-readable: <a href='openapi.json'>openapi.json</a>.</p>",
    ]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            parts.append(f"<h2><code>{method.upper()} {esc(path)}</code></h2>")
            parts.append(f"<p>{esc(operation['summary'])}</p>")
            if operation.get("description"):
                parts.append(f"<p>{esc(operation['description'])}</p>")
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                request = body["schema"]["oneOf"][0]["$ref"].rsplit("/", 1)[1]
                parts.extend(_fields_table(document, request))
                for name, example in body.get("examples", {}).items():
                    text = json.dumps(example["value"], indent=2)
                    parts.append(f"<p>Example ({esc(name)}):</p><pre>{esc(text)}</pre>")
            rows = "".join(
                f"<tr><td>{esc(code)}</td><td>{esc(response['description'])}</td></tr>"
                for code, response in operation["responses"].items()
            )
            parts.append(f"<table><tr><th>Status</th><th>Meaning</th></tr>{rows}</table>")
    parts.append("</body></html>")
    return "".join(parts)
