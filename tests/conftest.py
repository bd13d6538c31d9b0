"""Fixtures: a real redis-server started for the test session (or TEST_REDIS_URL), emptied
before every test, a local Redis Cluster for the cluster tests, and both apps built through
their factories."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from openapi_schema_validator import OAS31Validator, oas31_format_checker
from pytest_aiohttp import AiohttpClient
from redis.asyncio import Redis

from admin.app import create_app as create_admin
from admin.openapi import document
from admin.settings import AdminSettings
from redirector.app import create_app as create_redirector
from redirector.app import invalidation_ready_key
from redirector.settings import Settings
from tests.redis_cluster import RedisCluster
from tests.redis_server import RedisServer

API_KEY = "test-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
PUBLIC_BASE_URL = "http://sho.rt"

Client = TestClient[web.Request, web.Application]


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


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """TEST_REDIS_URL if given (its database is FLUSHED before each test), else a
    redis-server of our own on a free port."""
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


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, which the test may stop and start again."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
def admin_settings(redis_url: str) -> AdminSettings:
    return AdminSettings(api_keys=(API_KEY,), redis_url=redis_url, public_base_url=PUBLIC_BASE_URL)


@pytest.fixture
def redirector_settings(redis_url: str) -> Settings:
    return Settings(redis_url=redis_url)


@pytest.fixture
async def admin(
    aiohttp_client: AiohttpClient, admin_settings: AdminSettings, redis: Redis
) -> Client:
    return await aiohttp_client(create_admin(admin_settings), headers=AUTH)


@pytest.fixture
async def redirector(
    aiohttp_client: AiohttpClient, redirector_settings: Settings, redis: Redis
) -> Client:
    app = create_redirector(redirector_settings)
    client = await aiohttp_client(app)
    await app[invalidation_ready_key].wait()
    return client
