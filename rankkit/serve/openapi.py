"""The OpenAPI schema says what the server does: the limits set by its flags (max k, query
length, list sizes, the visible-text pattern), the error responses each operation can give
(400, 401, 408, 413, 415, 422, 431, 503, all the JSON error body) and the API key as a security
scheme, so a client generated from it (or schemathesis) meets no undocumented behaviour."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from rankkit.serve.config import ServeConfig
from rankkit.serve.schemas import ErrorResponse
from rankkit.serve.text import VISIBLE_PATTERN

API_KEY_SCHEME = {
    "ApiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "Required on every endpoint but /health, /docs and /openapi.json "
        "when the server was started with --api-key (or RANKKIT_API_KEY).",
    }
}
ERRORS = {
    400: "Malformed JSON, or a mode or reranker this server did not load.",
    401: "Missing or wrong X-API-Key.",
    408: "The body did not arrive within the server's --client-timeout.",
    413: "Body over the server's --max-body-bytes.",
    415: "Content-Type is not application/json.",
    422: "A field is missing, of the wrong type or out of range.",
    431: "More request headers than the server's --max-headers.",
    503: "Still loading, at capacity (with Retry-After), or shutting down.",
}
ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}


def _limits(config: ServeConfig) -> dict[str, dict[str, dict[str, Any]]]:
    """Per schema, per property: the constraints the server enforces."""
    query = {"minLength": 1, "maxLength": config.max_query_chars, "pattern": VISIBLE_PATTERN}
    k = {"minimum": 1, "maximum": config.max_k}
    mode = {"mode": {"enum": [*config.modes, None]}} if config.modes else {}  # this server's modes, or none
    return {
        "SearchRequest": {
            "query": query,
            "k": k,
            "rerank_depth": {"minimum": 1, "maximum": config.max_passages},
            **mode,
        },
        "BatchSearchRequest": {
            "queries": {"minItems": 1, "maxItems": config.max_batch_queries, "items": query},
            "k": k,
            **mode,
        },
        "RerankRequest": {"query": query, "passages": {"minItems": 1, "maxItems": config.max_passages}},
        "SentimentRequest": {"texts": {"minItems": 1, "maxItems": config.max_batch_queries, "items": query}},
    }


def _error_codes(path: str, method: str, config: ServeConfig) -> list[int]:
    codes = [503]
    if method == "post":
        codes += [400, 408, 413, 415, 422]
    if config.api_key and path != "/health":
        codes.append(401)
    return codes + [431]


def build_schema(app: FastAPI, config: ServeConfig) -> dict[str, Any]:
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["ErrorResponse"] = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(schemas["ErrorResponse"].pop("$defs", {}))
    for name, properties in _limits(config).items():
        if name not in schemas:  # /sentiment exists only with --sentiment-model
            continue
        for field, constraints in properties.items():
            target = schemas[name]["properties"][field]
            for key, value in constraints.items():
                if key == "items":
                    target["items"] = {**target.get("items", {}), **value}
                else:
                    target[key] = value
    if config.api_key:
        components["securitySchemes"] = API_KEY_SCHEME
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for code in _error_codes(path, method, config):
                if str(code) not in responses or code == 422:  # replaces FastAPI's validation schema
                    responses[str(code)] = {
                        "description": ERRORS[code],
                        "content": {"application/json": {"schema": ERROR_REF}},
                    }
            if config.api_key and path != "/health":
                operation["security"] = [{"ApiKey": []}]
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    return schema


def document_api(app: FastAPI, config: ServeConfig) -> None:
    """Serve build_schema's schema at /openapi.json (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_schema(app, config)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
