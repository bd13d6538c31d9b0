"""Prometheus metrics of the admin API."""

from __future__ import annotations

from tests.conftest import Client
from tests.prometheus import metric_value


async def _scrape(admin: Client) -> str:
    resp = await admin.get("/metrics", headers={"Authorization": ""})
    assert resp.status == 200
    return await resp.text()


async def test_requests_and_links_are_counted(admin: Client) -> None:
    before = await _scrape(admin)
    links = [{"url": f"https://a.example/{i}"} for i in range(3)]
    assert (await admin.post("/api/links/batch", json={"links": links})).status == 201
    assert (await admin.post("/api/links", json={"url": "ftp://x"})).status == 422
    assert (await admin.get("/api/links/nope")).status == 404
    after = await _scrape(admin)

    def delta(name: str) -> float:
        return metric_value(after, name) - metric_value(before, name)

    assert delta("smslinks_links_created_total") == 3
    assert delta('smslinks_admin_requests_total{route="/api/links/batch",status="201"}') == 1
    assert delta('smslinks_admin_requests_total{route="/api/links",status="422"}') == 1
    # One series per route template, not per link code.
    assert delta('smslinks_admin_requests_total{route="/api/links/{code}",status="404"}') == 1
    assert delta('smslinks_admin_request_seconds_count{route="/api/links/batch"}') == 1
