"""A supervised worker stops when its supervisor is gone.

`python -m redirector` with workers runs them as child processes (redirector/server.py). A
supervisor stopped with SIGKILL (the kernel's OOM killer, `kill -9`, a container runtime
out of patience) gets no chance to stop them: they would serve on, holding the port, with
no supervisor to restart a click worker or to stop them, and a new supervisor could not bind
its port while they do. Each worker watches the pipe multiprocessing gives a child of its
parent: it closes when the parent dies, however, and the worker then stops as on SIGTERM
(requests in flight answered, clicks flushed to their queue). The click workers stop at the
same time, not last as the supervisor would have them: what the redirect workers flush as
they stop stays queued in Redis until a click worker next runs, never lost."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing

log = logging.getLogger("redirector")


def stop_when_orphaned(stop: asyncio.Event) -> None:
    """Sets `stop` once this process's multiprocessing parent is gone; nothing for a process
    that has none (run on its own)."""
    parent = multiprocessing.parent_process()
    if parent is None or parent.sentinel is None:
        return
    loop, sentinel = asyncio.get_running_loop(), parent.sentinel

    def gone() -> None:
        loop.remove_reader(sentinel)  # readable from now on: once is enough
        log.error("the supervisor is gone; stopping")
        stop.set()

    loop.add_reader(sentinel, gone)
