"""The asset-key resolver: reversible, safe for any characters, never escapes."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import AssetKey, MultiPartitionKey
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pivot_dagster.asset_keys import lock_name, parse_lock_name
from pivot_store import keys
from pivot_store.errors import UnsafeName

part = st.text(min_size=1, max_size=40)


def _fits(key_parts: list[str], partition: str | None) -> bool:
    """Whether every encoded segment (`@` + partition included) fits in a file name."""
    try:
        encoded = [keys.encode_segment(p) for p in key_parts]
        if partition is not None:
            encoded.append("@" + keys.encode_segment(partition))
    except UnsafeName:
        return False
    return all(len(e.encode()) <= keys.MAX_SEGMENT_BYTES for e in encoded)


@settings(max_examples=300, deadline=None)
@given(st.lists(part, min_size=1, max_size=4), st.none() | part)
@example(key_parts=["0000::::::::" + "\x80" * 18 + "\U00010000" * 10], partition=None)
def test_reversible_and_stays_inside(tmp_path_factory, key_parts, partition) -> None:
    if not _fits(key_parts, partition):
        # Percent-encoding can triple a part (40 four-byte characters are 480
        # bytes), past what one file name may hold: refused with a clear error.
        with pytest.raises(UnsafeName):
            lock_name(AssetKey(key_parts), partition)
        return
    name = lock_name(AssetKey(key_parts), partition)
    assert parse_lock_name(name) == (key_parts, partition)
    stages = Path("/srv/proj/.pivot/stages")
    path = keys.lock_path(stages, name)
    assert path.is_relative_to(stages)
    assert ".." not in name.split("/") and not name.startswith("/")


@settings(max_examples=200, deadline=None)
@given(st.lists(part, min_size=1, max_size=3), part, part)
def test_distinct_inputs_give_distinct_names(a, p1, p2) -> None:
    assert (lock_name(a, p1) == lock_name(a, p2)) == (p1 == p2)
    assert lock_name(a) != lock_name(a, p1)
    assert lock_name([*a, p1]) != lock_name(a, p1)  # a key part is never a partition


@pytest.mark.parametrize(
    "partition, expected",
    [
        ("2024-01-01", "a/b/@2024-01-01"),
        ("/etc/passwd", "a/b/@%2Fetc%2Fpasswd"),
        ("../up", "a/b/@%2E.%2Fup"),
        ("data file.csv", "a/b/@data%20file.csv"),
        ("ünï", "a/b/@%C3%BCn%C3%AF"),
    ],
)
def test_examples(partition: str, expected: str) -> None:
    assert lock_name(AssetKey(["a", "b"]), partition) == expected


def test_multi_partition_key_uses_dagster_string_form() -> None:
    mpk = MultiPartitionKey({"date": "2024-01-02", "color": "red"})
    name = lock_name(["m"], mpk)
    assert name == "m/@red%7C2024-01-02"
    assert parse_lock_name(name) == (["m"], "red|2024-01-02")


@pytest.mark.parametrize("bad", [["..", "x"], ["."], [""], ["a" * 300]])
def test_escaping_parts_are_encoded_or_refused(bad: list[str]) -> None:
    try:
        name = lock_name(bad)
    except UnsafeName:
        return
    assert all(seg not in ("..", ".") for seg in name.split("/"))


def test_hostile_lock_names_are_refused() -> None:
    for bad in ("../x", "/abs", "a/../../b", "a//b"):
        with pytest.raises(UnsafeName):
            parse_lock_name(bad)
