"""Fixtures: a real redis-server started for the test session (or TEST_REDIS_URL), emptied
before every test, a local Redis Cluster for the cluster tests, and both apps built through
their factories, with a click worker beside the redirector.

Every test that uses the store through these fixtures runs once per store kind named in
TEST_STORE (comma-separated, `single` and/or `cluster`; default `single`): against the
single redis-server, and against the local cluster with both apps in REDIS_CLUSTER mode."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, asynccontextmanager
from functools import cache
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import BaseTestServer, TestClient
from openapi_schema_validator import OAS31Validator, oas31_format_checker
from pytest_aiohttp import AiohttpClient
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster as ClusterClient

from admin.app import create_app as create_admin
from admin.openapi import document
from admin.settings import AdminSettings
from redirector.app import create_app as create_redirector
from redirector.appkeys import invalidation_ready_key
from redirector.clickworker import WORKER_REDIS_TIMEOUT, ClickWorker, worker_for
from redirector.runner import RedirectorRunner
from redirector.settings import Settings
from redirector.store import connection
from redirector.store.connection import Durability, Store, connect
from tests.redis_cluster import RedisCluster
from tests.redis_server import RedisServer

API_KEY = "test-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
PUBLIC_BASE_URL = "http://sho.rt"

Client = TestClient[web.Request, web.Application]
STORE_KINDS = ("single", "cluster")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "failover: kills a Redis Cluster master (deselect with -m 'not failover')"
    )


def _store_kinds() -> list[str]:
    kinds = [kind.strip() for kind in os.environ.get("TEST_STORE", "single").split(",")]
    unknown = set(kinds) - set(STORE_KINDS)
    if unknown:
        raise pytest.UsageError(f"TEST_STORE: unknown store kinds {sorted(unknown)}")
    return kinds


@cache
def openapi_document() -> dict[str, Any]:
    """The admin's OpenAPI document, as its app builds it at start-up."""
    return document(create_admin(AdminSettings(api_keys=(API_KEY,))))


def schema_errors(instance: Any, name: str) -> list[str]:
    """Why `instance` breaks a component schema, its `$ref`s resolved within the document."""
    schema = {
        "$ref": f"#/components/schemas/{name}",
        "components": openapi_document()["components"],
    }
    validator = OAS31Validator(schema, format_checker=oas31_format_checker)
    return [error.message for error in validator.iter_errors(instance)]


@pytest.fixture(scope="session", params=_store_kinds())
def store_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture(scope="session")
def redis_url(
    store_kind: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A node of the local cluster; or TEST_REDIS_URL if given (its database is FLUSHED
    before each test), else a redis-server of our own on a free port."""
    if store_kind == "cluster":
        cluster: RedisCluster = request.getfixturevalue("redis_cluster")
        yield cluster.url
        return
    given = os.environ.get("TEST_REDIS_URL")
    if given:
        yield given
        return
    server = RedisServer(Path(tmp_path_factory.mktemp("redis")))
    server.start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A local Redis Cluster of 3 masters and 3 replicas, started once for the session."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.skip("Redis Cluster tests need redis-server and redis-cli on PATH")
    cluster = RedisCluster(Path(tmp_path_factory.mktemp("cluster")))
    cluster.start()
    yield cluster
    cluster.stop()


Unconfirmed = Callable[[str], AbstractContextManager[Durability]]


@pytest.fixture
def unconfirmed(store_kind: str, request: pytest.FixtureRequest) -> Unconfirmed:
    """`with unconfirmed(key) as durability:` no replica confirms a write of `key` meanwhile,
    and `durability` asks for one: the redis-server has none; on the cluster the replica of
    the key's master is frozen."""

    @contextlib.contextmanager
    def stalled(key: str) -> Iterator[Durability]:
        if store_kind != "cluster":
            yield Durability(1, 50)
            return
        cluster: RedisCluster = request.getfixturevalue("redis_cluster")
        with cluster.paused(cluster.replica_of(key)):
            # A count of replicas seen within the last second (run_replicated trusts it that
            # long) may date from an earlier test's failover, when this master had none.
            connection.forget_replica_counts()
            yield Durability(1, 200)

    return stalled


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, which the test may stop and start again."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def redis(
    redis_url: str, store_kind: str, request: pytest.FixtureRequest
) -> AsyncIterator[Store]:
    """A client of the store, emptied first: every master of the cluster, or the database."""
    client: Store
    if store_kind == "cluster":
        request.getfixturevalue("redis_cluster").flushall()
        client = await ClusterClient.from_url(redis_url).initialize()
    else:
        client = Redis.from_url(redis_url)
        await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
def admin_settings(redis_url: str, store_kind: str) -> AdminSettings:
    return AdminSettings(
        api_keys=(API_KEY,),
        redis_url=redis_url,
        redis_cluster=store_kind == "cluster",
        public_base_url=PUBLIC_BASE_URL,
    )


@pytest.fixture
def redirector_settings(redis_url: str, store_kind: str) -> Settings:
    return Settings(redis_url=redis_url, redis_cluster=store_kind == "cluster")


@pytest.fixture
async def admin(
    aiohttp_client: AiohttpClient, admin_settings: AdminSettings, redis: Store
) -> Client:
    return await aiohttp_client(create_admin(admin_settings), headers=AUTH)


@asynccontextmanager
async def running_click_worker(settings: Settings) -> AsyncIterator[ClickWorker]:
    """A click worker on the settings' store, in this event loop, as `python -m redirector`
    runs one beside its redirect workers (it looks at idle queues more often here)."""
    store = connect(
        settings.redis_url, timeout=WORKER_REDIS_TIMEOUT, cluster=settings.redis_cluster
    )
    worker = worker_for(store, settings.model_copy(update={"click_flush_interval": 0.02}))
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await store.aclose()


@pytest.fixture
async def click_worker(redirector_settings: Settings, redis: Store) -> AsyncIterator[ClickWorker]:
    async with running_click_worker(redirector_settings) as worker:
        yield worker


class RedirectorServer(BaseTestServer):
    """The redirector app served as `python -m redirector` serves it (RedirectorRunner: aiohttp's
    low-level server), on a free port."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        self.app = app
        super().__init__(**kwargs)

    async def _make_runner(self, **kwargs: Any) -> RedirectorRunner:
        return RedirectorRunner(self.app, **kwargs)


async def redirector_client(aiohttp_client: AiohttpClient, app: web.Application) -> Client:
    """A client of `app` served over real HTTP (`client.app` is `app`)."""
    return cast(Client, await aiohttp_client(RedirectorServer(app)))


@pytest.fixture
async def redirector(
    aiohttp_client: AiohttpClient,
    redirector_settings: Settings,
    redis: Store,
    click_worker: ClickWorker,
) -> Client:
    app = create_redirector(redirector_settings)
    client = await redirector_client(aiohttp_client, app)
    await app[invalidation_ready_key].wait()
    return client
