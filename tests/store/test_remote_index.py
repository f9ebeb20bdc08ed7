"""remote_index.py: `KnownIndex` names, dropping, and the verification stamp (issue 12 item 7)."""

from __future__ import annotations

import time
from pathlib import Path

from pivot_store.hashing import hash_bytes
from pivot_store.remote_index import KnownIndex


def _cache(tmp_path: Path) -> Path:
    return tmp_path / ".pivot" / "cache" / "files"


def test_one_index_per_identity(tmp_path: Path) -> None:
    a = KnownIndex(_cache(tmp_path), "s3://b/p endpoint_url=http://a:1")
    b = KnownIndex(_cache(tmp_path), "s3://b/p endpoint_url=http://b:1")
    a.add(["0123456789abcdef"])
    assert a.path != b.path and b.load() == set()
    assert a.load() == {"0123456789abcdef"}


def test_a_url_only_index_of_the_first_version_is_ignored(tmp_path: Path) -> None:
    url = "s3://b/p"
    old = tmp_path / ".pivot" / "cache" / "remotes" / f"{hash_bytes(url.encode())}.known"
    old.parent.mkdir(parents=True)
    old.write_text("0123456789abcdef\n")
    assert KnownIndex(_cache(tmp_path), url).load() == set()


def test_drop_forgets_everything(tmp_path: Path) -> None:
    index = KnownIndex(_cache(tmp_path), "memory://x")
    index.add(["a", "b"])
    index.mark_verified()
    index.drop()
    index.drop()  # dropping nothing is fine
    assert index.load() == set()
    assert index.verified_at() is None  # the sensor's next push verifies everything


def test_verification_is_due_after_the_interval(tmp_path: Path) -> None:
    index = KnownIndex(_cache(tmp_path), "memory://x")
    assert index.verify_due(3600) and not index.verify_due(None)  # never verified
    index.mark_verified()
    assert not index.verify_due(3600) and index.verify_due(0)
    index.mark_verified(time.time() - 7200)
    assert index.verify_due(3600)
    index.mark_verified(time.time() + 7200)  # a stamp from the future: the clock went back
    assert index.verify_due(3600)
    assert index.stamp.parent == index.path.parent
