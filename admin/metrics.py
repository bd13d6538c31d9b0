"""Prometheus metrics of the admin API (prometheus-client).

With several worker processes (admin/server.py) each one writes its values to files under
PROMETHEUS_MULTIPROC_DIR, and whichever worker answers a scrape adds them all up."""

from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from admin.appkeys import settings_key
from admin.errors import Handler
from admin.openapi import Operation

REQUESTS = Counter(
    "smslinks_admin_requests", "Admin API requests, by route and status", ["route", "status"]
)
LATENCY = Histogram("smslinks_admin_request_seconds", "Admin API request time", ["route"])
LINKS_CREATED = Counter("smslinks_links_created", "Links created through the admin API")
REDIS_ERRORS = Counter("smslinks_admin_redis_errors", "Admin requests that failed on Redis")


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    # The route template, not the path: one series per route, not one per link code.
    route = request.match_info.route.resource
    name = route.canonical if route is not None else "unmatched"
    status = 500  # unless the handler answers: an exception that got past the errors middleware
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:  # a redirect, which the errors middleware lets through
        status = exc.status
        raise
    finally:
        REQUESTS.labels(name, str(status)).inc()
        LATENCY.labels(name).observe(time.perf_counter() - started)
        if status == 503:
            REDIS_ERRORS.inc()


@Operation("metrics", "service", media="text/plain")
async def metrics_text(request: web.Request) -> web.StreamResponse:
    registry = REGISTRY
    if request.app[settings_key].metrics_dir is not None:  # several workers: their sum
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return web.Response(
        body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )
