"""The prose of the OpenAPI document that `admin.openapi` generates: summaries, descriptions
and examples, by operationId; the tests check that every example passes its schema."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from admin.export import CLICKS_CSV_HEADER
from admin.models import MAX_BATCH


@dataclass(frozen=True)
class Text:
    summary: str
    description: str = ""
    example: Any = None  # of the request body, or of a non-JSON answer
    # Descriptions of the answers by status; HTTP's reason phrase for the others.
    responses: dict[int, str] = field(default_factory=dict)


INFO = {
    "title": "smslinks admin API",
    "version": "0.1.0",
    "description": "Create and manage the short links of SMS campaigns. Every `/api/` path needs "
    "`Authorization: Bearer <key>`. A key acts in one workspace and sees only its campaigns, "
    "links and clicks: another workspace's campaign or link is a 404, as one that does not "
    "exist. Each operation needs one scope (its `security` names it; 403 without). Every "
    "error is a JSON `Error` body. Times are RFC 3339 in UTC. Each key may make "
    "`ADMIN_RATE_LIMIT` requests (600 by default) per 60-second window, counted across every "
    "admin process; past them it gets 429 with `Retry-After` until the window ends. Every "
    "answer to a valid key carries `RateLimit-Limit`, `RateLimit-Remaining`, "
    "`RateLimit-Reset` and `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers-06), "
    "unless the limit is off.",
}
TAGS = [
    {"name": "campaigns", "description": "Campaigns group links and name their UTM values."},
    {"name": "links", "description": "Short links."},
    {
        "name": "attribution",
        "description": "Sends and conversions, and what each campaign earned (the billboard "
        "model).",
    },
    {"name": "access", "description": "Workspaces, their API keys, and the audit log."},
    {"name": "service", "description": "Health, metrics and this document."},
]
BEARER_DESCRIPTION = """\
An API key. The keys in `ADMIN_API_KEYS` are **root** keys: every scope in the workspace
`default` (where everything made before workspaces lives), and the management of workspaces
and of any workspace's keys. Other keys (`smsl_` and 43 letters and digits) are made with
`POST /api/workspaces/{workspace_id}/keys` or `python -m admin keys create`: one workspace,
the scopes they were given (campaigns:read, campaigns:write, links:read, links:write,
stats:read, events:write, keys:admin), an optional expiry. A deleted or expired key is
refused (401) by every admin process within a second."""

_SECONDS = {"type": "integer", "minimum": 0}
# The header fields of the rate limit (admin.service.ratelimit), by name.
HEADERS = {
    "RateLimit-Limit": {
        "description": "Requests the key may make per window (`ADMIN_RATE_LIMIT`).",
        "schema": _SECONDS,
    },
    "RateLimit-Remaining": {
        "description": "Requests the key may still make in its current window.",
        "schema": _SECONDS,
    },
    "RateLimit-Reset": {
        "description": "Seconds until the key's current window ends (rounded up).",
        "schema": _SECONDS,
    },
    "RateLimit-Policy": {
        "description": "The limit and its window in seconds, e.g. `600;w=60`.",
        "schema": {"type": "string", "pattern": "^[0-9]+;w=[0-9]+$"},
    },
    "Retry-After": {
        "description": "Seconds until the key's window ends and it may make requests again.",
        "required": True,
        "schema": _SECONDS,
    },
}
# On every answer to a valid key, when the limit is on (absent when it is off).
RATE_LIMIT_HEADERS = (
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "RateLimit-Policy",
)

PATH_PARAMETERS = {
    "code": {"description": "The link's short code.", "schema": {"type": "string"}},
    "workspace_id": {
        "description": "`default`, or the id `POST /api/workspaces` gave.",
        "schema": {"type": "string"},
    },
    "key_id": {"description": "The key's id (not the key).", "schema": {"type": "string"}},
    "order_id": {"description": "The conversion's order id.", "schema": {"type": "string"}},
    "id": {
        "description": "The campaign's id; an id that is not a number is a 404.",
        "schema": {"type": "integer", "minimum": 1},
    },
}

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

ATTRIBUTION_RULES = """\
**Attribution** (the billboard model): a conversion of a recipient at time T goes to their
latest send S (any campaign of the workspace, sent at or before T, not failed) that they
clicked a link of S's campaign after (between S's sent_at and T, within
ATTRIBUTION_CLICK_WINDOW of the send: type click), or that was delivered within
ATTRIBUTION_VIEW_WINDOW before T (type view); a tie goes to the higher campaign id. A
per-recipient link counts as a send, sent and delivered when it was made, unless a send of
that campaign was reported to that recipient."""

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

CLICKS_CSV = """\
Streams the campaign's raw click events, oldest first: clicks and bot hits, one row each. `time`
is when the link was tapped; `from`/`to` select events by when they were recorded (up to one
flush, 0.1 s, later), so consecutive ranges never overlap nor leave gaps. Only the newest
`CLICK_STREAM_MAXLEN` events per campaign (1,000,000 by default) are kept; the stats count every
click regardless. `visitor_hash` is a salted hash of IP address and User-Agent (no IP address is
stored). Cells that a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`) get a
leading `'`. Errors are JSON as usual; if storage fails after the first rows were sent, the
connection is dropped, so the download fails rather than ending short."""

QR_CODES = """\
A QR code of the link's `short_url` (error correction M, a 4-module quiet zone), to
print on a poster or a flyer; scanning it opens the short link, so its scans are clicks like any
other. A disabled or expired link still has its QR code (it answers 410 when scanned)."""

OPERATIONS = {
    "health": Text(
        "Whether the service can reach Redis",
        responses={200: "Redis answers.", 503: "Redis does not answer."},
    ),
    "metrics": Text(
        "Prometheus metrics of the admin API",
        "Requests by route and status, request time, links created, Redis errors, in the "
        "Prometheus text format. No key needed: expose it to your scraper only.",
    ),
    "getOpenAPI": Text("This document", responses={200: "The OpenAPI 3.1 document."}),
    "createCampaign": Text(
        "Create a campaign",
        "`utm_source` and `utm_medium` override the service defaults for its links.",
        example={"name": "Black Friday 2026", "utm_source": "instasent"},
    ),
    "listCampaigns": Text("List campaigns, oldest first"),
    "getCampaign": Text("Get a campaign, with its current link count"),
    "createLink": Text(
        "Create a short link",
        "Creates one link. If `recipient` already has a link in this campaign, that link is "
        "returned unchanged with 200 (the request's other fields are ignored), so a retried "
        "request never makes a second link.\n\n" + UTM_RULE,
        example={
            "url": "https://shop.example/offers?id=7",
            "campaign_id": 1,
            "recipient": "+34600000000",
            "expires_at": "2030-12-31T23:59:59Z",
        },
        responses={
            201: "The new link.",
            200: "The recipient already had a link in this campaign: that link.",
        },
    ),
    "createLinkBatch": Text(
        f"Create up to {MAX_BATCH} short links at once",
        "All or nothing: every item is validated before anything is written, and a 422 names "
        "each bad field with its `index`; a taken custom code is a 409 with the item's `index`. "
        "The response lists one link per item, in request order. An item whose recipient "
        "already has a link in the campaign (or appears earlier in the same batch) gets that "
        "link back unchanged.\n\n" + UTM_RULE,
        example={
            "campaign_id": 1,
            "links": [
                {"url": "https://shop.example/a", "recipient": "+34600000001"},
                {"url": "https://shop.example/b", "code": "spring-sale"},
            ],
        },
    ),
    "getLink": Text("Get a short link"),
    "updateLink": Text(
        "Change a short link",
        "Changes only the fields given. A new `url` is tagged the way the link was created (its "
        "`tag`), with its campaign's current UTM values. Redirectors drop the old record from "
        "their caches at once.",
        example={"expires_at": None, "disabled": True},
    ),
    "deleteLink": Text(
        "Delete a short link",
        "The code answers 404 from then on, and the recipient may get a new link in the campaign.",
    ),
    "getLinkQrSvg": Text(
        "The short link as a QR code, SVG",
        QR_CODES,
        responses={200: "An SVG image of the QR code of the link's `short_url`."},
    ),
    "getLinkQrPng": Text(
        "The short link as a QR code, PNG",
        QR_CODES,
        responses={200: "A PNG image (8 pixels per module) of the QR code of `short_url`."},
    ),
    "getLinkStats": Text("Click statistics of a link", STATS_RULES),
    "getCampaignStats": Text("Click statistics of a campaign", STATS_RULES),
    "listCampaignClickers": Text(
        "Recipients who clicked, by first click",
        "The campaign's recipients (of per-recipient links) who clicked at least once (bot hits "
        "do not count), ordered by their first click, with that time and their link's code "
        "(null if the link was deleted since).",
    ),
    "recordSends": Text(
        "Report sends of campaigns and automations",
        f"Up to {MAX_BATCH:,} sends; every item is checked first, and a 422 names each bad "
        "one and writes nothing. A send is keyed by (campaign_id, recipient, sent_at): a repeat "
        "sets its `delivered_at` and `status` (delivery reports come after the send). A "
        "reported send replaces the implied send of the recipient's link of that campaign. "
        + ATTRIBUTION_RULES,
        example={
            "sends": [
                {"campaign_id": 1, "recipient": "+34600000001", "sent_at": "2026-03-01T09:00:00Z"},
                {
                    "campaign_id": 1,
                    "recipient": "+34600000001",
                    "sent_at": "2026-03-01T09:00:00Z",
                    "delivered_at": "2026-03-01T09:00:04Z",
                },
            ]
        },
        responses={200: "How many sends were recorded."},
    ),
    "recordConversions": Text(
        "Report conversions (orders), each attributed as it is stored",
        f"Up to {MAX_BATCH:,} conversions; every item is checked first (422, nothing "
        "written). Each is decided now, from the sends and clicks recorded so far, and stored "
        "with its decision; an order id already stored (or given earlier in the batch) is a "
        "duplicate: the first one wins and counts once. " + ATTRIBUTION_RULES,
        example={
            "conversions": [
                {
                    "order_id": "A-1001",
                    "recipient": "+34600000001",
                    "amount": "80.00",
                    "currency": "EUR",
                    "occurred_at": "2026-03-01T10:30:00Z",
                }
            ]
        },
        responses={200: "The conversions stored now, with the campaign each went to."},
    ),
    "getConversion": Text("Get a conversion as stored, with its attribution"),
    "getCampaignReport": Text(
        "A campaign's sends, clicks, conversions and revenue",
        "`sends` counts every reported send (failed ones too) and every per-recipient link "
        "that no reported send replaced; `delivered`, those delivered (an implied send is "
        "delivered). ctr = unique_clicks / delivered and cvr = conversions / delivered (all "
        "currencies together), rounded to 4 decimals, null when delivered is 0. Per currency: "
        "revenue, aov (revenue / its conversions) and epm (revenue x 1000 / sends), in its "
        "minor units, rounded half-up.",
    ),
    "createWorkspace": Text(
        "Create a workspace (root keys only)",
        "A workspace holds campaigns, links and their clicks apart from every other. Give it "
        "keys with `POST /api/workspaces/{workspace_id}/keys`.",
        example={"name": "Shop B"},
    ),
    "createKey": Text(
        "Create an API key of a workspace",
        "By a root key, or by a key of that workspace with keys:admin. The answer holds the "
        "key itself, this once: only its SHA-256 is stored.",
        example={
            "name": "shop backend",
            "scopes": ["campaigns:read", "links:write"],
            "expires_at": "2030-01-01T00:00:00Z",
        },
        responses={201: "The new key, with `key` shown this once."},
    ),
    "listWorkspaceKeys": Text("List a workspace's API keys (root keys only)"),
    "deleteWorkspaceKey": Text(
        "Delete an API key of a workspace (root keys only)",
        "Refused (401) by every admin process within a second.",
    ),
    "listKeys": Text("List the API keys of the caller's workspace"),
    "deleteKey": Text(
        "Delete an API key of the caller's workspace",
        "Refused (401) by every admin process within a second. Root keys are not stored: "
        "take them out of `ADMIN_API_KEYS`.",
    ),
    "listAudit": Text(
        "The audit log of the caller's workspace, newest first",
        "One entry per write request that succeeded (POST, PATCH, DELETE): which key "
        "(`key_id`: its id; a root key's is `root-` and the first 12 hex digits of its "
        "SHA-256), which operation (`action`, its operationId), what it wrote (`target`) and "
        "when. A root key's write in another workspace (its keys) is in that workspace's "
        "log. The newest 100,000 entries or so per workspace are kept.",
    ),
    "exportCampaignClicks": Text(
        "Every click event of a campaign, as CSV",
        CLICKS_CSV,
        example=",".join(CLICKS_CSV_HEADER) + "\r\n2026-03-02T09:15:04.211Z,Xk3dP9a,+34600000001,"
        "0,m.facebook.com,Mozilla/5.0 (iPhone; ...),9f1c2a7b44e0d513\r\n",
        responses={
            200: "RFC 4180 CSV (CRLF line ends) with a header row: "
            + ",".join(CLICKS_CSV_HEADER)
            + ". `bot` is 1 for a bot hit, 0 for a click; `recipient` and `referer_host` may be "
            'empty. Sent as an attachment, `filename="campaign-{id}-clicks.csv"`.'
        },
    ),
}


def _error(
    name: str, description: str, code: str, message: str, **extra: Any
) -> tuple[str, str, dict[str, Any]]:
    return name, description, {"error": {"code": code, "message": message, **extra}}


# The shared error responses: name, description and example body, by status.
ERRORS = {
    400: _error(
        "MalformedJSON",
        "The body is not valid JSON, or not valid in the Content-Encoding it names.",
        "bad_request",
        "malformed JSON: unexpected character: line 1 column 2 (char 1)",
    ),
    401: _error(
        "Unauthorized",
        "No bearer key, a malformed header, or not a valid key (unknown, deleted or expired); "
        "sent with `WWW-Authenticate: Bearer`.",
        "unauthorized",
        "send 'Authorization: Bearer <key>' with a valid API key",
    ),
    403: _error(
        "Forbidden",
        "The key lacks the scope the operation needs (its `security` names it), or the "
        "operation needs a root key.",
        "forbidden",
        "this operation needs the scope links:write",
    ),
    404: _error(
        "NotFound",
        "No such campaign (`campaign_not_found`), link (`link_not_found`), workspace "
        "(`workspace_not_found`) or key (`key_not_found`); also what another workspace's is.",
        "link_not_found",
        "no link with code 'abc1234'",
    ),
    409: _error(
        "Conflict",
        "`code_taken`: a custom code is already in use (`index` names the batch item). "
        "`conflict`: concurrent writes kept changing the same link; retry.",
        "code_taken",
        "links[1].code: code 'spring-sale' is already taken",
        index=1,
    ),
    413: _error(
        "BodyTooLarge",
        "The body is larger than `ADMIN_MAX_BODY_BYTES`.",
        "body_too_large",
        "request body is too large",
    ),
    415: _error(
        "UnsupportedEncoding",
        "The body's Content-Encoding is none of gzip, deflate and identity.",
        "unsupported_media_type",
        "Content-Encoding 'br' is not supported: send gzip, deflate or none",
    ),
    422: _error(
        "ValidationFailed",
        "The body (or a query parameter) breaks a rule; `fields` names each one. A body that is "
        "JSON but not an object is reported on the field `body`.",
        "validation_failed",
        "links[0].url: scheme must be http or https (and 1 more)",
        fields=[
            {"field": "links[0].url", "message": "scheme must be http or https", "index": 0},
            {"field": "links[2].expires_at", "message": "must be in the future", "index": 2},
        ],
    ),
    429: _error(
        "RateLimited",
        "The key made its `ADMIN_RATE_LIMIT` requests of its 60-second window; `Retry-After` "
        "says in how many seconds the next window starts. Refused requests count too.",
        "rate_limited",
        "this key made its 600 requests of 60 s; try again in 42 s",
    ),
    500: _error(
        "Internal",
        "An unexpected failure; it is logged with its details, which are not sent.",
        "internal",
        "internal error",
    ),
    503: _error(
        "StorageUnavailable",
        "Redis did not answer.",
        "storage_unavailable",
        "the link store is unavailable",
    ),
}
