"""A throw-away Redis Cluster for the tests: 3 masters and 3 replicas on free ports, each node in
its own temporary directory, with the short node timeout that makes a failover take seconds."""

from __future__ import annotations

import contextlib
import itertools
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from redis import Redis
from redis.crc import key_slot
from redis.exceptions import RedisError

from redirector.store.keys import REDIS_MEMORY_CONFIG
from tests.redis_server import DEBUG_COMMAND, free_port

NODE_COUNT = 6
SLOT_COUNT = 16384
# Redis Cluster nodes gossip on their port + 10000; that port must be free as well.
BUS_PORT_OFFSET = 10000


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_node_ports(count: int) -> list[int]:
    """`count` free ports whose cluster-bus ports are free too, none clashing with another's."""
    taken: set[int] = set()
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        bus_port = port + BUS_PORT_OFFSET
        if bus_port > 65535 or {port, bus_port} & taken or not _bindable(bus_port):
            continue
        taken |= {port, bus_port}
        ports.append(port)
    return ports


def _poll(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"Redis Cluster: {what} not within {within}s")
        time.sleep(0.05)


def _node(port: int) -> Redis:
    return Redis(
        host="127.0.0.1",
        port=port,
        decode_responses=True,
        socket_timeout=2,
        socket_connect_timeout=2,
    )


class SlotUnserved(RuntimeError):
    """No master serves a slot in some node's view (for a moment during a failover)."""


class RedisCluster:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.nodes = free_node_ports(NODE_COUNT)
        self._processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        """The URL of one running node (a client finds the others from it)."""
        return f"redis://127.0.0.1:{self.running()[0]}/0"

    def start(self) -> None:
        cli = shutil.which("redis-cli")
        if cli is None or shutil.which("redis-server") is None:
            raise RuntimeError("redis-server or redis-cli is not on PATH (apt-get install redis)")
        try:
            for port in self.nodes:
                self._launch(port)
            addresses = [f"127.0.0.1:{port}" for port in self.nodes]
            create = [cli, "--cluster", "create", *addresses]
            create += ["--cluster-replicas", "1", "--cluster-yes"]
            created = subprocess.run(create, capture_output=True, text=True, timeout=60)
            if created.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed:\n{created.stdout}")
            self._wait_ready()
            for port in self.running():
                if self.master_of(port) is not None:
                    self._wait_streaming(port)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for process in self._processes.values():
            process.terminate()
        for process in self._processes.values():
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes.clear()

    def masters(self) -> list[int]:
        """The ports of the running nodes that are masters now."""
        return [port for port in self.running() if self._replication(port)["role"] == "master"]

    def master_of(self, port: int) -> int | None:
        """The port of the master that the replica on `port` follows; None for a master."""
        replication = self._replication(port)
        return int(replication["master_port"]) if replication["role"] == "slave" else None

    def flushall(self) -> None:
        """Empty every master; the replicas follow."""
        for port in self.masters():
            with _node(port) as client:
                client.flushall()

    def replica_of(self, key: str) -> int:
        """The port of a replica of the master that serves `key`'s slot."""
        master = self._owner(self.running()[0], key)
        return next(port for port in self.running() if self.master_of(port) == master)

    def master_serving(self, key: str) -> int:
        """The port of the master that serves `key`'s slot."""
        return self._owner(self.running()[0], key)

    def kill_master(self, key: str) -> int:
        """SIGKILL the master that serves `key`'s slot, as a crash would; return its port."""
        return self.kill(self._owner(self.running()[0], key))

    def kill(self, port: int) -> int:
        """SIGKILL the node on `port`, as a crash would; return its port."""
        process = self._processes.pop(port)
        process.send_signal(signal.SIGKILL)
        process.wait()
        return port

    def wait_failover(self, key: str, within: float = 30.0) -> int:
        """Wait until a running node (the promoted replica) serves `key`'s slot in every node's
        view and every node says `cluster_state:ok`; return that node's port."""
        owners: set[int] = set()

        def promoted() -> bool:
            owners.clear()
            try:
                owners.update(self._owner(port, key) for port in self.running())
                return owners <= set(self.running()) and len(owners) == 1 and self._all_ok()
            except (RedisError, SlotUnserved):
                return False  # mid-failover a node may briefly list no master for the slot

        _poll(promoted, within, f"failover of {key!r}'s slot")
        return owners.pop()

    def wait_replicated(self) -> None:
        """Wait until every replica has applied all its master's writes so far: replication is
        asynchronous, and a SIGKILLed master takes what its replica had not received with it."""

        def caught_up() -> bool:
            for port in self.masters():
                master = self._replication(port)
                replica = self._replication(int(master["slave0"]["port"]))
                if replica["slave_repl_offset"] < master["master_repl_offset"]:
                    return False
            return True

        _poll(caught_up, 10, "replicas caught up with their masters")

    @contextlib.contextmanager
    def paused(self, port: int) -> Iterator[None]:
        """The node on `port` frozen meanwhile (SIGSTOP): connected, but answering nothing."""
        process = self._processes[port]
        process.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            process.send_signal(signal.SIGCONT)

    def restart(self, port: int) -> None:
        """Start a killed node again: it rejoins as a replica of the master that replaced it
        (or of its own, if it was a replica), and receives that master's writes. A master is
        restarted only once a replica replaced it: else it would be back as the master of
        its slots, empty (the nodes keep no data on disk), and its replica would copy that."""
        _poll(lambda: port not in self._masters_seen(), 30, f"a replica replacing {port}")
        self._launch(port)
        self._wait_ready()
        self._wait_streaming(port)

    def _masters_seen(self) -> set[int]:
        """The ports of the masters that serve slots in any running node's view."""
        seen: set[int] = set()
        for port in self.running():
            with _node(port) as client:
                slots = client.execute_command("CLUSTER SLOTS")
            seen.update(int(master[1]) for _start, _end, master, *_replicas in slots)
        return seen

    def _wait_streaming(self, replica: int) -> None:
        """Wait until a write on its master reaches the replica on `replica`. After a full
        sync a master may hold its writes back from the new replica for up to a second
        (until the replica's first periodic ACK): a master lost then loses them."""
        master = self.master_of(replica)
        assert master is not None
        probe = self._key_served_by(master)
        with _node(master) as source, _node(replica) as copy:
            source.set(probe, "sent")
            copy.execute_command("READONLY")
            _poll(lambda: copy.get(probe) == "sent", 10, f"a write reaching replica {replica}")
            source.delete(probe)

    @staticmethod
    def _key_served_by(master: int) -> str:
        """A key of a slot that the master on `master` serves."""
        with _node(master) as client:
            served = client.execute_command("CLUSTER SLOTS")
        ranges = [(start, end) for start, end, owner, *_ in served if int(owner[1]) == master]
        keys = (f"probe:{number}" for number in itertools.count())
        return next(k for k in keys if any(a <= key_slot(k.encode()) <= b for a, b in ranges))

    def _launch(self, port: int) -> None:
        directory = self.directory / str(port)
        directory.mkdir(exist_ok=True)
        args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory)]
        args += ["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"]
        args += ["--cluster-config-file", str(directory / f"nodes-{port}.conf")]
        args += ["--appendonly", "no", "--save", "", "--daemonize", "no"]
        # A replica's first sync would otherwise wait 5 s for more replicas to share it.
        args += ["--repl-diskless-sync-delay", "0", *DEBUG_COMMAND]
        for name, value in REDIS_MEMORY_CONFIG.items():
            args += [f"--{name}", str(value)]
        self._processes[port] = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _poll(lambda: self._answers(port), 10, f"node {port} answering PING")

    def running(self) -> list[int]:
        return [port for port, process in self._processes.items() if process.poll() is None]

    def _wait_ready(self) -> None:
        """Every node agrees the cluster is whole, and every master has an online replica."""

        def ready() -> bool:
            try:
                masters = self.masters()
                replicated = all(
                    self._replication(port).get("slave0", {}).get("state") == "online"
                    for port in masters
                )
                return len(masters) == NODE_COUNT // 2 and replicated and self._all_ok()
            except RedisError:
                return False

        _poll(ready, 30, "all slots served and every master replicated")

    def _all_ok(self) -> bool:
        for port in self.running():
            with _node(port) as client:
                info: dict[str, str] = client.execute_command("CLUSTER INFO")
            whole = info["cluster_state"] == "ok" and info["cluster_slots_ok"] == str(SLOT_COUNT)
            if not whole or info["cluster_known_nodes"] != str(NODE_COUNT):
                return False
        return True

    @staticmethod
    def _replication(port: int) -> dict[str, Any]:
        with _node(port) as client:
            replication: dict[str, Any] = client.info("replication")
            return replication

    def _owner(self, port: int, key: str) -> int:
        """The port of the master that serves `key`'s slot, as the node on `port` sees it."""
        with _node(port) as client:
            slot = int(client.execute_command("CLUSTER KEYSLOT", key))
            for start, end, master, *_replicas in client.execute_command("CLUSTER SLOTS"):
                if start <= slot <= end:
                    return int(master[1])
        raise SlotUnserved(f"no node serves slot {slot}")

    @staticmethod
    def _answers(port: int) -> bool:
        try:
            with _node(port) as client:
                return bool(client.ping())
        except RedisError:
            return False
