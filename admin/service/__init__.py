"""The admin's operations over Redis, one module per use case; no HTTP here (see `admin.api`).

campaigns  create, get and list campaigns
plan       a batch of new links planned before anything is written (pure, no Redis)
links      create links (checking and writing a plan), get, update and delete them
store      the link store as the admin uses it: records read, chains walked, groups written
stats      click analytics over what the redirector records
workspaces create and find workspaces
keys       API keys: made, listed, deleted, and each request's key found
audit      the audit log: an entry per write request, pages of it
sessions   the dashboard's sessions: made by signing in with a key, found by their cookie
send_jobs  the dashboard's sends: a CSV's rows made into links in batches, progress, links CSV
ratelimit  the requests each API key may still make in its window
sends      sends recorded for attribution and their campaigns' reports
conversions conversions attributed (admin.attribution) and stored once per order id
implied    implied sends: recipients' per-recipient links, found on their chains
report     a campaign's attribution report, from its counters
migration  `python -m admin migrate`: a store of the layout before the tagged key schema moved
           into it; legacy_store, the reads and writes it makes
"""

from __future__ import annotations


def as_text(value: bytes | str) -> str:
    """A value read from Redis as str (undecodable bytes, never expected, become U+FFFD)."""
    return value.decode(errors="replace") if isinstance(value, bytes) else value
