"""The OpenAPI 3.1 document of the API, and a plain HTML page rendered from it.

Built from the same constants as the code (field names and expectations, weather
variables, the configured batch limit); the tests check every route is documented,
every documented route exists, and real responses validate against these schemas.
"""

from __future__ import annotations

import html
import json
from typing import Any

from headwater.usecases.flights.features import WEATHER
from headwater.usecases.flights.prediction_requests import (
    EXPECTED,
    MAX_YEAR,
    MIN_YEAR,
    OPTIONAL,
    REQUIRED,
)

VERSION = "1.0.0"

EXAMPLE_FLIGHT = {
    "carrier": "UA",
    "flight": 1545,
    "origin": "EWR",
    "dest": "IAH",
    "scheduled_departure": "2013-11-04T17:15",
    "tailnum": "N14228",
    "weather": {"temp_f": 41.0, "wind_speed_mph": 12.7, "precip_in": 0.0},
}

_NULLABLE_NUMBER = {"type": ["number", "null"]}
_STRINGS = {"type": "array", "items": {"type": "string"}}


def _flight_schema() -> dict[str, Any]:
    properties: dict[str, Any] = {
        "carrier": {"type": "string", "pattern": "^[A-Za-z0-9]{2}$"},
        "flight": {"type": "integer", "minimum": 1, "maximum": 9999},
        "origin": {"type": "string", "pattern": "^[A-Za-z]{3}$"},
        "dest": {"type": "string", "pattern": "^[A-Za-z]{3}$"},
        "scheduled_departure": {"type": "string", "examples": ["2013-11-04T17:15"]},
        "tailnum": {"type": ["string", "null"], "pattern": "^[A-Za-z0-9-]{1,10}$"},
        "weather": {
            "type": ["object", "null"],
            "additionalProperties": False,
            "properties": {name: _NULLABLE_NUMBER for name in WEATHER},
        },
    }
    for name, schema in properties.items():
        schema["description"] = EXPECTED[name][0].upper() + EXPECTED[name][1:] + "."
    return {
        "type": "object",
        "description": (
            "One flight. Codes are case-insensitive. A well-formed code the model never "
            "saw in training is scored (as Spark scores it, handleInvalid='keep') and "
            "listed in the prediction's `unseen`; inputs not given (tail number, weather) "
            "and lookups the model has no entry for are filled from the model version's "
            "lookups and listed in `defaulted`."
        ),
        "required": list(REQUIRED),
        "additionalProperties": False,
        "properties": {name: properties[name] for name in (*REQUIRED, *OPTIONAL)},
    }


_PREDICTION = {
    "type": "object",
    "required": [
        "flight",
        "delay_probability",
        "delayed",
        "threshold",
        "expected_arrival_delay_minutes",
        "defaulted",
        "unseen",
        "model",
    ],
    "properties": {
        "flight": {
            "type": "object",
            "description": "The flight as understood (codes upper-cased).",
            "required": ["carrier", "flight", "origin", "dest", "scheduled_departure"],
            "properties": {
                "carrier": {"type": "string"},
                "flight": {"type": "integer"},
                "origin": {"type": "string"},
                "dest": {"type": "string"},
                "scheduled_departure": {"type": "string"},
            },
        },
        "delay_probability": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "description": "Probability of a departure delay of 15 minutes or more.",
        },
        "delayed": {
            "type": "boolean",
            "description": "The decision: delay_probability above the model's threshold.",
        },
        "threshold": {"type": "number"},
        "expected_arrival_delay_minutes": {
            "type": "number",
            "description": "Expected arrival delay (negative: early).",
        },
        "defaulted": {
            "type": "array",
            "items": {"enum": ["distance", "aircraft", "weather", "congestion"]},
            "description": (
                "Inputs taken from the model's defaults: distance (route unknown), aircraft "
                "(tail number absent or unknown), weather (a variable not given), congestion "
                "(no schedule known for that day and hour: the typical one is used)."
            ),
        },
        "unseen": {
            "type": "array",
            "items": {"enum": ["carrier", "origin", "dest", "dep_hour", "weekday"]},
            "description": "Categorical features whose value the model never saw in training.",
        },
        "model": {"$ref": "#/components/schemas/ModelRef"},
    },
}

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
        "name": {"type": "string"},
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
            "description": "Carriers and airports seen in training (others are `unseen`).",
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
    "required": ["status", "model_loaded", "model"],
    "properties": {
        "status": {"const": "ok"},
        "model_loaded": {"type": "boolean"},
        "model": {"oneOf": [{"$ref": "#/components/schemas/ModelRef"}, {"type": "null"}]},
        "stage": {"type": "string"},
        "pointer_checked_at": {"type": ["string", "null"]},
        "error": {"type": ["string", "null"], "description": "The last failed load, if any."},
        "message": {"type": ["string", "null"]},
    },
}


def _json(schema: str, example: Any = None) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": {"$ref": f"#/components/schemas/{schema}"}}
    if example is not None:
        content["example"] = example
    return {"application/json": content}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": _json("Error")}


def openapi_document(max_batch: int) -> dict[str, Any]:
    """The OpenAPI 3.1 document, with this deployment's batch limit."""
    batch_request = {
        "type": "object",
        "required": ["instances"],
        "additionalProperties": False,
        "properties": {
            "instances": {
                "type": "array",
                "minItems": 1,
                "maxItems": max_batch,
                "items": {"$ref": "#/components/schemas/Flight"},
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Headwater flight delay API",
            "version": VERSION,
            "description": (
                "Predicts whether a flight will leave 15 minutes late or more, and its expected "
                "arrival delay, with the model version in production. Every error is JSON: "
                '`{"error": {"status", "code", "message", "problems"?}}`.'
            ),
        },
        "paths": {
            "/v1/predictions": {
                "post": {
                    "operationId": "createPredictions",
                    "summary": f"Score one flight, or a batch of up to {max_batch}",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {"$ref": "#/components/schemas/Flight"},
                                        {"$ref": "#/components/schemas/BatchRequest"},
                                    ]
                                },
                                "examples": {
                                    "one": {"value": EXAMPLE_FLIGHT},
                                    "batch": {"value": {"instances": [EXAMPLE_FLIGHT]}},
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
                                            {"$ref": "#/components/schemas/Prediction"},
                                            {"$ref": "#/components/schemas/BatchResponse"},
                                        ]
                                    }
                                }
                            },
                        },
                        "400": _error(
                            "Malformed JSON, or invalid fields (each one in "
                            "`problems`, with what was expected)."
                        ),
                        "413": _error(
                            f"More than {max_batch} instances, or a body over the size limit."
                        ),
                        "415": _error("The Content-Type is not application/json."),
                        "503": _error(
                            "No model is promoted to production yet, or it cannot be loaded."
                        ),
                    },
                }
            },
            "/v1/model": {
                "get": {
                    "operationId": "getModel",
                    "summary": "The serving model: version, training date, holdout metrics, "
                    "lineage, features",
                    "responses": {
                        "200": {
                            "description": "The model in service.",
                            "content": _json("ModelInfo"),
                        },
                        "503": _error("No model is loaded."),
                    },
                }
            },
            "/health": {
                "get": {
                    "operationId": "getHealth",
                    "summary": "Liveness, and whether (and which) model is loaded",
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
                    "responses": {
                        "200": {"description": "HTML page.", "content": {"text/html": {}}}
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "Flight": _flight_schema(),
                "BatchRequest": batch_request,
                "Prediction": _PREDICTION,
                "BatchResponse": {
                    "type": "object",
                    "required": ["predictions"],
                    "properties": {
                        "predictions": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Prediction"},
                        }
                    },
                },
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
        "x-limits": {
            "max_batch": max_batch,
            "scheduled_departure_years": [MIN_YEAR, MAX_YEAR],
        },
    }


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
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                for name, example in body.get("examples", {}).items():
                    text = json.dumps(example["value"], indent=2)
                    parts.append(f"<p>Example ({esc(name)}):</p><pre>{esc(text)}</pre>")
            rows = "".join(
                f"<tr><td>{esc(code)}</td><td>{esc(response['description'])}</td></tr>"
                for code, response in operation["responses"].items()
            )
            parts.append(f"<table><tr><th>Status</th><th>Meaning</th></tr>{rows}</table>")
    flight = document["components"]["schemas"]["Flight"]
    parts.append("<h2>Flight fields</h2>")
    parts.append(f"<p>{esc(flight['description'])}</p><table>")
    parts.append("<tr><th>Field</th><th>Required</th><th>Expected</th></tr>")
    for name, schema in flight["properties"].items():
        required = "yes" if name in flight["required"] else "no"
        parts.append(
            f"<tr><td><code>{esc(name)}</code></td><td>{required}</td>"
            f"<td>{esc(schema['description'])}</td></tr>"
        )
    parts.append("</table></body></html>")
    return "".join(parts)
