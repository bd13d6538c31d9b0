"""The in-process cache on its own: bound, TTLs, switch, invalidation generation."""

from __future__ import annotations

from redirector.cache import ABSENT, LinkCache
from redirector.store.record import Link

LINK = Link("https://a.example/", created_at=1)


def _cache(size: int = 3, ttl: float = 10.0, miss_ttl: float = 1.0) -> LinkCache:
    cache = LinkCache(size, ttl, miss_ttl)
    cache.enabled = True
    return cache


def test_hit_until_ttl_then_miss() -> None:
    cache = _cache()
    cache.put("a", LINK, now=100.0)
    assert cache.get("a", now=109.9) is LINK
    assert cache.get("a", now=110.0) is None
    assert len(cache) == 0


def test_misses_are_cached_for_the_shorter_ttl() -> None:
    cache = _cache()
    cache.put("nope", None, now=100.0)
    assert cache.get("nope", now=100.5) is ABSENT
    assert cache.get("nope", now=101.0) is None


def test_bounded_first_in_first_out() -> None:
    cache = _cache(size=3)
    for i, code in enumerate("abcd"):
        cache.put(code, LINK, now=float(i))
    assert len(cache) == 3
    assert cache.get("a", now=5.0) is None
    assert cache.get("d", now=5.0) is LINK
    cache.put("d", LINK, now=6.0)  # replacing an entry evicts nothing
    assert {c for c in "bcd" if cache.get(c, now=6.0) is LINK} == {"b", "c", "d"}


def test_disabled_or_zero_sized_cache_stores_nothing() -> None:
    cache = LinkCache(10, 10.0, 1.0)
    cache.put("a", LINK, now=0.0)
    assert cache.get("a", now=0.0) is None
    zero = _cache(size=0)
    zero.put("a", LINK, now=0.0)
    assert zero.get("a", now=0.0) is None


def test_discard_and_clear_bump_generation() -> None:
    cache = _cache()
    cache.put("a", LINK, now=0.0)
    cache.put("b", LINK, now=0.0)
    g = cache.generation
    cache.discard("a")
    assert cache.get("a", now=0.0) is None and cache.get("b", now=0.0) is LINK
    cache.clear()
    assert cache.get("b", now=0.0) is None
    assert cache.generation == g + 2
