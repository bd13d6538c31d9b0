"""The generated OpenAPI document against the app, its models and the OpenAPI 3.1 rules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from aiohttp import web
from openapi_schema_validator import OAS31Validator, oas31_format_checker
from openapi_spec_validator import validate as validate_spec
from pydantic import BaseModel

from admin.access import SCOPES, is_dashboard
from admin.app import create_app
from admin.exceptions import ValidationFailed
from admin.models import (
    BatchIn,
    CampaignIn,
    ConversionBatchIn,
    KeyIn,
    LinkIn,
    LinkPatch,
    SendBatchIn,
    UrlRules,
    WorkspaceIn,
    parse,
)
from admin.openapi import document
from admin.settings import AdminSettings
from redirector.store.keys import CODE_PATTERN
from tests.conftest import Client, openapi_document, schema_errors

# The request body of each operation, and the model that parses it in admin.api.
REQUEST_MODELS: dict[tuple[str, str], type[BaseModel]] = {
    ("post", "/api/campaigns"): CampaignIn,
    ("post", "/api/links"): LinkIn,
    ("post", "/api/links/batch"): BatchIn,
    ("patch", "/api/links/{code}"): LinkPatch,
    ("post", "/api/workspaces"): WorkspaceIn,
    ("post", "/api/workspaces/{workspace_id}/keys"): KeyIn,
    ("post", "/api/sends"): SendBatchIn,
    ("post", "/api/conversions"): ConversionBatchIn,
}

SETTINGS = AdminSettings(api_keys=("k" * 16,))
RULES = UrlRules(SETTINGS.max_url_length, SETTINGS.own_host)
SPEC = openapi_document()


def operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in SPEC["paths"].items():
        for method, operation in item.items():  # the document puts nothing else in a path
            yield method, path, operation


def test_every_route_is_documented_and_every_operation_exists() -> None:
    routes = {
        (route.method.lower(), route.resource.canonical)
        for route in create_app(SETTINGS).router.routes()
        if route.method != "HEAD"
        and route.resource is not None  # aiohttp adds HEAD to a GET
        and not is_dashboard(route.resource.canonical)  # HTML pages, not the API
    }
    assert {(method, path) for method, path, _ in operations()} == routes


async def test_the_served_document_is_the_generated_one(admin: Client) -> None:
    resp = await admin.get("/api/openapi.json")
    assert resp.status == 200
    assert await resp.json() == SPEC


def test_a_route_without_an_operation_stops_the_document() -> None:
    async def undocumented(request: web.Request) -> web.StreamResponse:
        raise AssertionError("never called")  # pragma: no cover

    app = create_app(SETTINGS)
    app.router.add_get("/api/secret", undocumented)
    with pytest.raises(LookupError, match="GET /api/secret"):
        document(app)


def test_is_a_valid_openapi_3_1_document() -> None:
    assert SPEC["openapi"] == "3.1.0"
    validate_spec(SPEC)
    for schema in SPEC["components"]["schemas"].values():
        OAS31Validator.check_schema(schema)
    # It is served with orjson, which refuses anything that is not plain JSON.
    assert orjson.loads(orjson.dumps(SPEC)) == SPEC


def test_api_operations_need_bearer_auth_and_a_scope_and_health_does_not() -> None:
    bearer = SPEC["components"]["securitySchemes"]["bearerAuth"]
    assert bearer == {"type": "http", "scheme": "bearer", "description": bearer["description"]}
    for method, path, operation in operations():
        security = operation.get("security", SPEC.get("security", []))
        if path == "/api/openapi.json":  # any key may read the document
            assert security == [{"bearerAuth": []}]
            assert "403" not in operation["responses"]
        elif path.startswith("/api/"):
            # Every other operation names the one scope it needs, and its 403.
            [[needed]] = [requirement["bearerAuth"] for requirement in security]
            assert needed in (*SCOPES, "root"), (method, path)
            assert operation["responses"]["403"] == {"$ref": "#/components/responses/Forbidden"}
        else:
            assert security == [], (method, path)
        if path.startswith("/api/"):
            assert "401" in operation["responses"], (method, path)
        # Any unexpected failure is the documented JSON error.
        assert operation["responses"]["500"] == {"$ref": "#/components/responses/Internal"}


def test_every_answer_to_a_key_documents_the_rate_limit_and_a_429_its_retry_after() -> None:
    limit_fields = {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy"}
    declared = SPEC["components"]["headers"]
    assert set(declared) == {*limit_fields, "Retry-After"}
    assert [name for name, field in declared.items() if field.get("required")] == ["Retry-After"]
    shared = SPEC["components"]["responses"]
    assert set(shared["RateLimited"]["headers"]) == {*limit_fields, "Retry-After"}
    assert "headers" not in shared["Unauthorized"]  # no key known
    for method, path, operation in operations():
        answers = operation["responses"]
        if not path.startswith("/api/"):
            assert "429" not in answers and all("headers" not in a for a in answers.values())
            continue
        assert answers["429"] == {"$ref": "#/components/responses/RateLimited"}, (method, path)
        assert answers["503"] == {"$ref": "#/components/responses/StorageUnavailable"}
        for status, answer in answers.items():
            if status.startswith("2"):
                assert set(answer["headers"]) == limit_fields, (method, path, status)


def test_operation_ids_are_present_and_unique() -> None:
    ids = [operation["operationId"] for _, _, operation in operations()]
    assert sorted(ids) == sorted(set(ids))


@pytest.mark.parametrize(("method", "path"), list(REQUEST_MODELS), ids=lambda k: str(k))
def test_request_bodies_use_the_models_that_parse_them_and_examples_pass_both(
    method: str, path: str
) -> None:
    with_body = {
        (verb, route) for verb, route, operation in operations() if "requestBody" in operation
    }
    assert with_body == set(REQUEST_MODELS)
    model = REQUEST_MODELS[method, path]
    media = SPEC["paths"][path][method]["requestBody"]["content"]["application/json"]
    assert media["schema"] == {"$ref": f"#/components/schemas/{model.__name__}"}
    assert media["example"]
    assert schema_errors(media["example"], model.__name__) == []
    parse(model, media["example"], RULES)


def _examples(node: Any) -> Iterator[tuple[Any, Any]]:
    """Every (example, schema) pair of the document's media type objects (which OpenAPI only
    ever puts in objects, never in lists)."""
    if isinstance(node, dict):
        if "example" in node and "schema" in node:
            yield node["example"], node["schema"]
        for value in node.values():
            yield from _examples(value)


def test_every_example_passes_its_schema() -> None:
    examples = list(_examples(SPEC))
    assert len(examples) >= len(REQUEST_MODELS) + 8  # request bodies, errors, the CSV
    for example, schema in examples:
        validator = OAS31Validator(
            {**schema, "components": SPEC["components"]}, format_checker=oas31_format_checker
        )
        assert [e.message for e in validator.iter_errors(example)] == [], example


def test_query_parameters_come_from_the_query_models() -> None:
    operation = SPEC["paths"]["/api/campaigns"]["get"]
    assert {p["name"]: p["schema"] for p in operation["parameters"]} == {
        "offset": {"type": "integer", "minimum": 0, "maximum": 2**31, "default": 0},
        "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
    }
    stats = SPEC["paths"]["/api/campaigns/{id}/stats"]["get"]["parameters"]
    assert [(p["name"], p["in"]) for p in stats] == [
        ("id", "path"),
        ("from", "query"),
        ("to", "query"),
        ("granularity", "query"),
    ]
    assert all(p["description"] for p in stats)


def test_custom_codes_follow_the_pattern_the_redirector_resolves() -> None:
    code = SPEC["components"]["schemas"]["BatchItem"]["properties"]["code"]
    assert {"type": "string", "pattern": CODE_PATTERN} in code["anyOf"]


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("CampaignIn", {"name": "x", "extra": 1}),
        ("CampaignIn", {"name": "x", "kind": "other"}),
        ("CampaignIn", {"name": ""}),
        ("CampaignIn", {"name": "a\nb"}),
        ("CampaignIn", {"name": "a\x85b"}),
        ("CampaignIn", {"name": "x", "utm_source": "s" * 129}),
        ("LinkIn", {"url": "https://a.example", "code": "ab"}),
        ("LinkIn", {"url": "https://a.example", "code": "a" * 65}),
        ("LinkIn", {"url": "https://a.example", "code": "no spaces"}),
        ("LinkIn", {"url": "https://a.example", "campaign_id": 0}),
        ("LinkIn", {"url": "https://a.example", "expires_at": 1767225599}),
        ("LinkIn", {"url": "https://a.example", "expires_at": "2099-12-31T23:59:59"}),
        ("LinkIn", {"recipient": "+34600000000"}),
        ("BatchIn", {"links": []}),
        ("BatchIn", {"links": [{"url": "https://a.example", "tag": False}]}),
        ("LinkPatch", {"disabled": "yes"}),
        ("LinkPatch", {"url": None}),
        ("LinkPatch", {"disabled": None}),
        ("WorkspaceIn", {"name": ""}),
        ("KeyIn", {"name": "k", "scopes": []}),
        ("KeyIn", {"name": "k", "scopes": ["links:admin"]}),
        ("KeyIn", {"name": "k", "scopes": ["links:read"], "expires_at": 1}),
    ],
)
def test_schemas_and_models_refuse_the_same_bodies(name: str, body: dict[str, Any]) -> None:
    """The rules that can be constraints are in the schema, not only in validators."""
    assert schema_errors(body, name) != []
    model = next(m for m in REQUEST_MODELS.values() if m.__name__ == name)
    with pytest.raises(ValidationFailed):
        parse(model, body, RULES)
