"""The one Redis client factory of both apps, the settings base both apps read the same way,
and two helpers for a Redis Cluster's failovers: riding one out (`with_failover`), and losing
no acknowledged write to one (`run_replicated`).

Settings are pydantic-settings models that read nothing when constructed: `Settings(...)` in
code and tests takes only its arguments, so a developer's exported REDIS_URL cannot leak into a
test. Only `from_env(env)` reads variables, from the mapping it is given (`os.environ`, in each
`__main__`). A blank value means unset everywhere: the default applies, or a required variable
is "not set". Validation errors become one `SettingsError` line that names each variable.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Self, TypeVar
from urllib.parse import urlsplit

from pydantic import AliasGenerator, Field, ValidationError, ValidationInfo, field_validator
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, PipelineCommand
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.commands.core import AsyncScript
from redis.connection import HiredisRespSerializer
from redis.exceptions import (
    ClusterDownError,
    MovedError,
    NoScriptError,
    RedisClusterException,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import EncodableT

# The link store: one redis-server, or a Redis Cluster (REDIS_CLUSTER=true).
Store = Redis | RedisCluster
StorePipeline = Pipeline | ClusterPipeline
T = TypeVar("T")


def connect(url: str, *, timeout: float, cluster: bool = False) -> Store:
    """A client for `url` whose commands (and connects) give up after `timeout` seconds. On a
    cluster `url` names any one node: the client finds the others (and forgets that one if it
    dies). After a failover it needs no re-creating: the first command that fails marks the
    topology stale and the next one re-reads it; to make ONE call outlive a failover, run it
    through `with_failover` (tests/test_redis_cluster.py records why no option does that)."""
    if cluster:
        return _Cluster.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, dynamic_startup_nodes=True
        )
    return Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        connection_class=HiredisPackedConnection,
    )


class HiredisPackedConnection(Connection):
    """Commands packed by hiredis, in C, as redis-py's sync client does; its asyncio client
    packs in a Python loop per argument, 8 ms of a batch's CREATE_LINKS call with ~10,000
    KEYS against 3.5 ms. The connection of every node of a cluster too (`_Cluster`)."""

    _serializer = HiredisRespSerializer()

    def pack_command(self, *args: EncodableT) -> list[bytes]:
        # redis-py annotates `pack(*args: List)`, though it takes the arguments themselves.
        return self._serializer.pack(*args)  # type: ignore[arg-type, no-any-return]

    async def send_packed_command(
        self, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        """A connection that the server closed while it waited in the pool (Redis restarted)
        is connected afresh, once, before a command goes out on it. redis-py's pool checks
        for that when it hands a connection out, but not while maintenance notifications are
        on, which redis-py 8.1 turns on by default (redis/redis-py#4252): the first command
        after a restart failed. Safe for every write because nothing was sent on the dead
        connection: the command goes out once, on the new one. A command that fails after it
        was sent (Redis died mid-call) is not sent again: it may have run, and a script such
        as a campaign's creation would run twice (a second id drawn)."""
        reader, writer = self._reader, self._writer
        if reader is not None and (reader.at_eof() or reader.exception() is not None):
            await self.disconnect()
        elif writer is not None and writer.transport.is_closing():
            await self.disconnect()  # reset by the peer: uvloop's write would raise RuntimeError
        try:
            await super().send_packed_command(command, check_health)
        except AttributeError as exc:
            # Closed by another task while this one sent (under a socket timeout redis-py
            # writes in a task of its own on Python 3.11, whose asyncio.wait_for makes one,
            # and a cluster client's failover handling closes its node's connections, in use
            # or not, without waiting): redis-py then writes on no writer (redis/redis-py#4287,
            # #3546). Nothing was sent: a lost connection, which callers retry or answer 503,
            # not an AttributeError (a 500). Any other AttributeError is a bug, raised as is.
            if exc.name != "writelines" or exc.obj is not None:
                raise
            raise RedisConnectionError(
                "the connection was closed while a command was sent"
            ) from exc


class OwnConnection:
    """A connection of one caller's own, taken from a single Redis client's pool for good (the
    client's aclose closes it with the others), for a hot path's commands: sent and read on
    it, a command skips the client's pool, retries and hooks (~45 µs of CPU a call here).
    One command at a time. A command that finds it busy, or fails on it for any reason but
    a script's own error (a dropped connection, NOSCRIPT: redis-py's connection disconnects
    itself, a cancellation too), is given to `fallback`, the same command through the
    client, which reconnects, retries and loads scripts: so only commands safe to send twice
    come here."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._connection: Connection | None = None
        self._busy = False

    async def command(self, fallback: Callable[[], Awaitable[Any]], *args: EncodableT) -> Any:
        """`args` sent as one command, packed by the connection; its reply."""
        return await self._call(lambda connection: connection.pack_command(*args), fallback)

    async def packed(self, fallback: Callable[[], Awaitable[Any]], parts: list[bytes]) -> Any:
        """A command already in RESP, its `parts` written in turn (under uvloop none is
        copied; asyncio's own loop joins them); its reply."""
        return await self._call(lambda _: parts, fallback)

    async def _call(
        self, pack: Callable[[Connection], list[bytes]], fallback: Callable[[], Awaitable[Any]]
    ) -> Any:
        if not self._busy:
            self._busy = True
            try:
                connection = self._connection
                if connection is None:
                    pool = self._redis.connection_pool
                    connection = await pool.get_connection()  # type: ignore[no-untyped-call]
                    self._connection = connection
                await connection.send_packed_command(pack(connection))
                return await connection.read_response()
            except RedisError as exc:
                if isinstance(exc, ResponseError) and not isinstance(exc, NoScriptError):
                    raise  # the script's own error: the client would get the same
            finally:
                self._busy = False
        return await fallback()


def resp(*args: bytes | str | int) -> list[bytes]:
    """A command in RESP as parts to write in turn: a large argument goes out as it is."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bool):  # as redis-py refuses it, not b"True"
            raise TypeError("a bool is no Redis argument")
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts += (b"$%d\r\n" % len(data), data, b"\r\n")
    return parts


class _Cluster(RedisCluster):
    """No node answering is a ConnectionError, as on a single node, so that the apps answer
    503 (redis-py raises a RedisClusterException, which is no RedisError). Its nodes'
    connections are `HiredisPackedConnection`s: redis-py's asyncio RedisCluster takes no
    connection class (it sets its own), so the one its nodes are built with is replaced."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The nodes found later are built from these; the startup nodes already were.
        if self.connection_kwargs.get("connection_class") is Connection:  # not SSL
            self.connection_kwargs["connection_class"] = HiredisPackedConnection
            for node in self.nodes_manager.startup_nodes.values():
                node.connection_class = HiredisPackedConnection

    async def initialize(self, *args: Any, **kwargs: Any) -> RedisCluster:
        try:
            return await super().initialize(*args, **kwargs)
        except RedisClusterException as exc:
            raise RedisConnectionError(str(exc)) from exc


class NotReplicated(RedisError):
    """A write went through on its master, but fewer replicas than asked confirmed it within
    the wait: a failover now could lose it, so it must not be acknowledged (retry it)."""


MAX_REDIRECTIONS = 3
# A master's slots move to its replica ~2 s after it dies (cluster-node-timeout 1000 ms plus
# the election); these backoffs add up to about 6 s, so one failover is ridden out.
RIDES_OUT_FAILOVER = Retry(
    ExponentialWithJitterBackoff(base=0.05, cap=0.5),
    retries=20,
    supported_errors=(RedisConnectionError, RedisTimeoutError, ClusterDownError),
)


async def _ignore(error: Exception) -> None:
    """`Retry` reports each failure here; the last one is raised anyway."""


async def with_failover(operation: Callable[[], Awaitable[T]]) -> T:
    """`operation()`, called again (with backoff) while its node is unreachable or its slots
    have no master yet, until it succeeds or a failover's worth of time has passed. Only for
    reads and for writes that are safe to apply twice: a write whose reply was lost may have
    been applied. On a single node it only delays the error while Redis is down."""
    return await RIDES_OUT_FAILOVER.call_with_retry(operation, _ignore)


@dataclass(frozen=True, slots=True)
class Durability:
    """How many replicas must hold a write before it is acknowledged, and how long to wait."""

    replicas: int
    timeout_ms: int

    def within(self, command_timeout: float) -> Durability:
        """The same, but waiting at most half of `command_timeout` (seconds), the timeout of
        the client that sends the WAIT: a longer wait would end as that client's timeout
        error, which drops the connection (in the redirector, one the redirects share)."""
        return Durability(self.replicas, max(1, min(self.timeout_ms, int(command_timeout * 500))))


# Acknowledge once the master has it (one Redis, or when no replica is asked for).
NO_WAIT = Durability(0, 0)


async def run_replicated(
    store: Store,
    script: AsyncScript,
    keys: Sequence[str],
    args: Sequence[EncodableT],
    durability: Durability,
) -> Any:
    """Run `script` and return its reply once its writes are on `durability.replicas` replicas,
    or on every replica its master has when that is fewer: a master left alone by a failover
    (its old master not back as its replica yet) acknowledges on its own write, since no
    failover could save that shard anyway, rather than refusing every write until an operator
    restarts a node.

    WAIT counts the writes of its own connection, so it goes right behind the script on the
    connection that ran it (on a cluster: of the master of the first key). Raises
    `NotReplicated` (a RedisError: the admin answers 503) when fewer replicas confirm; the
    write may then be on the master, so run only scripts that are safe to run again. Keep
    the wait under the client's timeout, or a slow replica becomes a timeout error."""
    if durability.replicas == 0:
        return await script(keys=keys, args=args)
    # EVAL, not EVALSHA: a replica promoted since has never seen the script (Redis caches it
    # by its digest all the same).
    command = ("EVAL", script.script, len(keys), *keys, *args)
    if isinstance(store, Redis):
        wanted = durability.replicas
        async with store.pipeline(transaction=False) as pipe:
            pipe.execute_command(*command)
            pipe.execute_command("WAIT", wanted, durability.timeout_ms)
            reply, replicas = await pipe.execute()
    else:
        reply, replicas, wanted = await _run_and_wait_on_cluster(
            store, keys[0], command, durability
        )
    if replicas < wanted:
        raise NotReplicated(f"{replicas} of {wanted} replicas confirmed a write")
    return reply


# How long a master's count of connected replicas (ROLE) is trusted before it is asked again.
REPLICAS_TTL = 1.0
_replicas_seen: dict[str, tuple[float, int]] = {}


def forget_replica_counts() -> None:
    """Ask every master again on its next write (tests: a count from before a failover)."""
    _replicas_seen.clear()


async def _connected_replicas(node: ClusterNode) -> int:
    seen = _replicas_seen.get(node.name)
    if seen is not None and seen[0] > time.monotonic():
        return seen[1]
    role = await node.execute_command("ROLE")
    count = len(role[2]) if role[0] in (b"master", "master") else 0
    _replicas_seen[node.name] = (time.monotonic() + REPLICAS_TTL, count)
    return count


async def _run_and_wait_on_cluster(
    store: RedisCluster, key: str, command: tuple[EncodableT, ...], durability: Durability
) -> tuple[Any, int, int]:
    """The reply, the replicas that confirmed, and how many were asked for. The script and its
    WAIT go on one connection of the key's master by hand: the cluster pipeline would retry a
    failed part alone on another connection, where a WAIT counts nothing. A MOVED slot is
    looked up and tried again (the script did not run); an error that may mean a failover
    drops that node's connections and makes the client read the topology afresh for the next
    command, leaving other calls in flight alone."""
    for _ in range(MAX_REDIRECTIONS):
        await store.initialize()  # the slots map, read first or again after a failure
        node = store.nodes_manager.get_node_from_slot(store.keyslot(key))
        try:
            wanted = min(durability.replicas, await _connected_replicas(node))
            sent = [PipelineCommand(0, *command)]
            if wanted:
                sent.append(PipelineCommand(1, "WAIT", wanted, durability.timeout_ms))
            await node.execute_pipeline(sent)
            for part in sent:
                if isinstance(part.result, Exception):
                    raise part.result
        except MovedError as moved:
            await store.nodes_manager.move_slot(moved)
            continue
        except (RedisConnectionError, RedisTimeoutError, ClusterDownError):
            await _forget(store, node)
            raise
        confirmed = sent[1].result if wanted else 0
        return sent[0].result, int(confirmed), wanted  # type: ignore[arg-type]  # checked above
    raise NotReplicated(f"the slot kept moving ({MAX_REDIRECTIONS} redirections)")


async def _forget(store: RedisCluster, node: ClusterNode) -> None:
    """What the client itself does when a command fails so: only this node's connections are
    dropped (those in use once done, as other calls may be using them), it is asked last, and
    the topology is read again before the next call."""
    node.update_active_connections_for_reconnect()
    await node.disconnect_free_connections()
    store.nodes_manager.move_node_to_end_of_cached_nodes(node.name)
    store._initialize = True


class SettingsError(ValueError):
    """A setting in the environment is missing or has a bad value; the message names it."""


class StoreSettings(BaseSettings):
    """What both apps share: where the store is, how writes are made durable, and reading and
    checking the environment."""

    # A field's variable is its name in upper case (exactly that case) unless it names its own.
    model_config = SettingsConfigDict(
        frozen=True,
        case_sensitive=True,
        alias_generator=AliasGenerator(validation_alias=str.upper),
        validate_by_name=True,
        validate_by_alias=True,
    )

    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_cluster: bool = False
    # Replicas that must confirm a link's write before it is acknowledged (None: 1 on a
    # cluster, where a failover would otherwise lose it, else 0), and how long to wait.
    redis_wait_replicas: Annotated[int | None, Field(ge=0, le=16)] = None
    redis_wait_timeout: Annotated[int, Field(ge=1, le=60_000)] = 1000

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"redis", "rediss", "unix"} or not (parts.hostname or parts.path):
            raise ValueError(f"must be a redis://, rediss:// or unix:// URL: {value!r}")
        return value

    @field_validator("redis_cluster")
    @classmethod
    def _cluster_url(cls, cluster: bool, info: ValidationInfo) -> bool:
        parts = urlsplit(info.data.get("redis_url", ""))
        if cluster and (parts.scheme == "unix" or parts.path.strip("/") not in {"", "0"}):
            raise ValueError("needs a redis:// or rediss:// REDIS_URL of database 0")
        return cluster

    @property
    def durability(self) -> Durability:
        replicas = self.redis_wait_replicas
        if replicas is None:
            replicas = 1 if self.redis_cluster else 0
        return Durability(replicas, self.redis_wait_timeout)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Constructor arguments only: `from_env` alone reads variables (see the docstring).
        return (init_settings,)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Self:
        try:
            return cls(**_GivenEnv(cls, env)())
        except ValidationError as exc:
            fields = _variables(cls)
            raise SettingsError("; ".join(_message(fields, e) for e in exc.errors())) from None


def _variables(settings_cls: type[BaseSettings]) -> dict[str, FieldInfo]:
    """Each field under its variable's name."""
    return {str(field.validation_alias): field for field in settings_cls.model_fields.values()}


class _GivenEnv(EnvSettingsSource):
    """The model's variables in `env`, trimmed; blank ones are left out, so they count as unset.
    (Only those exact names: pydantic-settings would also match a field's own name.)"""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        names = _variables(settings_cls).keys()
        self._given = {name: env[name].strip() for name in names if env.get(name, "").strip()}
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return self._given


def _message(fields: Mapping[str, FieldInfo], error: ErrorDetails) -> str:
    """One error as a sentence about its variable (`from_env` validates by variable name)."""
    name = str(error["loc"][0])
    field, given = fields[name], error["input"]
    match error["type"]:
        case "missing":
            return f"{name} is not set" + (f": {field.description}" if field.description else "")
        case "int_parsing" | "int_from_float":
            return f"{name} must be a whole number, got {given!r}"
        case "float_parsing":
            return f"{name} must be a number, got {given!r}"
        case "bool_parsing":
            return f"{name} must be true or false, got {given!r}"
        case "greater_than_equal" | "less_than_equal" | "greater_than" | "less_than":
            return f"{name} must be {_bounds(field)}, got {given}"
        case "value_error":
            return f"{name} {error.get('ctx', {}).get('error')}"
    return f"{name}: {error['msg']}"


_BOUND_WORDS = {"ge": "at least", "gt": "more than", "le": "at most", "lt": "less than"}


def _bounds(field: FieldInfo) -> str:
    """The field's range in words, from whichever bounds it has: 'between 1 and 64',
    'at least 1', 'more than 0 and at most 10'."""
    found = {
        bound: value
        for bound in _BOUND_WORDS
        for rule in field.metadata
        if (value := getattr(rule, bound, None)) is not None
    }
    if found.keys() == {"ge", "le"}:
        return f"between {found['ge']} and {found['le']}"
    return " and ".join(f"{_BOUND_WORDS[bound]} {value}" for bound, value in found.items())
