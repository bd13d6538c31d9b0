"""OpenAPI 3.1 document of the admin API, served at GET /api/openapi.json.

Written by hand next to the code it describes: request bodies mirror `admin.models`, response
shapes `admin.views`, error bodies `admin.errors`. `tests/admin/test_openapi.py` checks that
every route is documented, that request schemas name exactly the models' fields, and that the
examples here pass both the schemas and the models, so the document cannot drift silently.
"""

from __future__ import annotations

from typing import Any

from admin.models import MAX_BATCH, MAX_BUCKETS
from admin.views import CLICKS_CSV_HEADER

JSON = "application/json"
BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]

# What `_no_control` in admin.models refuses, as an ECMA-262 pattern.
NO_CONTROL = r"^[^\u0000-\u001f\u007f-\u009f]*$"
CODE_PATTERN = "^[A-Za-z0-9_-]{3,64}$"

UTM_RULE = """\
**UTM tagging.** With `tag` true (the default) the stored `destination` is `url` with
`utm_source`, `utm_medium` and, when the link belongs to a campaign, `utm_campaign` added:
source and medium are the campaign's `utm_source`/`utm_medium`, or the service defaults
(`UTM_SOURCE`, `UTM_MEDIUM`; `instasent` and `sms` unless configured) when the campaign has
none or there is no campaign; `utm_campaign` is the campaign's name. A parameter the URL's query
already has is left as it is and not added. Added parameters go after the existing query and
before any fragment; nothing already in the URL changes. With `tag` false the destination is the
URL as given. The response's `url` is the URL as given (normalised), `destination` the tagged
one.

`url` must be an absolute `http` or `https` URL with a host, at most `MAX_URL_LENGTH` bytes
(4096 by default), without user info or control characters, and must not point at the
redirector's own host. Internationalised hosts are stored in IDNA form and non-ASCII characters
elsewhere are percent-encoded."""


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any], description: str) -> dict[str, Any]:
    """`schema` or null; the JSON type list is how OAS 3.1 spells nullable."""
    return {**schema, "type": [schema["type"], "null"], "default": None, "description": description}


def _json_body(name: str, description: str, example: dict[str, Any]) -> dict[str, Any]:
    return {
        "required": True,
        "description": description,
        "content": {JSON: {"schema": _ref(name), "examples": {"example": {"value": example}}}},
    }


def _ok(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": _ref(name)}}}


# Shared error responses by status; see `_errors`.
_ERROR_RESPONSES = {
    400: "MalformedJSON",
    401: "Unauthorized",
    404: "NotFound",
    409: "Conflict",
    413: "BodyTooLarge",
    422: "ValidationFailed",
    503: "StorageUnavailable",
}


def _errors(*statuses: int) -> dict[str, Any]:
    return {
        str(status): {"$ref": f"#/components/responses/{_ERROR_RESPONSES[status]}"}
        for status in statuses
    }


def _error_response(description: str, code: str, message: str, **extra: Any) -> dict[str, Any]:
    example = {"error": {"code": code, "message": message, **extra}}
    return {
        "description": description,
        "content": {JSON: {"schema": _ref("Error"), "example": example}},
    }


_BODY_ERRORS = (400, 401, 413, 422, 503)

_CODE_PARAM = {
    "name": "code",
    "in": "path",
    "required": True,
    "description": "The link's short code.",
    "schema": {"type": "string", "minLength": 1},
}

_NAME = {"type": "string", "minLength": 1, "maxLength": 256, "pattern": NO_CONTROL}
_TEXT = {"type": "string", "minLength": 1, "maxLength": 128, "pattern": NO_CONTROL}
_TIME = {"type": "string", "format": "date-time"}
_CAMPAIGN_ID = _nullable(
    {"type": "integer", "minimum": 1},
    "The campaign the link belongs to; it must exist (422 otherwise). Null or absent: no "
    "campaign, and the service's default UTM source and medium.",
)
_TAG = {
    "type": "boolean",
    "default": True,
    "description": "Add the UTM parameters to the destination (see the operation's description).",
}

_ITEM_PROPERTIES: dict[str, Any] = {
    "url": {
        "type": "string",
        "minLength": 1,
        "description": "The URL to shorten: absolute http(s), at most MAX_URL_LENGTH bytes.",
    },
    "recipient": _nullable(
        _TEXT,
        "Who the link is for (e.g. a phone number). A recipient has at most one link per "
        "campaign: asking again returns the existing link unchanged.",
    ),
    "code": _nullable(
        {"type": "string", "pattern": CODE_PATTERN},
        "A custom short code instead of a random one; the words api, healthz, metrics, admin "
        "and static (in any case) are reserved. 409 if it is taken.",
    ),
    "expires_at": _nullable(
        _TIME,
        "RFC 3339 time with an offset, in the future; from then on the short link answers 410.",
    ),
}

_ID_PARAM = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "The campaign's id; an id that is not a number is a 404.",
    "schema": {"type": "integer", "minimum": 1},
}


def _paging(what: str) -> list[dict[str, Any]]:
    return [
        {
            "name": "offset",
            "in": "query",
            "description": f"How many {what} to skip.",
            "schema": {"type": "integer", "minimum": 0, "maximum": 2**31, "default": 0},
        },
        {
            "name": "limit",
            "in": "query",
            "description": f"How many {what} to return at most.",
            "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
        },
    ]


def _time_param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "description": description + " RFC 3339 with an offset (`Z` or `±hh:mm`; encode `+` "
        "as `%2B`, though a `+` that arrives as a space is understood).",
        "schema": {"type": "string", "format": "date-time"},
    }


_WINDOW_PARAMS = [
    _time_param(
        "from",
        "Start of the time series, rounded down to its bucket. Default: `to` minus 7 days "
        "(granularity hour) or 30 days (day).",
    ),
    _time_param("to", "End of the time series (exclusive), rounded up to a bucket. Default: now."),
    {
        "name": "granularity",
        "in": "query",
        "description": f"Bucket size of `series` (UTC hours or days); at most {MAX_BUCKETS} "
        "buckets per request, else 422 on `from`.",
        "schema": {"type": "string", "enum": ["hour", "day"], "default": "hour"},
    },
]

STATS_RULES = """\
Counted as the redirector flushes its clicks (every 0.1 s). A hit is a **bot hit**, not a
click, when it is a `HEAD` request or its User-Agent is a bot or a link-preview fetcher
(WhatsApp, iMessage, Facebook, Telegram, Slack, carriers' scanners, HTTP libraries, empty).
`clicks`, `bot_hits`, `unique_clicks`, `recipients_clicked` and `breakdowns` are **all-time**
totals; only `series` follows `from`/`to`. Breakdowns count clicks only (never bot hits).
Unique clicks: a recipient counts once (exact); visitors of links without a recipient are
counted by a salted hash of IP address and User-Agent, estimated with a HyperLogLog (exact for
small numbers, about 1% off for large ones). The cost of a request grows with the number of
buckets, never with the number of clicks."""


def _stats_operation(operation_id: str, tag: str, what: str) -> dict[str, Any]:
    return {
        "get": {
            "operationId": operation_id,
            "tags": [tag],
            "summary": f"Click statistics of a {what}",
            "description": STATS_RULES,
            "security": BEARER,
            "parameters": _WINDOW_PARAMS,
            "responses": {
                "200": _ok("Stats", f"The {what}'s totals, time series and breakdowns."),
                **_errors(401, 404, 422, 503),
            },
        }
    }


_ANALYTICS_PATHS: dict[str, Any] = {
    "/api/links/{code}/stats": {
        "parameters": [_CODE_PARAM],
        **_stats_operation("getLinkStats", "links", "link"),
    },
    "/api/campaigns/{id}/stats": {
        "parameters": [_ID_PARAM],
        **_stats_operation("getCampaignStats", "campaigns", "campaign"),
    },
    "/api/campaigns/{id}/clickers": {
        "parameters": [_ID_PARAM],
        "get": {
            "operationId": "listCampaignClickers",
            "tags": ["campaigns"],
            "summary": "Recipients who clicked, by first click",
            "description": "The campaign's recipients (of per-recipient links) who clicked at "
            "least once (bot hits do not count), ordered by their first click, with that "
            "time and their link's code (null if the link was deleted since).",
            "security": BEARER,
            "parameters": _paging("clickers"),
            "responses": {
                "200": _ok("ClickerList", "One page of clickers and the total count."),
                **_errors(401, 404, 422, 503),
            },
        },
    },
    "/api/campaigns/{id}/clicks.csv": {
        "parameters": [_ID_PARAM],
        "get": {
            "operationId": "exportCampaignClicks",
            "tags": ["campaigns"],
            "summary": "Every click event of a campaign, as CSV",
            "description": "Streams the campaign's raw click events, oldest first: clicks and "
            "bot hits, one row each. `time` is when the link was tapped; `from`/`to` select "
            "events by when they were recorded (up to one flush, 0.1 s, later), so "
            "consecutive ranges never overlap nor leave gaps. Only the newest "
            "`CLICK_STREAM_MAXLEN` events per campaign (1,000,000 by default) are kept; the "
            "stats count every click regardless. `visitor_hash` is a salted hash of IP "
            "address and User-Agent (no IP address is stored). Cells that a spreadsheet "
            "would run as a formula (starting with `=`, `+`, `-`, `@`) get a leading `'`. "
            "Errors are JSON as usual; if storage fails after the first rows were sent, the "
            "connection is dropped, so the download fails rather than ending short.",
            "security": BEARER,
            "parameters": [
                _time_param("from", "Only events recorded from this time."),
                _time_param("to", "Only events recorded before this time."),
                {
                    "name": "bots",
                    "in": "query",
                    "description": "Whether bot hits are included, left out, or all there is.",
                    "schema": {
                        "type": "string",
                        "enum": ["include", "exclude", "only"],
                        "default": "include",
                    },
                },
            ],
            "responses": {
                "200": {
                    "description": "RFC 4180 CSV (CRLF line ends) with a header row: "
                    + ",".join(CLICKS_CSV_HEADER)
                    + ". `bot` is 1 for a bot hit, 0 for a click; `recipient` and "
                    "`referer_host` may be empty.",
                    "headers": {
                        "Content-Disposition": {
                            "description": 'attachment; filename="campaign-{id}-clicks.csv"',
                            "schema": {"type": "string"},
                        }
                    },
                    "content": {
                        "text/csv": {
                            "schema": {"type": "string"},
                            "example": ",".join(CLICKS_CSV_HEADER)
                            + "\r\n2026-03-02T09:15:04.211Z,Xk3dP9a,+34600000001,0,"
                            "m.facebook.com,Mozilla/5.0 (iPhone; ...),9f1c2a7b44e0d513\r\n",
                        }
                    },
                },
                **_errors(401, 404, 422, 503),
            },
        },
    },
}

_COUNTS = {"type": "object", "additionalProperties": {"type": "integer", "minimum": 1}}

_ANALYTICS_SCHEMAS: dict[str, Any] = {
    "Stats": {
        "type": "object",
        "required": [
            "clicks",
            "unique_clicks",
            "bot_hits",
            "recipients_clicked",
            "from",
            "to",
            "granularity",
            "series",
            "breakdowns",
        ],
        "properties": {
            "clicks": {"type": "integer", "minimum": 0, "description": "All time."},
            "unique_clicks": {
                "type": "integer",
                "minimum": 0,
                "description": "All time: recipients who clicked, plus distinct visitors of "
                "links without a recipient (estimated).",
            },
            "bot_hits": {"type": "integer", "minimum": 0, "description": "All time."},
            "recipients_clicked": {
                "type": ["integer", "null"],
                "minimum": 0,
                "description": "Campaign: how many of its recipients clicked. Link: 1 or 0 "
                "when it has a recipient, null when it has none.",
            },
            "from": {**_TIME, "description": "Start of `series`, on a bucket boundary."},
            "to": {**_TIME, "description": "End of `series` (exclusive)."},
            "granularity": {"type": "string", "enum": ["hour", "day"]},
            "series": {
                "type": "array",
                "description": "Every bucket from `from` to `to`, zeros included.",
                "items": {
                    "type": "object",
                    "required": ["t", "clicks", "bot_hits"],
                    "properties": {
                        "t": {**_TIME, "description": "Start of the bucket."},
                        "clicks": {"type": "integer", "minimum": 0},
                        "bot_hits": {"type": "integer", "minimum": 0},
                    },
                },
            },
            "breakdowns": {
                "type": "object",
                "description": "All-time clicks (no bot hits) by value, highest count first.",
                "required": ["device", "os", "browser", "referer"],
                "properties": {
                    "device": {
                        **_COUNTS,
                        "description": "mobile, tablet, desktop or other.",
                    },
                    "os": {**_COUNTS, "description": "OS family: iOS, Android, Windows, …"},
                    "browser": {
                        **_COUNTS,
                        "description": "Browser family: Mobile Safari, Chrome Mobile, …",
                    },
                    "referer": {
                        **_COUNTS,
                        "description": "Host of the Referer header, when one was sent.",
                    },
                },
            },
        },
    },
    "Clicker": {
        "type": "object",
        "required": ["recipient", "first_click_at", "code"],
        "properties": {
            "recipient": {"type": "string"},
            "first_click_at": {**_TIME, "description": "To the millisecond."},
            "code": {
                "type": ["string", "null"],
                "description": "The recipient's link; null if it was deleted.",
            },
        },
    },
    "ClickerList": {
        "type": "object",
        "required": ["total", "clickers"],
        "properties": {
            "total": {"type": "integer", "minimum": 0, "description": "All clickers."},
            "clickers": {"type": "array", "items": _ref("Clicker")},
        },
    },
}

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
    "info": {
        "title": "smslinks admin API",
        "version": "0.1.0",
        "description": (
            "Create and manage the short links of SMS campaigns. Every `/api/` path needs "
            "`Authorization: Bearer <key>` with a key from `ADMIN_API_KEYS`. Every error is a "
            "JSON `Error` body. Times are RFC 3339 in UTC."
        ),
    },
    "tags": [
        {"name": "campaigns", "description": "Campaigns group links and name their UTM values."},
        {"name": "links", "description": "Short links."},
        {"name": "service", "description": "Health and this document."},
    ],
    "paths": {
        "/healthz": {
            "get": {
                "operationId": "health",
                "tags": ["service"],
                "summary": "Whether the service can reach Redis",
                "security": [],
                "responses": {
                    "200": _ok("Health", "Redis answers."),
                    "503": _ok("Health", "Redis does not answer; `error` says why."),
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "tags": ["service"],
                "summary": "Prometheus metrics of the admin API",
                "description": "Requests by route and status, request time, links created, "
                "Redis errors, in the Prometheus text format. No key needed: expose it to "
                "your scraper only.",
                "security": [],
                "responses": {
                    "200": {
                        "description": "Prometheus text exposition format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/api/openapi.json": {
            "get": {
                "operationId": "getOpenAPI",
                "tags": ["service"],
                "summary": "This document",
                "security": BEARER,
                "responses": {
                    "200": {
                        "description": "The OpenAPI 3.1 document of the admin API.",
                        "content": {JSON: {"schema": {"type": "object"}}},
                    },
                    **_errors(401),
                },
            }
        },
        "/api/campaigns": {
            "post": {
                "operationId": "createCampaign",
                "tags": ["campaigns"],
                "summary": "Create a campaign",
                "security": BEARER,
                "requestBody": _json_body(
                    "CampaignIn",
                    "The campaign; `utm_source` and `utm_medium` override the service defaults "
                    "for its links.",
                    {"name": "Black Friday 2026", "utm_source": "instasent"},
                ),
                "responses": {
                    "201": _ok("Campaign", "The new campaign."),
                    **_errors(*_BODY_ERRORS),
                },
            },
            "get": {
                "operationId": "listCampaigns",
                "tags": ["campaigns"],
                "summary": "List campaigns, oldest first",
                "security": BEARER,
                "parameters": _paging("campaigns"),
                "responses": {
                    "200": _ok("CampaignList", "One page of campaigns and the total count."),
                    **_errors(401, 422, 503),
                },
            },
        },
        "/api/campaigns/{id}": {
            "get": {
                "operationId": "getCampaign",
                "tags": ["campaigns"],
                "summary": "Get a campaign",
                "security": BEARER,
                "parameters": [_ID_PARAM],
                "responses": {
                    "200": _ok("Campaign", "The campaign, with its current link count."),
                    **_errors(401, 404, 503),
                },
            }
        },
        "/api/links": {
            "post": {
                "operationId": "createLink",
                "tags": ["links"],
                "summary": "Create a short link",
                "description": "Creates one link. If `recipient` already has a link in this "
                "campaign, that link is returned unchanged with 200 (the request's other "
                "fields are ignored), so a retried request never makes a second link.\n\n"
                + UTM_RULE,
                "security": BEARER,
                "requestBody": _json_body(
                    "LinkIn",
                    "The link to create.",
                    {
                        "url": "https://shop.example/offers?id=7",
                        "campaign_id": 1,
                        "recipient": "+34600000000",
                        "expires_at": "2026-12-31T23:59:59Z",
                    },
                ),
                "responses": {
                    "201": _ok("Link", "The new link."),
                    "200": _ok(
                        "Link", "The recipient already had a link in this campaign: that link."
                    ),
                    **_errors(400, 401, 409, 413, 422, 503),
                },
            }
        },
        "/api/links/batch": {
            "post": {
                "operationId": "createLinkBatch",
                "tags": ["links"],
                "summary": f"Create up to {MAX_BATCH} short links at once",
                "description": "All or nothing: every item is validated before anything is "
                "written, and a 422 names each bad field with its `index`; a taken custom code "
                "is a 409 with the item's `index`. The response lists one link per item, in "
                "request order. An item whose recipient already has a link in the campaign "
                "(or appears earlier in the same batch) gets that link back unchanged.\n\n"
                + UTM_RULE,
                "security": BEARER,
                "requestBody": _json_body(
                    "BatchIn",
                    "The links to create, all in one campaign with one `tag` setting.",
                    {
                        "campaign_id": 1,
                        "links": [
                            {"url": "https://shop.example/a", "recipient": "+34600000001"},
                            {"url": "https://shop.example/b", "code": "spring-sale"},
                        ],
                    },
                ),
                "responses": {
                    "201": _ok("LinkBatch", "The links, one per item in request order."),
                    **_errors(400, 401, 409, 413, 422, 503),
                },
            }
        },
        "/api/links/{code}": {
            "parameters": [_CODE_PARAM],
            "get": {
                "operationId": "getLink",
                "tags": ["links"],
                "summary": "Get a short link",
                "security": BEARER,
                "responses": {"200": _ok("Link", "The link."), **_errors(401, 404, 503)},
            },
            "patch": {
                "operationId": "updateLink",
                "tags": ["links"],
                "summary": "Change a short link",
                "description": "Changes only the fields given. A new `url` is tagged the way "
                "the link was created (its `tag`), with its campaign's current UTM values. "
                "Redirectors drop the old record from their caches at once.",
                "security": BEARER,
                "requestBody": _json_body(
                    "LinkPatch",
                    "The fields to change.",
                    {"expires_at": None, "disabled": True},
                ),
                "responses": {
                    "200": _ok("Link", "The link as changed."),
                    **_errors(400, 401, 404, 409, 413, 422, 503),
                },
            },
            "delete": {
                "operationId": "deleteLink",
                "tags": ["links"],
                "summary": "Delete a short link",
                "description": "The code answers 404 from then on, and the recipient may get a "
                "new link in the campaign.",
                "security": BEARER,
                "responses": {
                    "204": {"description": "Deleted."},
                    **_errors(401, 404, 409, 503),
                },
            },
        },
        **_ANALYTICS_PATHS,
    },
    "components": {
        "securitySchemes": {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "description": "One of the keys in `ADMIN_API_KEYS`.",
            }
        },
        "schemas": {
            "CampaignIn": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name"],
                "properties": {
                    "name": {**_NAME, "description": "Also the links' `utm_campaign` value."},
                    "kind": {
                        "type": "string",
                        "enum": ["campaign", "automation"],
                        "default": "campaign",
                    },
                    "utm_source": _nullable(_TEXT, "Overrides the service's `UTM_SOURCE`."),
                    "utm_medium": _nullable(_TEXT, "Overrides the service's `UTM_MEDIUM`."),
                },
            },
            "BatchItem": {
                "type": "object",
                "additionalProperties": False,
                "required": ["url"],
                "properties": _ITEM_PROPERTIES,
            },
            "LinkIn": {
                "type": "object",
                "additionalProperties": False,
                "required": ["url"],
                "properties": {**_ITEM_PROPERTIES, "campaign_id": _CAMPAIGN_ID, "tag": _TAG},
            },
            "BatchIn": {
                "type": "object",
                "additionalProperties": False,
                "required": ["links"],
                "properties": {
                    "campaign_id": _CAMPAIGN_ID,
                    "tag": _TAG,
                    "links": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": MAX_BATCH,
                        "items": _ref("BatchItem"),
                    },
                },
            },
            "LinkPatch": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "url": {
                        "type": "string",
                        "minLength": 1,
                        "description": "The new URL to shorten (not null).",
                    },
                    "expires_at": _nullable(
                        _TIME, "The new expiry; null removes it, a past time expires the link now."
                    ),
                    "disabled": {
                        "type": "boolean",
                        "description": "A disabled link answers 410 (not null).",
                    },
                },
            },
            "Link": {
                "type": "object",
                "required": [
                    "code",
                    "short_url",
                    "url",
                    "destination",
                    "campaign_id",
                    "recipient",
                    "created_at",
                    "expires_at",
                    "disabled",
                    "tag",
                ],
                "properties": {
                    "code": {"type": "string"},
                    "short_url": {"type": "string", "format": "uri"},
                    "url": {"type": "string", "description": "The URL as given, normalised."},
                    "destination": {
                        "type": "string",
                        "description": "Where the short link redirects: `url` with UTM tags.",
                    },
                    "campaign_id": {"type": ["integer", "null"]},
                    "recipient": {"type": ["string", "null"]},
                    "created_at": _TIME,
                    "expires_at": {"type": ["string", "null"], "format": "date-time"},
                    "disabled": {"type": "boolean"},
                    "tag": {"type": "boolean", "description": "Whether UTM tags were added."},
                },
            },
            "LinkBatch": {
                "type": "object",
                "required": ["links"],
                "properties": {"links": {"type": "array", "items": _ref("Link")}},
            },
            "Campaign": {
                "type": "object",
                "required": [
                    "id",
                    "name",
                    "kind",
                    "utm_source",
                    "utm_medium",
                    "created_at",
                    "links",
                ],
                "properties": {
                    "id": {"type": "integer", "minimum": 1},
                    "name": {"type": "string"},
                    "kind": {"type": "string", "enum": ["campaign", "automation"]},
                    "utm_source": {"type": ["string", "null"]},
                    "utm_medium": {"type": ["string", "null"]},
                    "created_at": _TIME,
                    "links": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "How many links the campaign has.",
                    },
                },
            },
            "CampaignList": {
                "type": "object",
                "required": ["total", "campaigns"],
                "properties": {
                    "total": {"type": "integer", "minimum": 0, "description": "All campaigns."},
                    "campaigns": {"type": "array", "items": _ref("Campaign")},
                },
            },
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {
                            "code": {
                                "type": "string",
                                "description": "Machine-readable: bad_request, unauthorized, "
                                "not_found, campaign_not_found, link_not_found, code_taken, "
                                "conflict, body_too_large, validation_failed, "
                                "storage_unavailable, method_not_allowed, …",
                            },
                            "message": {"type": "string", "description": "For people."},
                            "fields": {
                                "type": "array",
                                "description": "validation_failed only: every bad field.",
                                "items": _ref("FieldError"),
                            },
                            "index": {
                                "type": "integer",
                                "minimum": 0,
                                "description": "code_taken in a batch: the item's position.",
                            },
                        },
                    }
                },
            },
            "FieldError": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {
                    "field": {
                        "type": "string",
                        "description": "Path of the field, e.g. `url` or `links[3].url`; "
                        "`body` for the body as a whole.",
                    },
                    "message": {"type": "string"},
                    "index": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "The batch item the field is in, for batch fields.",
                    },
                },
            },
            **_ANALYTICS_SCHEMAS,
            "Health": {
                "type": "object",
                "required": ["status"],
                "properties": {
                    "status": {"type": "string", "enum": ["ok", "unavailable"]},
                    "error": {"type": "string", "description": "Why Redis is unavailable."},
                },
            },
        },
        "responses": {
            "MalformedJSON": _error_response(
                "The body is not valid JSON.",
                "bad_request",
                "malformed JSON: unexpected character: line 1 column 2 (char 1)",
            ),
            "Unauthorized": {
                **_error_response(
                    "No bearer key, or not one of `ADMIN_API_KEYS`.",
                    "unauthorized",
                    "send 'Authorization: Bearer <key>' with a key from ADMIN_API_KEYS",
                ),
                "headers": {"WWW-Authenticate": {"schema": {"type": "string", "const": "Bearer"}}},
            },
            "NotFound": _error_response(
                "No such campaign (`campaign_not_found`) or link (`link_not_found`).",
                "link_not_found",
                "no link with code 'abc1234'",
            ),
            "Conflict": _error_response(
                "`code_taken`: a custom code is already in use (`index` names the batch item). "
                "`conflict`: concurrent writes kept changing the same link; retry.",
                "code_taken",
                "links[1].code: code 'spring-sale' is already taken",
                index=1,
            ),
            "BodyTooLarge": _error_response(
                "The body is larger than `ADMIN_MAX_BODY_BYTES`.",
                "body_too_large",
                "request body is too large",
            ),
            "ValidationFailed": _error_response(
                "The body (or a query parameter) breaks a rule; `fields` names each one. A body "
                "that is JSON but not an object is reported on the field `body`.",
                "validation_failed",
                "links[0].url: scheme must be http or https (and 1 more)",
                fields=[
                    {
                        "field": "links[0].url",
                        "message": "scheme must be http or https",
                        "index": 0,
                    },
                    {
                        "field": "links[2].expires_at",
                        "message": "must be in the future",
                        "index": 2,
                    },
                ],
            ),
            "StorageUnavailable": _error_response(
                "Redis did not answer.",
                "storage_unavailable",
                "the link store is unavailable",
            ),
        },
    },
}
