"""The OpenAPI 3.1 document of the API (every served use case), and an HTML page from it.

Every schema is generated from a pydantic model, declared once beside the code that
builds what it describes: each use case's request model and, from its answer keys, its
prediction models (:mod:`headwater.serving.predictor`), the model info, health
(:mod:`api.blueprints.health`) and error (:mod:`api.errors`) bodies. Nothing about a
use case is written here.

A use case's components are named ``<use case>.<Model>`` and titled ``<UseCase><Model>``
(``trips.Weather``: ``TripsWeather``), so that two use cases declaring a model of the same
name stay two schemas for client generators, which name classes by title; a model the
shared components already hold (``ModelRef``) is referenced, not repeated. The tests check
every route is documented, every documented route exists, and real answers validate.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from api.blueprints.health import Health
from api.errors import Error
from headwater.core.usecase import UseCase
from headwater.serving.predictor import ModelInfo, batch_prediction_model, prediction_model

VERSION = "2.0.0"
REF = "#/components/schemas/"

#: The components every document has: the answers of the routes no use case shapes.
SHARED: Mapping[str, tuple[type[BaseModel], JsonSchemaMode]] = {
    "ModelInfo": (ModelInfo, "serialization"),
    "Health": (Health, "serialization"),
    "Error": (Error, "serialization"),
}


def _pascal(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", name))


def _with_refs(node: Any, renamed: Mapping[str, str]) -> Any:
    """``node`` with every ``$ref`` renamed (a copy)."""
    if isinstance(node, dict):
        return {
            key: renamed.get(value, value) if key == "$ref" else _with_refs(value, renamed)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_with_refs(value, renamed) for value in node]
    return node


def component_schemas(
    models: Mapping[str, tuple[type[BaseModel], JsonSchemaMode]],
    usecase: str | None = None,
    shared: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON schemas of ``models`` and of every model they nest, as OpenAPI components.

    ``models`` are named by their keys, nested models by their class names; with a
    ``usecase``, each is named ``<use case>.<name>`` and titled ``<UseCase><Name>``, except
    a nested model identical to one of the ``shared`` components, which is referenced there.
    """
    prefix, title = (f"{usecase}.", _pascal(usecase)) if usecase else ("", "")
    shared = shared or {}
    pairs = list(models.values())
    refs, document = models_json_schema(pairs, ref_template=f"{REF}{{model}}")
    defs = document.get("$defs", {})
    given = {
        refs[pair]["$ref"].removeprefix(REF): name for name, pair in zip(models, pairs, strict=True)
    }
    names = {
        found: found if shared.get(found) == schema else f"{prefix}{given.get(found, found)}"
        for found, schema in defs.items()
    }
    renamed = {f"{REF}{found}": f"{REF}{name}" for found, name in names.items()}
    return {
        names[found]: {**_with_refs(schema, renamed), "title": f"{title}{given.get(found, found)}"}
        for found, schema in defs.items()
        if names[found] not in shared
    }


def batch_request_model(usecase: UseCase, max_batch: int) -> type[BaseModel]:
    """A batch of the use case's requests, up to this deployment's limit."""
    return create_model(  # type: ignore[call-overload, no-any-return]
        "BatchRequest",
        __config__=ConfigDict(extra="forbid"),
        __doc__=f"Up to {max_batch} instances to score: {usecase.title}",
        instances=(
            list[usecase.serving.request_model],  # type: ignore[name-defined]
            Field(min_length=1, max_length=max_batch),
        ),
    )


def usecase_schemas(
    usecase: UseCase, max_batch: int, shared: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The components of one use case: its requests and answers, named ``<use case>.<Model>``."""
    models: dict[str, tuple[type[BaseModel], JsonSchemaMode]] = {
        "Request": (usecase.serving.request_model, "validation"),
        "BatchRequest": (batch_request_model(usecase, max_batch), "validation"),
        "Prediction": (prediction_model(usecase), "serialization"),
        "BatchResponse": (batch_prediction_model(usecase), "serialization"),
    }
    return component_schemas(models, usecase.name, shared)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: str, example: Any = None) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": _ref(schema)}
    if example is not None:
        content["example"] = example
    return {"application/json": content}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": _json("Error")}


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


def openapi_document(usecases: Mapping[str, UseCase], max_batch: int) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the served use cases, with this deployment's batch limit."""
    paths: dict[str, Any] = {}
    schemas = component_schemas(SHARED)
    for usecase in usecases.values():
        paths.update(_paths(usecase, max_batch))
        schemas.update(usecase_schemas(usecase, max_batch, schemas))
    _check_titles(schemas)
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
        "components": {"schemas": schemas},
        "x-limits": {"max_batch": max_batch},
    }


def _check_titles(schemas: Mapping[str, Any]) -> None:
    """Refuse two components of one title: client generators name a class by its title."""
    seen: dict[str, str] = {}
    for name, schema in schemas.items():
        title = schema.get("title", name)
        if title in seen:
            raise ValueError(f"components {seen[title]} and {name} are both titled {title!r}")
        seen[title] = name


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
