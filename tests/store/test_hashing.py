"""hashing: xxh64, 16 lower-case hex digits, zero padded; files, streams and JSON."""

from __future__ import annotations

import io
import re

import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from pivot_store import oid as oids
from pivot_store.errors import InvalidOid
from pivot_store.hashing import (
    CHUNK,
    HashingWriter,
    canonical_json,
    hash_bytes,
    hash_file,
    hash_stream,
)

HEX16 = re.compile(r"[0-9a-f]{16}")


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=4096))
def test_hash_bytes_is_xxh64_hex(data: bytes) -> None:
    h = hash_bytes(data)
    assert HEX16.fullmatch(h)
    assert h == xxhash.xxh64(data).hexdigest()
    assert h == f"{xxhash.xxh64(data).intdigest():016x}"


def test_hash_is_zero_padded() -> None:
    # Find an input whose digest has a leading zero: the id must still be 16 chars.
    data = next(
        i.to_bytes(4, "little")
        for i in range(100_000)
        if xxhash.xxh64_intdigest(i.to_bytes(4, "little")) < 1 << 60
    )
    h = hash_bytes(data)
    assert h.startswith("0") and len(h) == 16


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17])
def test_hash_file_matches_plain_xxh64(tmp_path, size: int) -> None:
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    p = tmp_path / "f"
    p.write_bytes(data)
    assert hash_file(p) == xxhash.xxh64(data).hexdigest()
    assert hash_stream(io.BytesIO(data)) == xxhash.xxh64(data).hexdigest()
    # The size a caller passes (from its stat) only picks how to read: a stale
    # one, smaller or bigger than the file now, still hashes the whole file.
    for hint in {0, size, size + 1, CHUNK, CHUNK + 1, 5 * CHUNK, max(size - 1, 0)}:
        assert hash_file(p, hint) == xxhash.xxh64(data).hexdigest(), hint


def test_hash_file_buffer_is_per_thread(tmp_path) -> None:
    """Big files share one buffer per thread: threads hashing at once never mix bytes."""
    from concurrent.futures import ThreadPoolExecutor

    paths = []
    for i in range(8):
        p = tmp_path / f"f{i}"
        p.write_bytes(bytes([i]) * (2 * CHUNK + i * 4097))
        paths.append(p)
    want = [xxhash.xxh64(p.read_bytes()).hexdigest() for p in paths]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(5):
            assert list(pool.map(hash_file, paths)) == want


def test_hashing_writer_hashes_what_it_writes() -> None:
    sink = io.BytesIO()
    w = HashingWriter(sink)
    for part in (b"abc", bytearray(b"def"), memoryview(b"ghi")):
        w.write(part)
    w.close()  # serializers may close their sink; the real file stays open
    assert not sink.closed
    assert w.size == 9 and w.tell() == 9
    assert w.hexdigest() == xxhash.xxh64(b"abcdefghi").hexdigest() == hash_bytes(sink.getvalue())


def test_canonical_json_is_sorted_and_stable() -> None:
    a = canonical_json({"b": 1, "a": [1, 2], "é": "ü"})
    b = canonical_json({"é": "ü", "a": [1, 2], "b": 1})
    assert a == b == '{"a":[1,2],"b":1,"é":"ü"}'.encode()
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "ABCDEF0123456789",
        "0123456789abcde",
        "0123456789abcdef0",
        "../../etc/passwd",
        "0123456789abcdef.DIR",
        "0123456789abcdef/",
        12,
        None,
        "0123456789abcdeg",
    ],
)
def test_invalid_oids_are_refused(bad) -> None:
    with pytest.raises(InvalidOid):
        oids.validate(bad)
    with pytest.raises(InvalidOid):
        oids.relpath(bad)


def test_oid_relpath_round_trip() -> None:
    for o in ("0123456789abcdef", "0123456789abcdef.dir"):
        assert oids.relpath(o) == "01/" + o[2:]
        assert oids.from_relpath(oids.relpath(o)) == o
    with pytest.raises(InvalidOid):
        oids.from_relpath("01/../23456789abcdef")
