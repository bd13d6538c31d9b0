"""Locust: people tapping short links, and now and then an operator creating links.

    python -m loadtests.seed --links 100000
    locust -f loadtests/locustfile.py --headless -u 50 -r 50 --run-time 1m \
        --host http://127.0.0.1:8080

`Tapper` (almost every user) taps codes from the seeder's codes file in a Zipf mix, a few hot
links and a long cold tail, plus a small share of unknown codes, and fails any answer that is
not the 302 to the expected destination (or the 404). `AdminUser` creates single links and
small batches on the admin API at a low rate, so the redirector is measured while its cache
is being invalidated.

Environment (read once, at import):
    LOCUST_CODES_FILE     codes file (default loadtests/codes.txt)
    LOCUST_UNKNOWN_SHARE  share of taps on unknown codes (default 0.02)
    LOCUST_ZIPF_S         Zipf exponent of the mix; 0 is uniform (default 1.0)
    LOCUST_TAP_WAIT       seconds a tapper waits between taps (default 0: flat out)
    LOCUST_ADMIN_URL      admin API base URL (default http://127.0.0.1:8081)
    ADMIN_API_KEYS        admin key (first of the list; default .data/dev-api-key)
    LOCUST_ALLOW_REMOTE   1 to allow hosts other than loopback (needed in docker compose)
"""

from __future__ import annotations

import logging
import os
import random
from functools import cache
from typing import Any

from locust import FastHttpUser, User, between, constant, events, task
from locust.contrib.fasthttp import FastHttpSession
from locust.env import Environment
from locust.exception import StopTest
from locust.runners import MasterRunner

from loadtests.codes import (
    DEFAULT_ADMIN_URL,
    DEFAULT_CODES_FILE,
    CodeMix,
    CodesFileError,
    RemoteHostRefused,
    admin_key,
    allow_remote,
    load_codes,
    recipient,
    require_loopback,
)

log = logging.getLogger(__name__)

CODES_FILE = os.environ.get("LOCUST_CODES_FILE", str(DEFAULT_CODES_FILE))
UNKNOWN_SHARE = float(os.environ.get("LOCUST_UNKNOWN_SHARE", "0.02"))
ZIPF_S = float(os.environ.get("LOCUST_ZIPF_S", "1.0"))
TAP_WAIT = float(os.environ.get("LOCUST_TAP_WAIT", "0"))
ADMIN_URL = os.environ.get("LOCUST_ADMIN_URL", DEFAULT_ADMIN_URL).rstrip("/")
ALLOW_REMOTE = allow_remote(os.environ)
ADMIN_BATCH = 100  # links per admin batch request: an automation's burst, not a bulk import


class MissingAdminKey(Exception):
    """AdminUser runs but no admin key is configured."""


@cache
def code_mix() -> CodeMix:
    """Loaded once per Locust process, on first use (the module imports without the file)."""
    return CodeMix(load_codes(CODES_FILE), s=ZIPF_S, unknown_share=UNKNOWN_SHARE)


@cache
def admin_auth() -> dict[str, str]:
    """The admin's Authorization header, once the admin URL passed the loopback guard."""
    require_loopback(ADMIN_URL, allow_remote=ALLOW_REMOTE, what="LOCUST_ADMIN_URL")
    key = admin_key(os.environ)
    if not key:
        raise MissingAdminKey("no admin key: set ADMIN_API_KEYS (or run `make run` once)")
    return {"Authorization": f"Bearer {key}"}


# locust's add_listener is untyped; the listener itself is fully typed.
@events.test_start.add_listener  # type: ignore[untyped-decorator]
def check_setup(environment: Environment, **_: Any) -> None:
    """Stop the whole run at its start with one clear message, rather than fail every user's
    first request: a remote host not allowed, no admin key, a missing or malformed codes file."""
    try:
        if environment.host:  # without one, FastHttpUser stops the run with its own message
            require_loopback(environment.host, allow_remote=ALLOW_REMOTE, what="--host")
        if AdminUser in environment.user_classes:  # `locust ... Tapper` leaves it out
            admin_auth()
        if Tapper in environment.user_classes and not isinstance(
            environment.runner,
            MasterRunner,  # the master runs no users: its workers tap
        ):
            mix = code_mix()
            log.info(
                "%d codes from %s, %.0f%% unknown", len(mix.links), CODES_FILE, UNKNOWN_SHARE * 100
            )
    except (RemoteHostRefused, MissingAdminKey, CodesFileError) as exc:
        environment.process_exit_code = 2
        raise StopTest(str(exc)) from None  # logged by Locust, which then stops the run


class Tapper(FastHttpUser):
    """A person tapping the short link in an SMS."""

    weight = 100
    wait_time = constant(TAP_WAIT)

    def on_start(self) -> None:
        self.mix = code_mix()
        self.rng = random.Random()

    @task
    def tap(self) -> None:
        link = self.mix.pick(self.rng)
        if link is None:
            self.expect(f"/{self.mix.unknown_code(self.rng)}", "/[unknown]", 404, None)
        else:
            self.expect(f"/{link.code}", "/[code]", 302, link.destination)

    def expect(self, path: str, name: str, status: int, location: str | None) -> None:
        with self.client.get(path, name=name, allow_redirects=False, catch_response=True) as resp:
            if resp.status_code != status:
                resp.failure(f"expected {status}, got {resp.status_code}")
            elif location is not None and resp.headers.get("Location") != location:
                # One message for every code, so Locust's failure table keeps one row for it.
                resp.failure("Location is not the link's destination")
            else:
                resp.success()  # a 404 counts as a success when it was the expected answer


class AdminUser(User):
    """An operator's integration creating links. Its host is the admin API, not --host (which
    Locust imposes on every user class), so it talks through a session of its own."""

    weight = 1
    wait_time = between(1, 3)

    def on_start(self) -> None:
        request_event = self.environment.events.request
        self.api = FastHttpSession(ADMIN_URL, request_event, self, headers=admin_auth())
        self.rng = random.Random()
        self.campaign_id = self.create_campaign()

    def create_campaign(self) -> int | None:
        body = {"name": f"locust admin {self.rng.getrandbits(32):08x}", "kind": "automation"}
        with self.api.post(
            "/api/campaigns", json=body, name="/api/campaigns", catch_response=True
        ) as resp:
            if resp.status_code != 201:
                resp.failure(f"expected 201, got {resp.status_code}: {resp.text[:200]}")
                return None
            campaign_id: int = resp.json()["id"]
            return campaign_id

    def new_recipient(self) -> str:
        # Random numbers, so concurrent admin users (and runs) rarely repeat one; a repeat is
        # answered 200 with the existing link, which is fine too.
        return recipient(self.rng.randrange(100_000_000, 200_000_000))

    @task(3)
    def create_link(self) -> None:
        body = {
            "url": f"https://shop.example/offer?r={self.rng.getrandbits(40)}",
            "campaign_id": self.campaign_id,
            "recipient": self.new_recipient(),
        }
        with self.api.post("/api/links", json=body, name="/api/links", catch_response=True) as resp:
            if resp.status_code not in (200, 201):
                resp.failure(f"expected 201, got {resp.status_code}: {resp.text[:200]}")

    @task(1)
    def create_batch(self) -> None:
        links = [
            {"url": f"https://shop.example/welcome?n={i}", "recipient": self.new_recipient()}
            for i in range(ADMIN_BATCH)
        ]
        body = {"campaign_id": self.campaign_id, "links": links}
        with self.api.post(
            "/api/links/batch", json=body, name="/api/links/batch", catch_response=True
        ) as resp:
            if resp.status_code != 201:
                resp.failure(f"expected 201, got {resp.status_code}: {resp.text[:200]}")
            elif len(resp.json()["links"]) != ADMIN_BATCH:
                resp.failure("the batch answer does not hold one link per item")
