"""The asyncio runner and the bounded map that remotes and transfers share.

A transfer is one batch of coroutines on one event loop with `jobs` requests
in flight. `run_new_loop` drives such a batch from sync code (S3 uses s3fs's
own loop instead, see `S3Remote.run`); `amap` bounds a batch without one task
per item.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from pivot_store.errors import RemoteError

T = TypeVar("T")


def run_new_loop(fn: Callable[..., Awaitable[T]], args: tuple[Any, ...], jobs: int) -> T:
    """Run `fn(*args)` on a fresh event loop whose thread pool has `jobs` workers.

    From inside a running loop (a notebook, an async caller) the fresh loop
    gets its own thread, since one thread cannot run two loops.
    """

    async def main() -> T:
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max(1, jobs), "pivot-remote")
        )
        return await fn(*args)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["out"] = asyncio.run(main())
        except BaseException as e:
            box["err"] = e

    t = threading.Thread(target=target, name="pivot-remote-loop")
    t.start()
    t.join()
    if "err" in box:
        raise box["err"]
    return box["out"]


#: The name remote.py had for it.
_run_new_loop = run_new_loop


async def amap(jobs: int, fn: Callable[[Any], Awaitable[Any]], items: Iterable[Any]) -> list[Any]:
    """`[await fn(i) for i in items]`, `jobs` at a time, results in order.

    `jobs` workers pull from one iterator, so no task exists per item. The
    first RemoteError (permanent: no bucket, denied) stops the workers from
    taking more items and is raised once those in flight have finished.
    """
    items = list(items)
    out: list[Any] = [None] * len(items)
    it = iter(enumerate(items))
    stop: list[BaseException] = []

    async def worker() -> None:
        for i, item in it:
            if stop:
                return
            try:
                out[i] = await fn(item)
            except RemoteError as e:
                stop.append(e)
                return

    await asyncio.gather(*(worker() for _ in range(min(max(1, jobs), len(items)))))
    if stop:
        raise stop[0]
    return out
