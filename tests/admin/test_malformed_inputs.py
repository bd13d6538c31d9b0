"""Malformed input at every route the OpenAPI document lists: each answer is a success or a
4xx JSON error, never a 5xx (issue 10 found 500s for times at the calendar's edges, digits
that are not ASCII and bodies that are not the Content-Encoding they claim); and the rules
those findings led to, each on its own."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import ClientResponse
from pytest_aiohttp import AiohttpClient
from redis.asyncio import Redis
from yarl import URL as YarlURL

from admin.app import create_app
from admin.settings import AdminSettings
from tests.admin.helpers import URL, create_campaign, create_link, expect_error, redis_keys
from tests.conftest import AUTH, Client, openapi_document, schema_errors

# Strings no parameter or field should choke on: times at the calendar's edges once in UTC,
# digits that are not ASCII, what int() or fromisoformat() would take, hosts that are none.
BAD_STRINGS = [
    *(
        "",
        " ",
        "0",
        "-1",
        "+5",
        "1_000",
        "1e3",
        "0x10",
        "9" * 40,
        "\u0661\u0662",
        "\uff11\uff12",
        "\u00b2",
    ),
    *("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "9999-12-31T23:59:59+01:00"),
    *(
        "0001-01-01T00:00:00-01:00",
        "1969-12-31T23:59:59Z",
        "\uff12\uff10\uff12\uff16-01-01T00:00:00Z",
    ),
    *("2026-02-30T00:00:00Z", "2026-01-01T00:00:00+24:00", "2030-01-01T00:00:00." + "9" * 999),
    *("https://xn--.example/", "http://[::ffff:127.0.0.1]/", "http://[::1", "https://a:0/"),
    *("%ff", "\x00", "\u2028", "é" * 300, "=1+1"),
]
# Escapes sent as they are: not UTF-8, cut short, not hex, NUL, a slash.
RAW_ESCAPES = ["%ff", "%c3%28", "%e2%82", "%", "%zz", "%00", "a%2Fb"]
BAD_IN_URLS = [quote(value, safe="") for value in BAD_STRINGS] + RAW_ESCAPES
BAD_VALUES: list[Any] = [*BAD_STRINGS, None, True, 0, -1, 2**63, 1.5, 1e308, [], {}, [{}]]
# Bodies that are not JSON, or JSON that Python reads differently from other parsers.
BAD_RAW_BODIES = [b"", b"{", b"\xff", b"[" * 5000, b'{"name": "\\ud800"}', b'{"a": 1e99999}']
# Bodies that are not the Content-Encoding they claim, and codings that are not decoded.
CAMPAIGN = b'{"name": "x"}'
BROKEN_BODIES = [
    ("gzip", CAMPAIGN),
    ("deflate", CAMPAIGN),
    ("deflate", b"{}"),  # raw deflate that never ends
    ("gzip", gzip.compress(CAMPAIGN)[:-6]),
    ("deflate", zlib.compress(CAMPAIGN)[:-3]),
    ("gzip", gzip.compress(CAMPAIGN) + b"x"),
    ("gzip", b""),
]
UNDECODED = ["br", "zstd", "compress", "bogus", "gzip, gzip"]
BAD_ENCODINGS = BROKEN_BODIES + [(coding, CAMPAIGN) for coding in UNDECODED]

Request = tuple[str, dict[str, Any]]  # the path with its query, the client's arguments


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, methods in openapi_document()["paths"].items()
        for method, operation in methods.items()
    ]


def _schema_fields(ref: str) -> dict[str, Any]:
    name = ref.rsplit("/", 1)[1]
    fields: dict[str, Any] = openapi_document()["components"]["schemas"][name]["properties"]
    return fields


def _bodies(operation: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Client arguments of bad bodies: the example with one field (or one field of its first
    list item) replaced by each bad value, bad JSON, and bad Content-Encodings."""
    media = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if media is None:
        yield {}
        return
    example: dict[str, Any] = media["example"]
    for name, field in _schema_fields(media["schema"]["$ref"]).items():
        for value in BAD_VALUES:
            yield {"json": {**example, name: value}}
        item_ref = field.get("items", {}).get("$ref")
        if item_ref and example.get(name):
            for item_name in _schema_fields(item_ref):
                for value in BAD_VALUES:
                    item = {**example[name][0], item_name: value}
                    yield {"json": {**example, name: [item]}}
    for value in BAD_VALUES:
        yield {"json": value}
    for raw in BAD_RAW_BODIES:
        yield {"data": raw, "headers": {"Content-Type": "application/json"}}
    for coding, raw in BAD_ENCODINGS:
        yield {"data": raw, "headers": {"Content-Encoding": coding}}


def _requests(path: str, operation: dict[str, Any], valid: dict[str, str]) -> Iterator[Request]:
    """Each path parameter, then each query parameter, then the body, bad in turn."""
    parameters = operation.get("parameters", [])
    in_path = [p["name"] for p in parameters if p["in"] == "path"]
    in_query = [p["name"] for p in parameters if p["in"] == "query"]
    good = path.format(**valid)
    for name in in_path:
        for value in BAD_IN_URLS:
            yield path.format(**{**valid, name: value}), {}
    for name in in_query:
        for value in BAD_IN_URLS:
            yield f"{good}?{name}={value}", {}
    for arguments in _bodies(operation):
        yield good, arguments


async def _not_a_json_4xx(resp: ClientResponse) -> bool:
    if resp.status < 400:
        return False
    if resp.status >= 500 or resp.content_type != "application/json":
        return True
    return schema_errors(await resp.json(), "Error") != []


@pytest.mark.parametrize(
    ("method", "path", "operation"),
    _operations(),
    ids=[f"{method} {path}" for method, path, _ in _operations()],
)
async def test_no_malformed_input_is_a_5xx(
    admin: Client, method: str, path: str, operation: dict[str, Any]
) -> None:
    campaign = await create_campaign(admin)
    assert campaign["id"] == 1  # the examples' campaign_id
    key = {"name": "fuzzed", "scopes": ["links:read"]}
    resp = await admin.post("/api/workspaces/default/keys", json=key)
    assert resp.status == 201, await resp.text()
    valid = {
        "id": "1",
        "code": (await create_link(admin))["code"],
        "workspace_id": "default",
        "key_id": (await resp.json())["id"],
        "order_id": "order-1",  # not recorded: its malformed spellings must still be 4xx
    }
    failures = []
    for target, arguments in _requests(path, operation, valid):
        resp = await admin.request(method.upper(), YarlURL(target, encoded=True), **arguments)
        if await _not_a_json_4xx(resp):
            failures.append((resp.status, target, arguments, (await resp.text())[:200]))
    assert failures == []


# -- the rules, one by one ------------------------------------------------------------------

OUTSIDE_THE_CALENDAR = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]
CALENDAR_RULE = "must be from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z once in UTC"


@pytest.mark.parametrize("when", OUTSIDE_THE_CALENDAR)
async def test_a_time_outside_the_calendar_in_utc_is_422_in_every_field(
    admin: Client, redis: Redis, when: str
) -> None:
    campaign_id = (await create_campaign(admin))["id"]
    code = (await create_link(admin))["code"]
    before = await redis_keys(redis)
    for method, path, body, field in [
        ("POST", "/api/links", {"url": URL, "expires_at": when}, "expires_at"),
        ("POST", "/api/links/batch", {"links": [{"url": URL, "expires_at": when}]}, None),
        ("PATCH", f"/api/links/{code}", {"expires_at": when}, "expires_at"),
    ]:
        resp = await admin.request(method, path, json=body)
        error = await expect_error(resp, 422, "validation_failed")
        assert error["fields"] == [
            {"field": field or "links[0].expires_at", "message": CALENDAR_RULE}
            | ({} if field else {"index": 0})
        ]
    for route in (f"links/{code}", f"campaigns/{campaign_id}"):
        for name in ("from", "to"):
            for what in ("stats", "clicks.csv"):
                resp = await admin.get(f"/api/{route}/{what}", params={name: when})
                if resp.status == 404:  # a link has no clicks.csv
                    continue
                error = await expect_error(resp, 422, "validation_failed")
                assert error["fields"] == [{"field": name, "message": CALENDAR_RULE}]
    assert await redis_keys(redis) == before


@pytest.mark.parametrize("when", ["1969-12-31T23:59:59Z", "0001-01-01T00:00:00-01:00"])
async def test_an_expiry_before_1970_is_422(admin: Client, when: str) -> None:
    """A link's expiry is stored as unsigned seconds (a negative one once hung the admin)."""
    link = await create_link(admin)
    resp = await admin.patch(f"/api/links/{link['code']}", json={"expires_at": when})
    error = await expect_error(resp, 422, "validation_failed")
    assert error["fields"] == [
        {"field": "expires_at", "message": "must be from 1970-01-01T00:00:00Z on"}
    ]
    assert await (await admin.get(f"/api/links/{link['code']}")).json() == link


@pytest.mark.parametrize(
    "when", ["\uff12\uff10\uff12\uff16-12-31T00:00:00Z", "2099-12-31T00:00:00+\uff10\uff11:00"]
)
async def test_a_time_of_digits_that_are_not_ascii_is_not_rfc_3339(
    admin: Client, when: str
) -> None:
    resp = await admin.post("/api/links", json={"url": URL, "expires_at": when})
    error = await expect_error(resp, 422, "validation_failed")
    assert error["fields"] == [
        {
            "field": "expires_at",
            "message": "must be an RFC 3339 time with an offset, e.g. 2026-12-31T23:59:59Z",
        }
    ]


@pytest.mark.parametrize(
    ("name", "value"), [("limit", "\u0661\u0662"), ("limit", "\uff11\uff12"), ("offset", "\u0661")]
)
async def test_a_number_of_digits_that_are_not_ascii_is_422(
    admin: Client, name: str, value: str
) -> None:
    campaign_id = (await create_campaign(admin))["id"]
    for path in ("/api/campaigns", f"/api/campaigns/{campaign_id}/clickers"):
        error = await expect_error(
            await admin.get(path, params={name: value}), 422, "validation_failed"
        )
        assert [f["field"] for f in error["fields"]] == [name]
    resp = await admin.get(f"/api/campaigns/{quote(value)}")
    await expect_error(resp, 404, "campaign_not_found")


@pytest.mark.parametrize(("coding", "body"), BROKEN_BODIES)
async def test_a_body_that_does_not_decode_is_400(
    admin: Client, redis: Redis, coding: str, body: bytes
) -> None:
    resp = await admin.post("/api/campaigns", data=body, headers={"Content-Encoding": coding})
    error = await expect_error(resp, 400, "bad_request")
    assert error["message"] == f"the body is not valid {coding}"
    assert await redis_keys(redis) == set()


@pytest.mark.parametrize(
    ("coding", "body"),
    [
        ("gzip", gzip.compress(CAMPAIGN)),
        ("X-GZIP", gzip.compress(CAMPAIGN)),
        ("deflate", zlib.compress(CAMPAIGN)),
        ("deflate", zlib.compress(CAMPAIGN, wbits=-zlib.MAX_WBITS)),
        ("identity", CAMPAIGN),
    ],
)
async def test_gzip_and_deflate_bodies_are_read(admin: Client, coding: str, body: bytes) -> None:
    resp = await admin.post("/api/campaigns", data=body, headers={"Content-Encoding": coding})
    assert resp.status == 201, await resp.text()


@pytest.mark.parametrize("coding", UNDECODED)
async def test_a_content_encoding_that_is_not_decoded_is_415(
    admin: Client, redis: Redis, coding: str
) -> None:
    resp = await admin.post("/api/campaigns", data=CAMPAIGN, headers={"Content-Encoding": coding})
    error = await expect_error(resp, 415, "unsupported_media_type")
    assert coding in error["message"]
    assert await redis_keys(redis) == set()


async def test_a_body_larger_than_the_limit_once_decoded_is_413(
    aiohttp_client: AiohttpClient, admin_settings: AdminSettings, redis: Redis
) -> None:
    small = admin_settings.model_copy(update={"max_body_bytes": 2048})
    client = await aiohttp_client(create_app(small), headers=AUTH)
    body = b'{"name": "x", "utm_source": "' + b" " * 2048 + b'"}'
    resp = await client.post(
        "/api/campaigns", data=gzip.compress(body), headers={"Content-Encoding": "gzip"}
    )
    await expect_error(resp, 413, "body_too_large")
    assert await redis_keys(redis) == set()
