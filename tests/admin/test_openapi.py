"""The OpenAPI document against the app and the models it describes (no Redis needed)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from openapi_schema_validator import OAS31Validator, oas31_format_checker
from openapi_spec_validator import validate as validate_spec

from admin.app import create_app
from admin.exceptions import ValidationFailed
from admin.models import (
    BatchIn,
    BatchItem,
    CampaignIn,
    LinkIn,
    LinkPatch,
    UrlRules,
    _Body,
    parse,
)
from admin.openapi import SPEC
from admin.settings import AdminSettings

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}

# The request body of each operation, and the model that parses it in admin.api.
REQUEST_MODELS: dict[tuple[str, str], type[_Body]] = {
    ("post", "/api/campaigns"): CampaignIn,
    ("post", "/api/links"): LinkIn,
    ("post", "/api/links/batch"): BatchIn,
    ("patch", "/api/links/{code}"): LinkPatch,
}
# Every model that is a request schema of its own name.
SCHEMA_MODELS: list[type[_Body]] = [CampaignIn, LinkIn, BatchIn, BatchItem, LinkPatch]

SETTINGS = AdminSettings(api_keys=("k" * 16,))
RULES = UrlRules(SETTINGS.max_url_length, SETTINGS.own_host)


def app_routes() -> set[tuple[str, str]]:
    app = create_app(SETTINGS)
    routes = set()
    for route in app.router.routes():
        if route.method == "HEAD":  # aiohttp adds HEAD to every GET
            continue
        assert route.resource is not None
        routes.add((route.method.lower(), route.resource.canonical))
    return routes


def operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in SPEC["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield method, path, operation


def schema_of(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = SPEC["components"]["schemas"][name]
    return schema


def schema_errors(instance: Any, name: str) -> list[str]:
    """Why `instance` breaks a component schema, its `$ref`s resolved within the document."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": SPEC["components"]}
    validator = OAS31Validator(schema, format_checker=oas31_format_checker)
    return [error.message for error in validator.iter_errors(instance)]


def test_every_route_is_documented_and_every_operation_exists() -> None:
    documented = {(method, path) for method, path, _ in operations()}
    assert documented == app_routes()


def test_is_a_valid_openapi_3_1_document() -> None:
    assert SPEC["openapi"] == "3.1.0"
    validate_spec(SPEC)
    for schema in SPEC["components"]["schemas"].values():
        OAS31Validator.check_schema(schema)
    # It is served with orjson, which refuses anything that is not plain JSON.
    assert orjson.loads(orjson.dumps(SPEC)) == SPEC


def test_api_operations_need_bearer_auth_and_health_does_not() -> None:
    assert SPEC["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": SPEC["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    for method, path, operation in operations():
        security = operation.get("security", SPEC.get("security", []))
        if path.startswith("/api/"):
            assert security == [{"bearerAuth": []}], (method, path)
            assert "401" in operation["responses"], (method, path)
        else:
            assert security == [], (method, path)


def test_operation_ids_are_present_and_unique() -> None:
    ids = Counter(operation.get("operationId") for _, _, operation in operations())
    assert None not in ids
    assert [i for i, n in ids.items() if n > 1] == []


def test_request_bodies_use_the_models_schemas() -> None:
    bodies = {
        (method, path): operation["requestBody"]["content"]["application/json"]["schema"]
        for method, path, operation in operations()
        if "requestBody" in operation
    }
    assert bodies == {
        key: {"$ref": f"#/components/schemas/{model.__name__}"}
        for key, model in REQUEST_MODELS.items()
    }


@pytest.mark.parametrize("model", SCHEMA_MODELS, ids=lambda m: m.__name__)
def test_request_schema_matches_model_fields(model: type[_Body]) -> None:
    schema = schema_of(model.__name__)
    assert set(schema["properties"]) == set(model.model_fields)
    required = {name for name, field in model.model_fields.items() if field.is_required()}
    assert set(schema.get("required", [])) == required
    assert schema["additionalProperties"] is False  # the models forbid extra fields


@pytest.mark.parametrize(("method", "path"), list(REQUEST_MODELS), ids=lambda k: str(k))
def test_request_examples_pass_schema_and_model(method: str, path: str) -> None:
    model = REQUEST_MODELS[method, path]
    media = SPEC["paths"][path][method]["requestBody"]["content"]["application/json"]
    assert media["examples"]
    for example in media["examples"].values():
        assert schema_errors(example["value"], model.__name__) == []
        parse(model, example["value"], RULES)


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("CampaignIn", {"name": "x", "extra": 1}),
        ("CampaignIn", {"name": "x", "kind": "other"}),
        ("CampaignIn", {"name": ""}),
        ("CampaignIn", {"name": "a\nb"}),
        ("LinkIn", {"url": "https://a.example", "code": "ab"}),
        ("LinkIn", {"url": "https://a.example", "code": "no spaces"}),
        ("LinkIn", {"url": "https://a.example", "campaign_id": 0}),
        ("LinkIn", {"url": "https://a.example", "expires_at": 1767225599}),
        ("LinkIn", {"url": "https://a.example", "expires_at": "2099-12-31T23:59:59"}),
        ("LinkIn", {"recipient": "+34600000000"}),
        ("BatchIn", {"links": []}),
        ("BatchIn", {"links": [{"url": "https://a.example", "tag": False}]}),
        ("LinkPatch", {"disabled": "yes"}),
    ],
)
def test_schemas_and_models_refuse_the_same_bodies(name: str, body: dict[str, Any]) -> None:
    assert schema_errors(body, name) != []
    model = next(m for m in SCHEMA_MODELS if m.__name__ == name)
    with pytest.raises(ValidationFailed):
        parse(model, body, RULES)
