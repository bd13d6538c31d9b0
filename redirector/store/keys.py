"""Every Redis key name of smslinks, and the key schema's one description.

The redirector reads these keys and the admin writes them; `redirector.store` is the only
part of the redirector the admin imports (`admin -> redirector.store`, never the reverse).
The record stored under a link's key is in `redirector.store.record`. Every name is built
by a function or constant here; the Lua scripts (`redirector.store.scripts`) get theirs
in KEYS, and the field names they write (stats prefixes, click event fields, the campaign's
link counter) in ARGV.

Key schema (all keys live in one Redis database). The braces below are placeholders, not Redis
Cluster hash tags: this schema runs on a single Redis only.

    l:{bucket}          hash   code -> encoded Link record. `bucket` is crc32(code) mod 2**16,
                               in hex. Bucketing keeps each hash small enough to stay
                               listpack-encoded (Redis needs `hash-max-listpack-entries 512`
                               and `hash-max-listpack-value 1024`), which costs ~1/3 of the
                               memory of one string key per link. No expiry: a link lives
                               until it is deleted; `expires_at` inside the record makes the
                               redirector answer 410 after that time.
    r:{bucket}          hash   "{campaign_id}:{recipient}" -> code, the idempotency index of
                               per-recipient links (campaign_id is "" for links without one).
                               Same bucketing, by crc32 of the field. No expiry.
    c:{id}              hash   campaign: name, kind, utm_source, utm_medium, created_at,
                               links (count). No expiry.
    campaigns           zset   campaign id scored by creation time, for listing.
    seq:campaign        string INCR counter that hands out campaign ids.
    links:invalidate    pub/sub channel: space-separated codes whose record changed; every
                        redirector drops them from its in-process cache.

Clicks (written by the redirector in batches, read by the admin's stats API):

    x:{campaign_id}     stream  one entry per hit (clicks and bot hits) of the campaign's links,
                                "x:-" for links without a campaign; fields code, r (recipient),
                                t (unix ms), ua, ref (referer host), h (salted IP+UA hash),
                                bot ("1" for a bot or preview hit). Capped with approximate
                                MAXLEN (CLICK_STREAM_MAXLEN, default 1,000,000 per campaign):
                                the oldest events go first; the counters below never lose any.
    s:l:{code}          hash    counters of one link, s:c:{campaign_id} of a campaign:
                                clicks, bots, h:{hour} / hb:{hour} (clicks / bot hits in that
                                hour, hour = unix time // 3600), d:{day} / db:{day} (day roll-up,
                                day = unix time // 86400). No expiry.
    b:l:{code}          hash    breakdowns of a link's clicks, b:c:{campaign_id} of a
                                campaign's: dev:{type}, os:{family}, br:{browser}, ref:{host}.
                                Apart from s:*, so reading them (HGETALL) costs the number of
                                distinct values, not the number of hours with clicks.
    u:l:{code}          HLL     salted IP+UA hashes of a link's clicks (links without recipient);
    u:c:{campaign_id}   HLL     the same for a campaign's links without recipient.
    k:{campaign_id}     zset    recipients who clicked, scored by their first click (unix ms);
                                exact, as a per-recipient campaign is bounded by its recipients.
    cfg:click_salt      string  random salt of the IP+UA hashes, made once (SET NX).
"""

from __future__ import annotations

import zlib

BUCKET_BITS = 16
BUCKET_MASK = (1 << BUCKET_BITS) - 1

CAMPAIGNS_KEY = "campaigns"
CAMPAIGN_SEQ_KEY = "seq:campaign"
INVALIDATION_CHANNEL = "links:invalidate"

# Settings the link store relies on to stay compact (see the module docstring).
REDIS_MEMORY_CONFIG = {"hash-max-listpack-entries": 512, "hash-max-listpack-value": 1024}

RESERVED_CODES = frozenset({"api", "healthz", "metrics", "admin", "static"})
# Every code a link can have (custom or drawn), anchored for JSON Schema; use it with fullmatch.
CODE_PATTERN = "^[A-Za-z0-9_-]{3,64}$"


def _bucket(text: str) -> str:
    return format(zlib.crc32(text.encode()) & BUCKET_MASK, "x")


def link_key(code: str) -> str:
    """The hash that holds `code`'s record (the field is the code itself)."""
    return "l:" + _bucket(code)


def recipient_field(campaign_id: int | None, recipient: str) -> str:
    return f"{'' if campaign_id is None else campaign_id}:{recipient}"


def recipient_key(field: str) -> str:
    """The hash that maps a `recipient_field(...)` to its link's code."""
    return "r:" + _bucket(field)


def campaign_key(campaign_id: int) -> str:
    return f"c:{campaign_id}"


# The field of a campaign's hash that counts its links.
CAMPAIGN_LINKS = "links"


CLICK_SALT_KEY = "cfg:click_salt"


def click_stream_key(campaign_id: int | None) -> str:
    return "x:" + ("-" if campaign_id is None else str(campaign_id))


# Fields of a click stream entry (see the module docstring); FLUSH_CLICKS gets them as arguments.
EVENT_CODE, EVENT_RECIPIENT, EVENT_TIME, EVENT_BOT = "code", "r", "t", "bot"
EVENT_USER_AGENT, EVENT_REFERER_HOST, EVENT_VISITOR_HASH = "ua", "ref", "h"


def link_stats_key(code: str) -> str:
    return "s:l:" + code


def campaign_stats_key(campaign_id: int) -> str:
    return f"s:c:{campaign_id}"


def link_breakdowns_key(code: str) -> str:
    return "b:l:" + code


def campaign_breakdowns_key(campaign_id: int) -> str:
    return f"b:c:{campaign_id}"


def link_uniques_key(code: str) -> str:
    return "u:l:" + code


def campaign_uniques_key(campaign_id: int) -> str:
    return f"u:c:{campaign_id}"


def clickers_key(campaign_id: int) -> str:
    return f"k:{campaign_id}"


# Fields of the stats hashes (see the module docstring). The flush script builds the
# per-hour, per-day and breakdown fields from these prefixes, which it gets as arguments.
CLICKS = "clicks"
BOTS = "bots"
HOUR_PREFIX, BOT_HOUR_PREFIX = "h:", "hb:"
DAY_PREFIX, BOT_DAY_PREFIX = "d:", "db:"
BREAKDOWNS = {"device": "dev:", "os": "os:", "browser": "br:", "referer": "ref:"}
HOUR = 3600
DAY = 86400


def hour_field(hour: int, *, bot: bool = False) -> str:
    return f"{BOT_HOUR_PREFIX if bot else HOUR_PREFIX}{hour}"


def day_field(day: int, *, bot: bool = False) -> str:
    return f"{BOT_DAY_PREFIX if bot else DAY_PREFIX}{day}"
