"""Every Redis key name of smslinks, and the key schema's one description.

The redirector reads these keys and the admin writes them; `redirector.store` is the only
part of the redirector the admin imports (`admin -> redirector.store`, never the reverse).
The records stored under these keys are in `redirector.store.record`. Every name is built
by a function or constant here; the Lua scripts (`redirector.store.scripts`) get theirs
in KEYS, and the field names they write in ARGV.

The schema runs unchanged on one Redis and on Redis Cluster. The part of a name between
braces is its hash tag: keys with the same tag live in the same slot, and every multi-key
operation (a script, a MULTI) touches keys of ONE tag. There are four kinds of tag:

- `{xx}`, two hex digits: one of 256 tags of link records. A code's bucket is
  crc32(code) mod 2**16; its high byte is the tag, its low byte the rest of the name.
  Creating, changing or deleting links changes their records AND the campaign link counts
  in one step, so the counts of the links in a tag live in that tag.

    l:{xx}yy          hash   code -> link record (record.py): the personal part of a link,
                             a reference to its campaign's destination, or its destination
                             inline (links without a campaign, and a campaign's links to URLs
                             past its SHARED_DESTINATIONS_MAX), or a tombstone (a deleted
                             link: its code never serves or is handed out again), or an alias
                             (a recipient's chain position taken by a custom code).
                             65,536 small hashes stay listpack-encoded (Redis needs
                             `hash-max-listpack-entries 512`, `hash-max-listpack-value 1024`):
                             a third of the memory of one key per link. Nothing expires.
    n:{xx}            hash   campaign id -> how many of its links have their record in tag xx.
                             A campaign's link count is the sum over the 256 tags
                             (read by counts.py: on one Redis by the one script that
                             reads keys of many tags, never run on a cluster).
                             `r` + campaign id -> how many per-recipient links of it were
                             created in tag xx (`recipient_links_field`): each is an implied
                             send (attribution), so deleting the link does not uncount it.

- `{C}`, a campaign id in decimal (`{-}` for links without a campaign). A flushed click
  updates its link's and its campaign's counters and stream, and a destination is made only
  while its campaign exists: so a campaign's keys, and the click keys of its links, share it.

    c:{C}             hash   campaign: name, kind, utm_source, utm_medium, created_at,
                             code_length (of its recipients' derived codes, fixed at creation),
                             workspace (absent: `default`; see below).
    d:{C}             hash   the campaign's destinations, each stored once: id (base 36) ->
                             destination record; `#<sha1 of that record>` -> its id (to find
                             it again); `#` -> the last id given. An id never changes meaning.
                             At most SHARED_DESTINATIONS_MAX (1,000) per campaign.
    x:{C}             stream one entry per hit (clicks and bot hits) of the campaign's links;
                             fields code, r (recipient), t (unix ms), ua, ref (referer host),
                             h (salted IP+UA hash), bot ("1" for a bot or preview hit). Capped
                             with approximate MAXLEN (CLICK_STREAM_MAXLEN); counters lose nothing.
    s:c:{C}           hash   counters of the campaign; s:l:{C}:<code> of one of its links:
                             clicks, bots, h:{hour} / hb:{hour} (clicks / bot hits in that
                             hour, hour = unix time // 3600), d:{day} / db:{day} (day roll-up);
                             a link's also `created`, the creation time of the link counted.
                             A custom code deleted and created again is another link, made
                             later: the flush that first counts it drops the old one's
                             s:/b:/u:l: keys (or its s:r field, if both are a recipient's),
                             hits of the old one still in flight count for the campaign only,
                             and readers ignore counters whose `created` names another link
                             (between s:l and s:r, the newer one counts).
    b:c:{C}           hash   breakdowns of the campaign's clicks, b:l:{C}:<code> of a link's:
                             dev:{type}, os:{family}, br:{browser}, ref:{host}. At most
                             BREAKDOWN_VALUES_MAX (100) values per breakdown: a value there
                             keeps counting, a new one past that counts as `other` (so a
                             hash stays small, and listpack-encoded, whatever the referers).
    u:c:{C}           HLL    salted IP+UA hashes of clicks on links without recipient;
                             u:l:{C}:<code> of one such link.
    s:r:{C}           hash   code -> the counters of a per-recipient link of the campaign (or
                             without one), one field each instead of s:l/b:l keys of their
                             own (an SMS campaign's links are mostly per recipient and tapped
                             once or twice: two keys per tapped link cost twice the memory
                             and Redis's work per tap): JSON `[created, {stats fields},
                             {breakdown fields}]`, the fields and their rules as s:l/b:l's
                             (redirector/store/linkcounters.py), within
                             RECIPIENT_COUNTERS_MAX bytes. A per-recipient link counted
                             before this field existed keeps those counts in s:l/b:l keys;
                             readers add both when both name the link (`created`). One hash
                             per campaign: ~175 B per tapped link (so ~175 MB for a
                             campaign of a million taps, in one key and one slot).
    k:{C}             zset   recipients who clicked, scored by their first click (unix ms).
    kr:{C}            hash   recipient -> their latest clicks (not bot hits) on the campaign's
                             links, unix ms, space-separated, oldest first, at most
                             CLICK_TIMES_KEPT: what attribution by click asks (a click between
                             a send and a conversion). Written by the flush, like k:{C}.
    al:{C}            hash   the campaign's send ledger, for its report: recipient -> a mark
                             (`+` once their implied send, a per-recipient link, was counted
                             as replaced by a reported one, else `-`), then ` <sent_at ms>:
                             <s|d|f>` for each reported send (sent, delivered, failed). Kept
                             for good: a repeat of a send updates its status, counted once.
    ar:{C}            hash   the campaign's report counters (REPORT_*): reported sends,
                             delivered, failed, replaced (implied sends a reported one
                             replaced), conversions, click / view conversions, and per
                             currency `rev:<CUR>` (revenue, minor units) and `n:<CUR>`.
    ac:{C}            set    order ids counted in ar:{C}: a conversion counts once, even when
                             the request that stored it is retried after a failure.
    f:{C}             hash   raw-hit queue and how its chunks are cut into parts
                             (`hN:<epoch>:p25x250`, clickbatch.part_flusher) -> number of
                             the last part of a chunk of it applied (clickbatch.part_number):
                             a part applied again (its worker died before acking the chunk)
                             is skipped. Expires when idle.

- `{hN}`, N from 0 to HIT_QUEUES - 1: a raw-hit queue. Each redirector process pushes every
  click flush to one queue, picked at start (so a cluster spreads them); click workers
  aggregate them into the keys above (redirector/clicks.py, redirector/clickworker.py).

    hq:{hN}           list   raw hits, one element per flush: a JSON array of hits, each an
                             array of `redirector.clicks.Hit`'s fields in order. Oldest first.
    hs:{hN}           hash   the queue's chunk state: epoch (random, made with the hash: if
                             it is ever lost, chunk numbers start afresh under a new name),
                             number (of the last chunk claimed), size (elements at the head
                             that make the claimed chunk; 0 once it is applied and trimmed),
                             bytes (`<number>:<bytes>`, what its claim counted it to hold),
                             sized (the queue's length when hz:{hN} was last made to fit it).
    hl:{hN}           string id of the click worker holding the claimed chunk; expires (the
                             lease), and then another worker may take the chunk over.
    hz:{hN}           list   the byte sizes of the last elements of hq:{hN} (all of them but
                             after a change), in the same order, for the claim's budget,
                             while hq:{hN} is as long as `sized` says: redirector/store/
                             hitqueue.py ("Sizes").
    hp:{hN}:<sender>  string the last flush number a redirector process (a random id) pushed
                             here: a flush sent again, its first reply lost, is pushed once.
                             Expires a day after the last push.

- `{<key id>}`, an API key's id (`root-` and 12 hex digits for a root key): the admin's rate
  limit (admin/ratelimit.py). One key per API key, touched by one script alone; its tag is the
  key id, so that anything counted per key later can join it in that one script.

    rl:{<key id>}     string requests made with the key in its current window (ADMIN_RATE_LIMIT
                             per RATE_WINDOW seconds); the first request of a window makes it,
                             with that window's expiry, so a window is fixed and starts with
                             its first request.

- `{<ws>:xx}`, a workspace id and two hex digits: one of 256 tags per workspace of the
  attribution state of its recipients and orders (admin/service/sends.py, conversions.py). A
  recipient's sends are one key, so one script call (one per tag on a cluster, at most 256
  per batch) writes a batch's sends; recipients are opaque bytes, hashed for their tag.

    as:{<ws>:xx}<recipient>
                      string the recipient's reported sends that a window can still reach
                             (not failed): `<campaign>:<sent_at ms>:<delivered_at ms or ''>`,
                             space-separated. Expires (PXAT) when the last of them can no
                             longer be reached, so it holds days of sends at most.
    ao:{<ws>:xx}yy    hash   order id -> the conversion as stored (JSON: recipient, amount in
                             minor units, currency, occurred_at ms, campaign id or null, type
                             or null), bucketed by crc32(order id) as links are (yy the low
                             byte): 65,536 small hashes per workspace stay listpack-encoded.

- No tag (single keys, never in a multi-key operation):

    campaigns         zset   campaign id scored by creation time, for listing: those of the
                             workspace `default` (all campaigns made before workspaces were).
    seq:campaign      string INCR counter that hands out campaign ids.
    cfg:click_salt    string random salt of the IP+UA hashes, made once (secret.py).
    cfg:code_key      string random key of the per-recipient codes (record.py), made once.
    links:invalidate  pub/sub channel: space-separated codes whose record changed; every
                      redirector drops them from its in-process cache.

  Workspaces, API keys and the audit log (the admin's; the redirector reads none of them).
  Each step of an operation on them writes one key, in an order that leaves nothing unsafe
  when it stops midway (admin/service/access.py). Everything stored before workspaces
  existed belongs to `default` (DEFAULT_WORKSPACE), which has no hash: it always exists. A
  campaign's workspace is a field of its hash (absent: `default`), and its links are its
  campaign's: nothing per link. A link without campaign outside `default` carries its
  workspace in its record (`~<ws>` in the campaign field, record.py): a few bytes, and only
  there.

    w:<ws>            hash   a workspace: name, created_at. Ids are w1, w2, ... (WORKSPACE_ID).
    seq:workspace     string INCR counter that hands out workspace ids.
    wc:<ws>           zset   as `campaigns`, for the workspace's campaigns (`default`: `campaigns`).
    ak:<key id>       hash   an API key: workspace, name, scopes (space-separated), hash (the
                             SHA-256 of the key, hex; the key itself is stored nowhere),
                             created_at, expires_at (absent: never), last_used_at (written at
                             most once a minute). The id is the first 16 hex digits of the hash.
    wk:<ws>           set    the ids of the workspace's keys, for listing.
    wl:<ws>           zset   campaign id -> the last time (unix s) a per-recipient link of it
                             was created: the campaigns where a conversion looks for implied
                             sends (the recipient's link, found on their chain of codes).
    wa:<ws>           stream the workspace's audit log: one entry per write request, fields
                             key (its id), action (the operationId), target, at (unix ms);
                             capped with approximate MAXLEN (AUDIT_MAXLEN).

- The dashboard's (admin/dashboard): single keys that expire; the tag of a send job's two
  keys is its id, so that one MULTI writes a batch's progress and its links together.

    ds:{<digest>}     hash   a dashboard session, found by the SHA-256 of its cookie's token
                             (hex; the token itself is stored nowhere): key (the id of the API
                             key it acts as, `root-...` for a root key), csrf (the token of its
                             forms), expires_at. Expires with the session (DASHBOARD_SESSION_TTL).
    sj:{<job>}        hash   a send of the dashboard (a CSV of recipients made into links):
                             workspace, campaign, key, rows, done, created, state, error,
                             started_at, updated_at. Expires SEND_JOB_TTL after its last change.
    so:{<job>}        list   its links CSV so far, one element per batch of rows, in file order.

A per-recipient link needs no index: its code is derived from (campaign, recipient) with
`cfg:code_key` (admin/codes.py), k = 0, 1, ... until a free position or the recipient's own
record, so the record is its own index (31 B/link less than a recipient hash).

The layout of the releases before this schema, and the scripts that move a store of it here
(`python -m admin migrate`), are in `redirector.store.legacy`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence

BUCKET_MASK = 0xFFFF

CAMPAIGNS_KEY = "campaigns"
CAMPAIGN_SEQ_KEY = "seq:campaign"
WORKSPACE_SEQ_KEY = "seq:workspace"
CLICK_SALT_KEY = "cfg:click_salt"
CODE_KEY = "cfg:code_key"
INVALIDATION_CHANNEL = "links:invalidate"

# Settings the link store relies on to stay compact (see the module docstring).
REDIS_MEMORY_CONFIG = {"hash-max-listpack-entries": 512, "hash-max-listpack-value": 1024}

RESERVED_CODES = frozenset({"api", "healthz", "metrics", "admin", "static"})
# Every code a link can have (custom or drawn), anchored for JSON Schema; use it with fullmatch.
CODE_PATTERN = "^[A-Za-z0-9_-]{3,64}$"

# Two hex digits of each byte: building a key name per link of a batch is a concatenation.
_HEX = tuple(format(byte, "02x") for byte in range(256))
# The 256 link-record tags, as `link_tag` gives them.
LINK_TAGS = _HEX


def link_tag(code: str) -> str:
    """The hash tag of `code`'s record: the high byte of its bucket."""
    return _HEX[(zlib.crc32(code.encode()) & BUCKET_MASK) >> 8]


def link_key(code: str) -> str:
    """The hash that holds `code`'s record (the field is the code itself)."""
    return _link_hashes(_buckets((code,)))[0]


def link_keys(code: str) -> tuple[str, str]:
    """`link_key(code)` and the link-count hash of its tag, written together."""
    [bucket] = _buckets((code,))
    return _link_hashes((bucket,))[0], link_count_key(_HEX[bucket >> 8])


def link_hashes(codes: Iterable[str]) -> list[str]:
    """`link_key` of each of `codes`, column by column (the miss path's read: ~0.4 µs a code
    less than a call per code, 2026-12-01)."""
    return _link_hashes(_buckets(codes))


def script_link_keys(codes: Sequence[str]) -> tuple[list[str], list[int]]:
    """The `link_keys` of many codes as a script takes them: KEYS, that is each code's link
    hash in order (KEYS[i] for the i-th code, counting from 1 as Lua does; codes may share
    one) and then the link-count hash of each of their tags once; and for each code the index
    in KEYS of its count hash. Column by column, with no call per code."""
    buckets = _buckets(codes)
    tags = [bucket >> 8 for bucket in buckets]
    count_at = {tag: at for at, tag in enumerate(dict.fromkeys(tags), len(codes) + 1)}
    keys = _link_hashes(buckets)
    keys += [link_count_key(_HEX[tag]) for tag in count_at]
    return keys, list(map(count_at.__getitem__, tags))


def _buckets(codes: Iterable[str]) -> list[int]:
    return [zlib.crc32(code.encode()) & BUCKET_MASK for code in codes]


def _link_hashes(buckets: Iterable[int]) -> list[str]:
    """The link hash of each bucket: its tag's prefix and its low byte."""
    return [_LINK_HASHES[bucket >> 8] + _HEX[bucket & 0xFF] for bucket in buckets]


# The start of the link hashes' names, by tag; the low byte of the bucket ends them.
_LINK_HASHES = tuple("l:{" + tag + "}" for tag in _HEX)


def link_count_key(tag: str) -> str:
    """Campaign id -> its links whose record is in tag `tag`."""
    return "n:{" + tag + "}"


def _campaign_tag(campaign_id: int | None) -> str:
    return "{-}" if campaign_id is None else f"{{{campaign_id}}}"


def campaign_key(campaign_id: int) -> str:
    return "c:" + _campaign_tag(campaign_id)


def destinations_key(campaign_id: int) -> str:
    return "d:" + _campaign_tag(campaign_id)


# Fields of d:{C} besides the destinations' ids: the id counter, and the prefix of the
# field that finds a destination's id from its record's SHA-1.
DESTINATION_SEQ = "#"
DESTINATION_HASH_PREFIX = "#"
# How many destinations a campaign shares at most; its links to any further URL hold it
# inline. Sharing pays when a URL serves many links; a campaign with a URL per recipient
# (a personal cart, say) would otherwise grow one hash, on one cluster node, by a record
# and a finder per link, and churn the redirectors' destination cache.
SHARED_DESTINATIONS_MAX = 1_000


def click_stream_key(campaign_id: int | None) -> str:
    return "x:" + _campaign_tag(campaign_id)


def flush_key(campaign_id: int | None) -> str:
    return "f:" + _campaign_tag(campaign_id)


# Fields of a click stream entry (see the module docstring); FLUSH_CLICKS gets them as arguments.
EVENT_CODE, EVENT_RECIPIENT, EVENT_TIME, EVENT_BOT = "code", "r", "t", "bot"
EVENT_USER_AGENT, EVENT_REFERER_HOST, EVENT_VISITOR_HASH = "ua", "ref", "h"


# Raw-hit queues: enough tags to spread over a cluster's masters, few enough to poll.
HIT_QUEUES = 16


def _queue_tag(queue: int) -> str:
    return f"{{h{queue}}}"


def hit_queue_key(queue: int) -> str:
    return "hq:" + _queue_tag(queue)


def hit_chunk_key(queue: int) -> str:
    return "hs:" + _queue_tag(queue)


def hit_lease_key(queue: int) -> str:
    return "hl:" + _queue_tag(queue)


def hit_sizes_key(queue: int) -> str:
    return "hz:" + _queue_tag(queue)


def hit_pushed_key(queue: int, sender: str) -> str:
    return f"hp:{_queue_tag(queue)}:{sender}"


def link_stats_key(campaign_id: int | None, code: str) -> str:
    return f"s:l:{_campaign_tag(campaign_id)}:{code}"


def campaign_stats_key(campaign_id: int) -> str:
    return "s:c:" + _campaign_tag(campaign_id)


def link_breakdowns_key(campaign_id: int | None, code: str) -> str:
    return f"b:l:{_campaign_tag(campaign_id)}:{code}"


def campaign_breakdowns_key(campaign_id: int) -> str:
    return "b:c:" + _campaign_tag(campaign_id)


def link_uniques_key(campaign_id: int | None, code: str) -> str:
    return f"u:l:{_campaign_tag(campaign_id)}:{code}"


def campaign_uniques_key(campaign_id: int) -> str:
    return "u:c:" + _campaign_tag(campaign_id)


def recipient_counters_key(campaign_id: int | None) -> str:
    return "s:r:" + _campaign_tag(campaign_id)


def clickers_key(campaign_id: int) -> str:
    return "k:" + _campaign_tag(campaign_id)


# Fields of the stats hashes (see the module docstring). The flush script builds the
# per-hour, per-day and breakdown fields from these prefixes, which it gets as arguments.
CLICKS = "clicks"
BOTS = "bots"
LINK_CREATED = "created"  # of a link's counters: the creation time of the link they count
HOUR_PREFIX, BOT_HOUR_PREFIX = "h:", "hb:"
DAY_PREFIX, BOT_DAY_PREFIX = "d:", "db:"
BREAKDOWNS = {"device": "dev:", "os": "os:", "browser": "br:", "referer": "ref:"}
# The most values a breakdown of a link or campaign keeps (referer hosts are the visitors'
# to choose); the clicks of any further value count under BREAKDOWN_OTHER.
BREAKDOWN_VALUES_MAX = 100
BREAKDOWN_OTHER = "other"
# A per-recipient link's counters (its s:r field, JSON) take no new field that would bring
# them past this many bytes: each flush of a link tapped before reads the value held, and
# the click worker decodes it, adds to it and sends it back (linkcounters.merged), so its
# size bounds what one person tapping their own link from ever more hours or referers costs
# per flush (~300 distinct hours of taps, or some 15 long referer hosts; a real recipient's
# is ~100 B). Past it the link's totals and the fields it holds keep counting, new breakdown
# values count as BREAKDOWN_OTHER, and new hours and days go to the campaign's counters only.
RECIPIENT_COUNTERS_MAX = 4096
HOUR = 3600
DAY = 86400


def hour_field(hour: int, *, bot: bool = False) -> str:
    return f"{BOT_HOUR_PREFIX if bot else HOUR_PREFIX}{hour}"


def day_field(day: int, *, bot: bool = False) -> str:
    return f"{BOT_DAY_PREFIX if bot else DAY_PREFIX}{day}"


# -- workspaces, API keys, audit (single keys: see the module docstring) --------------------

# Where everything belongs that was made before workspaces, and what root keys act in.
DEFAULT_WORKSPACE = "default"
# A workspace id: `default`, or `w` and the base-36 number `seq:workspace` gave. No `|` (it
# goes into link records) and short (a link without campaign outside `default` holds it).
WORKSPACE_ID = "^(default|w[0-9a-z]{1,12})$"
# Audit entries kept per workspace (approximate: Redis trims whole stream nodes at a time).
AUDIT_MAXLEN = 100_000


def workspace_key(workspace: str) -> str:
    return "w:" + workspace


def workspace_campaigns_key(workspace: str) -> str:
    return CAMPAIGNS_KEY if workspace == DEFAULT_WORKSPACE else "wc:" + workspace


def api_key_key(key_id: str) -> str:
    return "ak:" + key_id


def workspace_api_keys_key(workspace: str) -> str:
    return "wk:" + workspace


def audit_key(workspace: str) -> str:
    return "wa:" + workspace


# -- the dashboard (admin/dashboard; see the module docstring) ------------------------------

# Seconds a send job's progress and links CSV are kept after its last change: a send takes
# seconds, and sending the same file again gives the same links, so an hour is plenty.
SEND_JOB_TTL = 3600


def dashboard_session_key(digest: str) -> str:
    return "ds:{" + digest + "}"


def send_job_key(job_id: str) -> str:
    return "sj:{" + job_id + "}"


def send_output_key(job_id: str) -> str:
    return "so:{" + job_id + "}"


# -- the admin's rate limit (see the module docstring) ----------------------------------------

# Seconds of one rate-limit window: ADMIN_RATE_LIMIT is a number of requests per window.
RATE_WINDOW = 60


RATE_WINDOW_PREFIX = "rl:"


def rate_window_key(key_id: str) -> str:
    return RATE_WINDOW_PREFIX + "{" + key_id + "}"


# -- attribution (see the module docstring) -------------------------------------------------

# The fields of ar:{C}, and the prefixes of its per-currency fields.
REPORT_SENDS, REPORT_DELIVERED, REPORT_FAILED, REPORT_REPLACED = (
    "sends", "delivered", "failed", "replaced"
)  # fmt: skip
REPORT_CONVERSIONS, REPORT_CLICK, REPORT_VIEW = "conversions", "click", "view"
REVENUE_PREFIX, CONVERSIONS_PREFIX = "rev:", "n:"
# The latest clicks per recipient and campaign that kr:{C} keeps: a conversion needs one
# between its send and itself, so only clicks made after it can hide an earlier one.
CLICK_TIMES_KEPT = 8


def recipient_links_field(campaign_id: int) -> str:
    """The field of n:{xx} that counts the campaign's per-recipient links (implied sends)."""
    return f"r{campaign_id}"


def recipient_clicks_key(campaign_id: int) -> str:
    return "kr:" + _campaign_tag(campaign_id)


def send_ledger_key(campaign_id: int) -> str:
    return "al:" + _campaign_tag(campaign_id)


def report_key(campaign_id: int) -> str:
    return "ar:" + _campaign_tag(campaign_id)


def counted_orders_key(campaign_id: int) -> str:
    return "ac:" + _campaign_tag(campaign_id)


def active_campaigns_key(workspace: str) -> str:
    return "wl:" + workspace


def _bucket(text: str) -> int:
    return zlib.crc32(text.encode()) & BUCKET_MASK


def attribution_tag(workspace: str, text: str) -> str:
    """The hash tag of a recipient's (or an order's) attribution keys in `workspace`."""
    return "{" + workspace + ":" + _HEX[_bucket(text) >> 8] + "}"


def recipient_sends_key(workspace: str, recipient: str) -> str:
    return "as:" + attribution_tag(workspace, recipient) + recipient


def order_key(workspace: str, order_id: str) -> str:
    """The hash that holds the conversion of `order_id` (the field is the order id)."""
    bucket = _bucket(order_id)
    return "ao:{" + workspace + ":" + _HEX[bucket >> 8] + "}" + _HEX[bucket & 0xFF]
