"""The OpenAPI 3.1 document of the admin API, generated at start-up: the paths from the routes
the app registers, each described by the `Operation` its handler is decorated with; the schemas
from the pydantic models (`admin.models`, `admin.responses`); the prose from `admin.apidoc`.

A route whose handler has no `Operation` stops the app at start-up, so none goes undocumented.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue
from pydantic_core import CoreSchema

from admin import apidoc
from admin.access import Access, is_dashboard, needs_key
from admin.responses import Error

JSON = "application/json"
REF = "#/components/schemas/{model}"
H = TypeVar("H", bound=Callable[[web.Request], Awaitable[web.StreamResponse]])


@dataclass(frozen=True)
class Operation:
    """What a handler takes and answers, beyond what its route says; `id` names its prose."""

    id: str
    tag: str
    response: Any = None  # the type of the JSON answer; None: no JSON body
    statuses: tuple[int, ...] = (200,)  # the statuses answered with `response`
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()  # beyond 401, 403, 500 and those of a body or query (`_errors`)
    media: str = JSON  # of the answer, when it is not JSON
    # The scope a key needs (or "root": a key of ADMIN_API_KEYS); None: any key, or none
    # outside /api/. The auth middleware checks it (admin.auth), so it is said once, here.
    access: Access | None = None

    def __call__(self, handler: H) -> H:
        # Kept on the handler, not in a registry: it lives exactly as long as the handler.
        setattr(handler, _ATTRIBUTE, self)
        return handler


_ATTRIBUTE = "openapi_operation"


def operation_of(handler: object) -> Operation | None:
    """The `Operation` a route's handler was declared with (None for aiohttp's own, such as
    the 404 of an unknown path)."""
    operation = getattr(handler, _ATTRIBUTE, None)
    return operation if isinstance(operation, Operation) else None


class _Schemas(GenerateJsonSchema):
    def field_title_should_be_set(self, schema: CoreSchema) -> bool:
        return False  # "title": "Utm Source" next to utm_source says nothing


def document(app: web.Application) -> dict[str, Any]:
    routes: list[tuple[str, str, Operation]] = []
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:  # aiohttp adds HEAD to every GET
            continue
        path = route.resource.canonical
        if is_dashboard(path):  # HTML pages, not the API
            continue
        operation = operation_of(route.handler)
        if operation is None:
            raise LookupError(f"{route.method} {path}: the handler has no @Operation(...)")
        routes.append((path, route.method.lower(), operation))
    refs, schemas = _schemas(operation for _, _, operation in routes)
    paths: dict[str, dict[str, Any]] = {}
    for path, method, operation in routes:
        paths.setdefault(path, {})[method] = _operation(operation, path, refs)
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": apidoc.INFO,
        "tags": apidoc.TAGS,
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": apidoc.BEARER_DESCRIPTION,
                }
            },
            "schemas": schemas,
            "headers": apidoc.HEADERS,
            "responses": {
                name: {
                    "description": description,
                    **_headers(status),
                    "content": {JSON: {"schema": refs[Error], "example": example}},
                }
                for status, (name, description, example) in apidoc.ERRORS.items()
            },
        },
    }


def _headers(status: int) -> dict[str, Any]:
    """The header fields of an answer to a known key: its rate limit's (absent with no limit);
    a 429 also has Retry-After. A 401 knows no key; a 500 may come from anywhere."""
    if status in (401, 500):
        return {}
    names = [*apidoc.RATE_LIMIT_HEADERS, *(["Retry-After"] if status == 429 else [])]
    return {"headers": {name: {"$ref": f"#/components/headers/{name}"} for name in names}}


def _schemas(operations: Iterable[Operation]) -> tuple[dict[Any, Any], dict[str, Any]]:
    """A `$ref` for each body and answer type with a name, and the schemas they point at."""
    types: dict[Any, None] = {Error: None}  # ordered, without repeats
    for operation in operations:
        types |= dict.fromkeys(t for t in (operation.body, operation.response) if t is not None)
    mode: JsonSchemaMode = "validation"
    named = [(t, mode, TypeAdapter(t)) for t in types if isinstance(t, type)]
    refs, definitions = TypeAdapter.json_schemas(named, ref_template=REF, schema_generator=_Schemas)
    return {key[0]: ref for key, ref in refs.items()}, definitions.get("$defs", {})


def _operation(operation: Operation, path: str, refs: dict[Any, Any]) -> dict[str, Any]:
    text = apidoc.OPERATIONS[operation.id]
    out: dict[str, Any] = {
        "operationId": operation.id,
        "tags": [operation.tag],
        "summary": text.summary,
        **({"description": text.description} if text.description else {}),
        "security": _security(operation, path),
    }
    if parameters := _parameters(operation, path):
        out["parameters"] = parameters
    if operation.body is not None:
        media = {"schema": refs[operation.body], "example": text.example}
        out["requestBody"] = {"required": True, "content": {JSON: media}}
    out["responses"] = _answers(operation, path, text, refs) | {
        str(status): {"$ref": f"#/components/responses/{apidoc.ERRORS[status][0]}"}
        for status in sorted(_errors(operation, path) - set(operation.statuses))
    }
    return out


def _security(operation: Operation, path: str) -> list[dict[str, list[str]]]:
    """The bearer key, and the scope it needs: OpenAPI 3.1 lets a requirement of a scheme
    other than OAuth list the roles it needs."""
    if not needs_key(path):
        return []
    return [{"bearerAuth": [] if operation.access is None else [operation.access]}]


def _answers(
    operation: Operation, path: str, text: apidoc.Text, refs: dict[Any, Any]
) -> dict[str, Any]:
    content: dict[str, Any] = {}
    if operation.response is not None:
        schema = refs.get(operation.response) or TypeAdapter(operation.response).json_schema()
        content = {JSON: {"schema": schema}}
    elif operation.media != JSON:
        example = {} if text.example is None else {"example": text.example}
        content = {operation.media: {"schema": {"type": "string"}, **example}}
    return {
        str(status): {
            "description": text.responses.get(status, HTTPStatus(status).phrase),
            **(_headers(status) if needs_key(path) else {}),
            **({"content": content} if content else {}),
        }
        for status in operation.statuses
    }


def _errors(operation: Operation, path: str) -> set[int]:
    """Every operation may fail (500); the auth middleware guards /api/ (401), limits the
    rate of each key (429; with Redis unreachable, 503: the count and keys other than root
    keys are read there), and refuses a key without the scope an operation needs (403); a
    body may be malformed, too large, of an unknown Content-Encoding or invalid (400, 413,
    415, 422), and so may a query (422)."""
    statuses = {500, *operation.errors}
    if needs_key(path):
        statuses |= {401, 429, 503}
    if operation.access is not None:
        statuses.add(403)
    if operation.body is not None:
        statuses |= {400, 413, 415, 422}
    if operation.query is not None:
        statuses.add(422)
    return statuses


def _parameters(operation: Operation, path: str) -> list[dict[str, Any]]:
    parameters = [
        {"name": name, "in": "path", "required": True, **apidoc.PATH_PARAMETERS[name]}
        for name in re.findall(r"{(\w+)}", path)
    ]
    if operation.query is not None:
        schema = operation.query.model_json_schema(by_alias=True, schema_generator=_Schemas)
        for name, field in schema["properties"].items():
            description = field.pop("description")
            parameters.append(
                {"name": name, "in": "query", "description": description, "schema": _plain(field)}
            )
    return parameters


def _plain(schema: JsonSchemaValue) -> JsonSchemaValue:
    """A parameter's schema without the null of an optional field: a query value is a string
    or absent, never null."""
    if "anyOf" not in schema:
        return schema
    [value] = [option for option in schema["anyOf"] if option != {"type": "null"}]
    rest = {k: v for k, v in schema.items() if k != "anyOf" and v is not None}
    return {**value, **rest}
