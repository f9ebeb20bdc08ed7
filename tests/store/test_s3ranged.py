"""remote/s3ranged.py: a ranged download never writes outside the range it asked for."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from pivot_store.remote.errors import Transient
from pivot_store.remote.s3ranged import get_ranged

MIB = 2**20


class _Remote:
    name = "origin"
    url = "s3://bucket/store"


def test_an_answer_that_runs_past_its_range_lands_nowhere_else(tmp_path: Path) -> None:
    """A server that ignores one Range and sends the whole object from that range's start
    (as a hostile or broken server may): the download fails, and no byte of that answer
    lands past its range, on the range the server has not been asked for yet."""
    data = os.urandom(3 * MIB)
    asked: list[int] = []

    async def get_range(start: int, end: int, write) -> tuple[int, str]:
        asked.append(start)
        body = data[start:] if start == MIB else data[start : end + 1]  # range 2 ignored
        for off in range(0, len(body), MIB // 4):
            write(body[off : off + MIB // 4], start + off)
        return len(body), f"bytes {start}-{start + len(body) - 1}/{len(data)}"

    out = tmp_path / "out"
    with pytest.raises(Transient, match="runs past it"):
        asyncio.run(
            get_ranged(
                _Remote(), "files/ab/cdef", out, len(data), get_range, chunk=MIB, jobs=1, most=MIB
            )
        )
    assert 2 * MIB not in asked  # jobs=1: the third range was never reached
    assert out.stat().st_size <= 2 * MIB  # nothing written where the third range goes
    assert out.read_bytes()[:MIB] == data[:MIB]


def test_honest_ranges_come_back_whole(tmp_path: Path) -> None:
    """Each range written where it belongs, in any order the answers arrive."""
    data = os.urandom(3 * MIB + 5)

    async def get_range(start: int, end: int, write) -> tuple[int, str]:
        body = data[start : end + 1]
        await asyncio.sleep(0.01 * (3 - start // MIB))  # later ranges answer first
        write(body, start)
        return len(body), f"bytes {start}-{start + len(body) - 1}/{len(data)}"

    out = tmp_path / "out"
    asyncio.run(get_ranged(_Remote(), "k", out, len(data), get_range, chunk=MIB, jobs=4, most=MIB))
    assert out.read_bytes() == data
