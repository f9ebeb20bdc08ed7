"""The same work once (issue 11 item 8), counted.

Every xxh64 the store computes goes through `pivot_store.hashing`'s `xxhash`;
swapping that module attribute for a counting one shows which bytes were
hashed, and how often. Remote requests are counted on the Remote itself.
Contract line 3 still holds: a pulled object is hashed (exactly once) before
it enters the cache.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pivot_store import download, hashing, run_lookup, runcache, transfer
from pivot_store import oid as oids
from pivot_store.config import Config, RemoteConfig
from pivot_store.lockfile import Lock
from pivot_store.manifest import read_manifest
from pivot_store.remote import Remote, open_remote
from pivot_store.repo import Repo
from pivot_store.state import MIN_SIZE

N = 24
LARGE = 3 * 64 * 1024  # "large" once MULTIPART_CHUNK is patched down to 64 KiB


class CountingXX:
    """`xxhash` that counts each digest it produces and the bytes it hashes."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.digests: Counter[str] = Counter()
        self.nbytes = 0

    def xxh64_hexdigest(self, data: Any) -> str:
        self.nbytes += len(data)
        digest = self.real.xxh64_hexdigest(data)
        self.digests[digest] += 1
        return digest

    def xxh64(self) -> _CountingHash:
        return _CountingHash(self)


class _CountingHash:
    def __init__(self, owner: CountingXX) -> None:
        self.owner = owner
        self.h = owner.real.xxh64()

    def update(self, data: Any) -> None:
        self.owner.nbytes += len(data)
        self.h.update(data)

    def hexdigest(self) -> str:
        digest = self.h.hexdigest()
        self.owner.digests[digest] += 1
        return digest


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> CountingXX:
    counter = CountingXX(hashing.xxhash)
    monkeypatch.setattr(hashing, "xxhash", counter)
    return counter


def count_requests(rem: Remote, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Every call the transfer code can make on `rem`, by method name."""
    calls: Counter[str] = Counter()
    for name in ("check", "exists", "list_names", "list_dirs", "present", "put_file",
                 "put_bytes", "get_bytes", "get_file"):  # fmt: skip
        orig = getattr(rem, name)

        def sync(*a: Any, _orig: Any = orig, _name: str = name, **kw: Any) -> Any:
            calls[_name] += 1
            return _orig(*a, **kw)

        monkeypatch.setattr(rem, name, sync)
    for name in ("apresent", "aexists", "alist_names", "alist_dirs", "aput_file",
                 "aput_bytes", "aget_bytes", "aget_file"):  # fmt: skip
        orig = getattr(rem, name)

        async def coro(*a: Any, _orig: Any = orig, _name: str = name, **kw: Any) -> Any:
            calls[_name] += 1
            return await _orig(*a, **kw)

        monkeypatch.setattr(rem, name, coro)
    return calls


def _project(root: Path, url: str) -> Repo:
    repo = Repo.init(root)
    repo.save_config(Config(remotes={"origin": RemoteConfig(url=url)}, default_remote="origin"))
    return repo


def _clone(src: Repo, root: Path) -> Repo:
    """Another deployment: the same locks and config, an empty cache."""
    (root / ".pivot").mkdir(parents=True)
    shutil.copytree(src.stages_dir, root / ".pivot" / "stages")
    shutil.copy(src.config_path, root / ".pivot" / "config.yaml")
    return Repo(root)


@pytest.fixture
def source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Repo, list[Lock], str]:
    """A project with a folder of N small files and one "large" file (its own lock)."""
    monkeypatch.setattr(transfer, "MULTIPART_CHUNK", 64 * 1024)
    monkeypatch.setattr(download, "MULTIPART_CHUNK", 64 * 1024)
    url = f"file://{tmp_path}/remote"
    repo = _project(tmp_path / "a", url)
    (repo.root / "data").mkdir()
    for i in range(N):
        (repo.root / "data" / f"f{i:03d}.bin").write_bytes(os.urandom(4096))
    (repo.root / "big.bin").write_bytes(os.urandom(LARGE))
    locks = [repo.track(repo.root / "data"), repo.track(repo.root / "big.bin")]
    return repo, locks, url


def every_object(repo: Repo, locks: list[Lock]) -> dict[str, int]:
    found: dict[str, int] = {}
    for lock in locks:
        for out in lock.outputs:
            found[out.hash] = repo.objects.size(out.hash)
            if oids.is_dir(out.hash):
                found |= {e.hash: e.size for e in read_manifest(repo.objects, out.hash).files()}  # type: ignore[misc]
    return found


def test_a_push_of_cached_objects_hashes_none_and_names_each_entry_once(
    source: tuple[Repo, list[Lock], str], hashes: CountingXX, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, locks, _ = source
    wanted = every_object(repo, locks)
    real_entry_id = runcache.entry_id
    ids: Counter[str] = Counter()

    def entry_id(lock: Lock) -> str:
        ids[lock.name] += 1
        return real_entry_id(lock)

    monkeypatch.setattr(runcache, "entry_id", entry_id)
    hashes.digests.clear()
    res = transfer.push(repo.objects, open_remote(repo.config), locks)
    assert res.ok and len(res.entries) == 2 and len(res.transferred) == len(wanted)
    assert ids == {lock.name: 1 for lock in locks}
    rehashed = {o: hashes.digests[o[:16]] for o in wanted if hashes.digests[o[:16]]}
    assert rehashed == {}, "a push trusts the cache's objects by name"


def test_a_pull_hashes_each_object_exactly_once(
    source: tuple[Repo, list[Lock], str], tmp_path: Path, hashes: CountingXX
) -> None:
    repo, locks, _ = source
    assert transfer.push(repo.objects, open_remote(repo.config), locks).ok
    wanted = every_object(repo, locks)
    clone = _clone(repo, tmp_path / "b")
    got, rem = list(clone.iter_locks()), open_remote(clone.config)
    hashes.digests.clear()
    hashes.nbytes = 0
    res = transfer.fetch(clone.objects, rem, got)
    assert res.ok and sorted(res.transferred) == sorted(wanted)
    assert {o: hashes.digests[o[:16]] for o in wanted} == {o: 1 for o in wanted}
    # Nothing else of size was hashed (the known-on-remote index hashes its name:
    # a version tag and the remote's identity).
    assert hashes.nbytes <= sum(wanted.values()) + len(f"known-index v2\n{rem.identity}")


def test_fetch_then_push_of_the_same_locks_makes_no_request(
    source: tuple[Repo, list[Lock], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, locks, _ = source
    assert transfer.push(repo.objects, open_remote(repo.config), locks).ok
    clone = _clone(repo, tmp_path / "b")
    got = list(clone.iter_locks())
    assert transfer.fetch(clone.objects, open_remote(clone.config), got).ok
    rem = open_remote(clone.config)
    calls = count_requests(rem, monkeypatch)
    res = transfer.push(clone.objects, rem, got, run_cache=False)
    assert res.ok and res.transferred == []
    assert sum(calls.values()) == 0, calls


def test_a_pulled_hit_is_not_pushed_straight_back(
    source: tuple[Repo, list[Lock], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Remote-first: B finds A's entry, fetches it, and its push-on-write is free."""
    repo, locks, _ = source
    assert repo.push(locks).ok
    b = _project(tmp_path / "b", repo.config.remotes["origin"].url)
    entries = [next(iter(run_lookup.lookup(b.remote(), lk.name, lk.fingerprint))) for lk in locks]
    assert b.fetch(entries).ok
    calls = count_requests(b.remote(), monkeypatch)
    res = b.push([e.lock for e in entries])
    assert res.ok and res.transferred == [] and res.entries == []
    assert sum(calls.values()) == 0, calls


@pytest.mark.parametrize("size", [4096, MIN_SIZE + 4096])
def test_copy_mode_add_hashes_a_new_file_once(repo: Repo, hashes: CountingXX, size: int) -> None:
    src = repo.root / "new.bin"
    src.write_bytes(os.urandom(size))
    old = os.stat(src).st_mtime_ns - 10**9  # not "racy": the state db may record it
    os.utime(src, ns=(old, old))
    added = repo.objects.add_file(src, state=repo.state)
    assert added.new and hashes.digests[added.oid] == 1
    # Unchanged and big enough for the state db: the second add reads nothing.
    again = repo.objects.add_file(src, state=repo.state)
    assert again.oid == added.oid
    assert hashes.digests[added.oid] == (1 if size >= MIN_SIZE else 2)
