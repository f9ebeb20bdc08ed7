"""A large object's download from S3: ranged GETs at once, streamed in place into one file.

The object is cut into `jobs` ranges (at least `chunk`, at most `most` bytes
each; a bigger object gets more, `jobs` at a time), each written where it
belongs as it arrives (never past its range), so memory stays at one 1 MiB
buffer per range whatever the range size. Nothing the server says is taken on trust: every
answer must report the object's expected total size (else CorruptObject:
the remote copy was replaced or truncated) and deliver its whole range (else
a transient error, and that range alone is fetched again).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from pivot_store.aio import amap
from pivot_store.errors import CorruptObject
from pivot_store.remote.errors import Named, aretrying, error_code

#: get_range(start, end, write) -> (bytes received, Content-Range); `write(chunk, offset)`
GetRange = Callable[[int, int, Callable[[bytes, int], None]], Awaitable[tuple[int, str]]]


async def get_ranged(
    remote: Named, key: str, local: Path, size: int | None, get_range: GetRange, *,
    chunk: int, jobs: int, most: int,
) -> None:  # fmt: skip
    """`key` into `local` in ranged GETs (`size`, when known, is what it must be)."""
    if size:
        per = -(-size // jobs)
        chunk = min(max(chunk, -(-per // 2**20) * 2**20), most)
    fd = os.open(local, os.O_WRONLY | os.O_CREAT, 0o600)

    def corrupt(what: str) -> CorruptObject:
        return CorruptObject(
            f"{key} on remote {remote.name!r} {what}",
            "the remote copy is corrupt or was tampered with; nothing was kept",
        )

    async def one(start: int) -> int:
        end = start + chunk - 1

        def write(data: bytes, off: int) -> None:
            # Never past the range asked for: an answer that runs on (a server that
            # ignores Range and sends the whole object) would land on other ranges.
            if off + len(data) > end + 1:
                raise OSError(errno.EIO, f"the answer for {key} [bytes={start}-{end}] runs past it")
            os.pwrite(fd, data, off)

        try:
            got, content_range = await get_range(start, end, write)
        except Exception as e:
            if error_code(e)[0] == "InvalidRange":
                raise corrupt("is shorter than expected") from None
            raise
        total_s = content_range.rpartition("/")[2]
        total = int(total_s) if total_s.isdigit() else start + got
        if size is not None and total != size:
            raise corrupt(f"is {total} bytes, expected {size}")
        if got != min(chunk, total - start):
            raise OSError(errno.EIO, f"short read of {key} [bytes={start}-{end}]")
        return total

    async def part(start: int) -> int:
        return await aretrying(remote, lambda: one(start), f"{key} @{start}")

    try:
        if size is None:
            size = await part(0)
            await amap(jobs, part, range(chunk, size, chunk))
        else:
            await amap(jobs, part, range(0, max(size, 1), chunk))
        os.ftruncate(fd, size)
    finally:
        os.close(fd)
