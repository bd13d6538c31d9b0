"""A throw-away redis-server for the tests: its own port, its own temporary directory."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

# The benchmark starts its Redis the same way, with the link store's memory settings.
from loadtests.bench_procs import free_port as free_port
from loadtests.bench_procs import redis_command

# Tests make a Redis load its data slowly with DEBUG RELOAD (tests/redirector/test_loading.py).
DEBUG_COMMAND = ("--enable-debug-command", "local")


class RedisServer:
    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *options: str) -> None:
        """Start it (again), with these redis-server options besides the link store's; it
        loads the data a SAVE left in its directory. DEBUG is allowed from this machine."""
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not on PATH (apt-get install -y redis-server)")
        args = [*redis_command(self.port, self.directory), *DEBUG_COMMAND, *options]
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as ping:
                    ping.sendall(b"PING\r\n")
                    # Up: answering, or loading its data (and answering LOADING meanwhile).
                    if ping.recv(16).startswith((b"+PONG", b"-LOADING")):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None
