"""Reading values out of a Prometheus text exposition in tests."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Client


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def metric_value(text: str, name: str) -> float:
    """The value of the sample `name` (with its labels, as exposed), 0 when absent."""
    (wanted,) = _samples(f"{name} 0\n")
    return _samples(text).get(wanted, 0.0)


def growth(before: str, after: str) -> Callable[[str], float]:
    """How much a sample (named as `metric_value` takes it) grew from `before` to `after`."""
    return lambda name: metric_value(after, name) - metric_value(before, name)


async def scrape(client: Client) -> str:
    """GET /metrics, which needs no key."""
    resp = await client.get("/metrics", headers={"Authorization": ""})
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    return await resp.text()
