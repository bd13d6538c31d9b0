"""The in-process cache on its own: bounds, TTLs, switch, invalidation generation."""

from __future__ import annotations

from redirector.cache import ABSENT, LinkCache
from redirector.store.record import Link

LINK = Link("https://a.example/", created_at=1)


def _cache(size: int = 3, ttl: float = 10.0, miss_ttl: float = 1.0, absent: int = 3) -> LinkCache:
    cache = LinkCache(size, ttl, miss_ttl, absent)
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


def test_unknown_codes_are_bounded_apart_and_never_evict_a_link() -> None:
    cache = _cache(size=3, absent=2)
    for code in "abc":
        cache.put(code, LINK, now=0.0)
    for i in range(100):  # a scan of code-shaped paths
        cache.put(f"unknown{i}", None, now=0.0)
    assert [cache.get(code, now=0.5) for code in "abc"] == [LINK] * 3
    assert len(cache) == 3
    known = [i for i in range(100) if cache.get(f"unknown{i}", now=0.5) is ABSENT]
    assert known == [98, 99]  # the newest, as many as the bound


def test_a_code_cached_as_a_link_is_no_longer_unknown() -> None:
    cache = _cache(size=1)
    cache.put("x", None, now=0.0)
    cache.put("x", LINK, now=0.1)  # created since, and read again
    cache.put("y", LINK, now=0.2)  # evicts x's link: x is then asked of Redis, not a 404
    assert cache.get("x", now=0.3) is None


def test_disabled_or_zero_sized_cache_stores_nothing() -> None:
    cache = LinkCache(10, 10.0, 1.0, 10)
    cache.put("a", LINK, now=0.0)
    cache.put("b", None, now=0.0)
    assert cache.get("a", now=0.0) is None and cache.get("b", now=0.0) is None
    zero = _cache(size=0, absent=0)
    zero.put("a", LINK, now=0.0)
    zero.put("b", None, now=0.0)
    assert zero.get("a", now=0.0) is None and zero.get("b", now=0.0) is None


def test_discard_and_clear_bump_generation() -> None:
    cache = _cache()
    cache.put("a", LINK, now=0.0)
    cache.put("b", LINK, now=0.0)
    cache.put("c", None, now=0.0)
    g = cache.generation
    cache.discard("a")
    cache.discard("c")
    assert cache.get("a", now=0.0) is None and cache.get("b", now=0.0) is LINK
    assert cache.get("c", now=0.0) is None
    cache.put("c", None, now=0.0)
    cache.clear()
    assert cache.get("b", now=0.0) is None and cache.get("c", now=0.0) is None
    assert cache.generation == g + 3
