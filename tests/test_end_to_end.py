"""The whole path: an operator creates a campaign and a link through the admin API; a person
taps the short link; the redirector answers 302 to the tagged destination."""

from __future__ import annotations

from tests.conftest import Client


async def test_campaign_link_redirects_to_tagged_destination(
    admin: Client, redirector: Client
) -> None:
    resp = await admin.post("/api/campaigns", json={"name": "Black Friday 🎉", "kind": "campaign"})
    assert resp.status == 201
    campaign = await resp.json()

    resp = await admin.post(
        "/api/links",
        json={"url": "https://Shop.Example/deals?ref=sms#top", "campaign_id": campaign["id"]},
    )
    assert resp.status == 201
    link = await resp.json()
    expected = (
        "https://shop.example/deals?ref=sms&utm_source=instasent&utm_medium=sms"
        "&utm_campaign=Black%20Friday%20%F0%9F%8E%89#top"
    )
    assert link["destination"] == expected
    assert link["short_url"] == f"http://sho.rt/{link['code']}"
    assert len(link["code"]) == 7

    for method in ("GET", "HEAD"):
        resp = await redirector.request(method, f"/{link['code']}", allow_redirects=False)
        assert resp.status == 302
        assert resp.headers["Location"] == expected
        assert resp.headers["Cache-Control"] == "private, max-age=0"
        assert await resp.read() == b""
