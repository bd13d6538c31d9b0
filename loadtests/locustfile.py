"""Locust: people tapping short links, and now and then an operator creating links.

`Tapper` taps the seeder's codes in a Zipf mix plus a share of unknown codes, each tap with a
real-world browser's User-Agent (`loadtests/user_agents.txt`, mostly phones: Locust's own is an
HTTP library's, a bot hit), and fails any answer but the 302 to the expected destination (or the
404); `AdminUser` creates links on the admin API at a low rate, so the redirector is measured
while its cache is invalidated. Usage and the LOCUST_* variables (read once, at import): README,
"Load tests (Locust)".
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

from loadtests import seed as seeder
from loadtests.codes import CodeMix, CodesFileError, load_codes
from loadtests.user_agents import load_user_agents

log = logging.getLogger(__name__)

CODES_FILE = os.environ.get("LOCUST_CODES_FILE", str(seeder.DEFAULT_CODES_FILE))
UNKNOWN_SHARE = float(os.environ.get("LOCUST_UNKNOWN_SHARE", "0.02"))
ZIPF_S = float(os.environ.get("LOCUST_ZIPF_S", "1.0"))
TAP_WAIT = float(os.environ.get("LOCUST_TAP_WAIT", "0"))
ADMIN_URL = os.environ.get("LOCUST_ADMIN_URL", seeder.DEFAULT_ADMIN_URL).rstrip("/")
ALLOW_REMOTE = seeder.allow_remote(os.environ)
ADMIN_API_KEYS = os.environ.get("ADMIN_API_KEYS", "")
ADMIN_BATCH = 100  # links per admin batch request: an automation's burst, not a bulk import


@cache
def code_mix() -> CodeMix:
    """Loaded once per Locust process, on first use (the module imports without the file)."""
    return CodeMix(load_codes(CODES_FILE), exponent=ZIPF_S, unknown_share=UNKNOWN_SHARE)


@cache
def user_agent_mix() -> list[str]:
    return [user_agent.string for user_agent in load_user_agents()]


@cache
def admin_auth() -> dict[str, str]:
    """The admin's Authorization header, once the admin URL passed the loopback guard."""
    seeder.require_loopback(ADMIN_URL, allow_remote=ALLOW_REMOTE, what="LOCUST_ADMIN_URL")
    return {"Authorization": f"Bearer {seeder.admin_key(ADMIN_API_KEYS)}"}


# locust's add_listener is untyped; the listener itself is fully typed.
@events.test_start.add_listener  # type: ignore[untyped-decorator]
def check_setup(environment: Environment, **_: Any) -> None:
    """Stop the whole run at its start with one clear message, rather than fail every user's
    first request: a remote host not allowed, no admin key, a missing or malformed codes file."""
    try:
        if environment.host:  # without one, FastHttpUser stops the run with its own message
            seeder.require_loopback(environment.host, allow_remote=ALLOW_REMOTE, what="--host")
        if AdminUser in environment.user_classes:  # `locust ... Tapper` leaves it out
            admin_auth()
        # The master runs no users: its workers tap.
        if Tapper in environment.user_classes and not isinstance(environment.runner, MasterRunner):
            mix = code_mix()
            log.info(
                "%d codes from %s, %.0f%% unknown", len(mix.links), CODES_FILE, UNKNOWN_SHARE * 100
            )
    except (seeder.RemoteHostRefused, seeder.SeedError, CodesFileError) as exc:
        environment.process_exit_code = 2
        raise StopTest(str(exc)) from None  # logged by Locust, which then stops the run


class Tapper(FastHttpUser):
    """A person tapping the short link in an SMS."""

    weight = 100
    wait_time = constant(TAP_WAIT)

    def on_start(self) -> None:
        self.mix = code_mix()
        self.user_agents = user_agent_mix()
        self.rng = random.Random()

    @task
    def tap(self) -> None:
        link = self.mix.pick(self.rng)
        if link is None:
            self.expect(f"/{self.mix.unknown_code(self.rng)}", "/[unknown]", 404, None)
        else:
            self.expect(f"/{link.code}", "/[code]", 302, link.destination)

    def expect(self, path: str, name: str, status: int, location: str | None) -> None:
        # Each tap is another recipient's, on a phone of the mix.
        headers = {"User-Agent": self.rng.choice(self.user_agents)}
        options: dict[str, Any] = {"allow_redirects": False, "catch_response": True}
        with self.client.get(path, name=name, headers=headers, **options) as resp:
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
        body = {"name": f"locust admin {self.rng.getrandbits(32):08x}", "kind": "automation"}
        created = self.post("/api/campaigns", body)
        self.campaign_id = None if created is None else int(created["id"])

    def post(self, path: str, body: dict[str, Any], statuses: tuple[int, ...] = (201,)) -> Any:
        """The JSON answer, or None once the failure is recorded."""
        with self.api.post(path, json=body, name=path, catch_response=True) as resp:
            if resp.status_code not in statuses:
                resp.failure(f"expected {statuses[0]}, got {resp.status_code}: {resp.text[:200]}")
                return None
            answer = resp.json()
            if isinstance(body.get("links"), list) and len(answer["links"]) != len(body["links"]):
                resp.failure("the batch answer does not hold one link per item")
            return answer

    def new_recipient(self) -> str:
        # Random numbers, so concurrent admin users (and runs) rarely repeat one; a repeat is
        # answered 200 with the existing link, which is fine too.
        return seeder.recipient(self.rng.randrange(100_000_000, 200_000_000))

    @task(3)
    def create_link(self) -> None:
        url = f"https://shop.example/offer?r={self.rng.getrandbits(40)}"
        body = {"url": url, "campaign_id": self.campaign_id, "recipient": self.new_recipient()}
        self.post("/api/links", body, (201, 200))

    @task(1)
    def create_batch(self) -> None:
        links = [
            {"url": f"https://shop.example/welcome?n={i}", "recipient": self.new_recipient()}
            for i in range(ADMIN_BATCH)
        ]
        self.post("/api/links/batch", {"campaign_id": self.campaign_id, "links": links})
