"""Signing in and out of the dashboard: the session cookie, CSRF tokens, and a session that has
exactly its key's workspace and scopes, ended by the key's revocation within a second."""

from __future__ import annotations

import time

from pytest_aiohttp import AiohttpClient

from redirector.store.connection import Store
from tests.admin.dashboard.pages import browser, csrf_of, expect_page, post_form, sign_in
from tests.admin.helpers import create_campaign, create_key, create_links, create_workspace
from tests.conftest import API_KEY, Client
from tests.waiting import eventually


async def test_sign_in_sets_a_strict_http_only_session_cookie(admin: Client) -> None:
    resp = await admin.get("/dashboard/", allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (303, "/dashboard/signin")
    form = await admin.get("/dashboard/signin")
    token = csrf_of(await expect_page(form, 200))
    resp = await post_form(admin, "/dashboard/signin", {"csrf": token, "key": API_KEY})
    assert resp.status == 303
    cookie = resp.cookies["smsl_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    assert cookie["path"] == "/dashboard" and int(cookie["max-age"]) == 8 * 3600
    assert not cookie["secure"]  # plain http: a Secure cookie would never come back
    page = await admin.get("/dashboard/campaigns")
    assert "Sign out" in await expect_page(page, 200)


async def test_the_cookie_is_secure_behind_https(admin: Client) -> None:
    form = await admin.get("/dashboard/signin")
    token = csrf_of(await form.text())
    resp = await admin.post(
        "/dashboard/signin",
        data={"csrf": token, "key": API_KEY},
        headers={"X-Forwarded-Proto": "https"},
        allow_redirects=False,
    )
    assert resp.status == 303
    assert resp.cookies["smsl_session"]["secure"]


async def test_a_wrong_key_or_a_form_without_its_token_is_refused(admin: Client) -> None:
    form = await admin.get("/dashboard/signin")
    token = csrf_of(await form.text())
    wrong = await post_form(admin, "/dashboard/signin", {"csrf": token, "key": "smsl_" + "x" * 43})
    assert "not accepted" in await expect_page(wrong, 401)
    no_token = await post_form(admin, "/dashboard/signin", {"key": API_KEY})
    await expect_page(no_token, 403)
    other_token = await post_form(admin, "/dashboard/signin", {"csrf": "a" * 43, "key": API_KEY})
    await expect_page(other_token, 403)
    assert "smsl_session" not in admin.session.cookie_jar.filter_cookies(
        admin.make_url("/dashboard/")
    )


async def test_sign_out_ends_the_session(admin: Client) -> None:
    csrf = await sign_in(admin, API_KEY)
    await expect_page(await post_form(admin, "/dashboard/signout", {"csrf": "b" * 43}), 403)
    resp = await post_form(admin, "/dashboard/signout", {"csrf": csrf})
    assert (resp.status, resp.headers["Location"]) == (303, "/dashboard/signin")
    after = await admin.get("/dashboard/campaigns", allow_redirects=False)
    assert (after.status, after.headers["Location"]) == (303, "/dashboard/signin")


async def test_a_session_has_its_keys_workspace_and_scopes(
    admin: Client, aiohttp_client: AiohttpClient
) -> None:
    mine = await create_campaign(admin, name="Root's")
    workspace = await create_workspace(admin)
    [code] = await create_links(admin, mine["id"], [{}])
    key = await create_key(admin, workspace, ["campaigns:read", "links:read", "stats:read"])
    client = await browser(aiohttp_client, admin)
    await sign_in(client, key["key"])
    for page in (f"/dashboard/links/{code}", f"/dashboard/links/{code}/qr.png"):
        await expect_page(await client.get(page), 404)
    await expect_page(await client.get(f"/dashboard/campaigns/{mine['id']}/chart.svg"), 404)
    listed = await expect_page(await client.get("/dashboard/campaigns"), 200)
    assert "Root&#39;s" not in listed and "No campaigns yet" in listed
    await expect_page(await client.get(f"/dashboard/campaigns/{mine['id']}"), 404)
    await expect_page(await client.get("/dashboard/campaigns/new"), 403)
    await expect_page(await client.get(f"/dashboard/campaigns/{mine['id']}/send"), 403)


async def test_revoking_the_key_ends_its_sessions_within_a_second(
    admin: Client, aiohttp_client: AiohttpClient
) -> None:
    workspace = await create_workspace(admin)
    key = await create_key(admin, workspace, ["campaigns:read"])
    client = await browser(aiohttp_client, admin)
    await sign_in(client, key["key"])
    await expect_page(await client.get("/dashboard/campaigns"), 200)
    resp = await admin.delete(f"/api/workspaces/{workspace}/keys/{key['id']}")
    assert resp.status == 204
    revoked = time.monotonic()

    async def signed_out() -> bool:
        resp = await client.get("/dashboard/campaigns", allow_redirects=False)
        return resp.status == 303

    await eventually(signed_out, within=1.0)
    assert time.monotonic() - revoked < 1.0
    # Signing in again with it fails too.
    form = await client.get("/dashboard/signin")
    again = await post_form(
        client, "/dashboard/signin", {"csrf": csrf_of(await form.text()), "key": key["key"]}
    )
    await expect_page(again, 401)


async def test_a_session_expires_in_redis_and_a_forged_cookie_is_nobody(
    admin: Client, aiohttp_client: AiohttpClient, redis: Store
) -> None:
    await sign_in(admin, API_KEY)
    [key] = [k async for k in redis.scan_iter(match="ds:*")]
    assert 8 * 3600 - 60 < await redis.ttl(key) <= 8 * 3600
    token = admin.session.cookie_jar.filter_cookies(admin.make_url("/dashboard/"))
    assert token["smsl_session"].value.encode() not in key  # only its hash is stored
    forged = await browser(aiohttp_client, admin, cookies={"smsl_session": "x" * 43})
    resp = await forged.get("/dashboard/campaigns", allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (303, "/dashboard/signin")
