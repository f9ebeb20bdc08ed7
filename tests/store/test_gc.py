"""gc: referenced objects are never removed; unreferenced ones go after the grace period.

`collect_garbage` is gc of a project (what `pivot gc` runs); `collect` itself
knows only an object store and the set of oids in use.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from pivot_store import atomic
from pivot_store.cli.commands import collect_garbage
from pivot_store.errors import LockError
from pivot_store.gc import collect, referenced
from pivot_store.lockfile import FingerprintParts, Lock, OutputRecord, write_lock
from pivot_store.repo import Repo
from tests.store.conftest import assert_one_error_line

# An object's age counts from when it entered the cache (its ctime), which a test
# cannot set back: "old" objects are made, then the clock moves on by SECOND.
SECOND = 1 / 3600


def _setup(repo: Repo) -> dict[str, str]:
    (repo.root / "d").mkdir()
    (repo.root / "d" / "in_dir.txt").write_text("in a tracked folder")
    (repo.root / "f.txt").write_text("tracked file")
    repo.track(repo.root / "d")
    repo.track(repo.root / "f.txt")
    oids = {
        "dir": repo.read_lock("d").outputs[0].hash,
        "file": repo.read_lock("f.txt").outputs[0].hash,
        "old": repo.objects.add_bytes(b"old garbage").oid,
    }
    oids["in_dir"] = next(iter(repo.manifest(oids["dir"]).files())).hash
    time.sleep(1.2)
    oids["recent"] = repo.objects.add_bytes(b"recent garbage").oid
    return oids


def test_gc_keeps_referenced_and_recent(repo: Repo) -> None:
    oids = _setup(repo)
    assert collect_garbage(repo).removed == []  # default grace (24 h): everything here is recent
    res = collect_garbage(repo, grace_hours=SECOND)
    assert res.removed == [oids["old"]]
    assert not repo.objects.exists(oids["old"])
    for key in ("dir", "file", "in_dir", "recent"):
        assert repo.objects.exists(oids[key]), key
    assert [r.status for r in repo.status()] == ["ok", "ok"]


def test_gc_grace_zero_removes_all_unreferenced(repo: Repo) -> None:
    oids = _setup(repo)
    res = collect_garbage(repo, grace_hours=0)
    assert sorted(res.removed) == sorted([oids["old"], oids["recent"]])
    assert set(repo.objects.iter_oids()) == {oids["dir"], oids["file"], oids["in_dir"]}


def test_gc_without_any_reference_removes_everything_old(repo: Repo) -> None:
    oids = [repo.objects.add_bytes(b"%d" % i).oid for i in range(5)]
    assert referenced(repo.objects, repo.iter_locks()) == set()
    assert sorted(collect_garbage(repo, grace_hours=0).removed) == sorted(oids)
    assert list(repo.objects.iter_oids()) == []


def test_dry_run_removes_nothing(project: Path, repo: Repo, cli) -> None:
    oids = _setup(repo)
    code, out, _ = cli("gc", "--dry-run", "--grace", "0", "--json")
    data = json.loads(out)
    assert (
        code == 0
        and data["dry_run"]
        and sorted(data["removed"]) == sorted([oids["old"], oids["recent"]])
    )
    assert all(repo.objects.exists(o) for o in oids.values())
    code, out, _ = cli("gc", "--grace", "0")
    assert code == 0 and f"removed {oids['old']}" in out
    assert not repo.objects.exists(oids["old"])


def test_run_cache_locks_keep_their_objects(repo: Repo) -> None:
    kept = repo.objects.add_bytes(b"run cache result").oid
    gone = repo.objects.add_bytes(b"nobody").oid
    lock = Lock.build(
        "asset/x", FingerprintParts(code_version="1"), [OutputRecord(hash=kept, size=16)]
    )
    write_lock(repo.runs_dir / "asset" / "x" / f"{lock.fingerprint}.lock", lock)
    assert collect_garbage(repo, grace_hours=0).removed == [gone]
    assert repo.objects.exists(kept)


def test_gc_refuses_when_a_lock_is_malformed(project: Path, repo: Repo, cli) -> None:
    oids = _setup(repo)
    repo.lock_path("f.txt").write_text("outputs: [\n")
    with pytest.raises(LockError, match=r"f\.txt\.lock"):
        collect_garbage(repo, grace_hours=0)
    code, _, err = cli("gc", "--grace", "0")
    assert_one_error_line(code, err, "f.txt.lock")
    assert all(repo.objects.exists(o) for o in oids.values())


def test_gc_removes_old_temps_only(repo: Repo) -> None:
    repo.objects.tmp_dir.mkdir(parents=True)
    old = atomic.temp_name(repo.objects.tmp_dir)
    old.write_bytes(b"killed writer")
    t = time.time() - 48 * 3600
    os.utime(old, (t, t))
    new = atomic.temp_name(repo.objects.tmp_dir)
    new.write_bytes(b"writer in progress")
    assert collect_garbage(repo).temps_removed == 1
    assert not old.exists() and new.exists()


def test_an_object_moved_in_from_an_old_file_gets_its_grace(repo: Repo) -> None:
    # `add_file(move=True)` publishes the workspace file itself; its mtime may be a week
    # old, but the grace period must count from when it entered the cache.
    f = repo.root / "old.bin"
    f.write_bytes(b"produced long ago")
    week = time.time() - 7 * 24 * 3600
    os.utime(f, (week, week))
    oid = repo.objects.add_file(f, move=True).oid
    assert collect_garbage(repo).removed == []
    assert repo.objects.exists(oid)
    assert collect_garbage(repo, grace_hours=0).removed == [oid]


def test_collect_keeps_what_the_caller_uses(repo: Repo) -> None:
    oids = _setup(repo)
    used = referenced(repo.objects, repo.iter_locks())
    assert used == {oids["dir"], oids["file"], oids["in_dir"]}
    res = collect(repo.objects, used | {oids["old"]}, grace_hours=0)
    assert res.removed == [oids["recent"]] and res.kept == 4
    assert res.freed == len(b"recent garbage")
    assert repo.objects.exists(oids["old"]) and not repo.objects.exists(oids["recent"])


def test_gc_sweeps_dead_writers_temps_anywhere_under_pivot(project: Path, cli) -> None:
    """Issue 15 item 4: a killed lock writer's temp in stages/ (or runs/) is swept; a
    live writer's is not, and nothing outside .pivot/ is touched."""
    import subprocess
    import sys

    assert cli("init")[0] == 0
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    pivot = project / ".pivot"
    planted = {
        pivot / "stages" / f".tmp-{dead}-aaaa.lock": False,  # False: must go
        pivot / "stages" / "a" / "b" / f".tmp-{dead}-bbbb": False,
        pivot / "runs" / "x" / "0123456789abcdef" / f".tmp-{dead}-cccc": False,
        pivot / f".tmp-{dead}-config": False,
        pivot / "stages" / f".tmp-{os.getpid()}-live": True,  # this live process's: stays
        project / f".tmp-{dead}-user-file": True,  # the user's, outside .pivot
    }
    for path in planted:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a lock")
    code, out, err = cli("gc", "--grace", "0", "--json")
    assert code == 0, err
    assert {p: p.exists() for p in planted} == planted
    assert json.loads(out)["temps_removed"] == 4


def test_keep_policy_bounds_the_local_run_cache(project: Path, cli) -> None:
    """Issue 15: run-cache entries outside `--keep-last`/`--keep-days` go, then the
    objects only they named; without a policy every entry stays (as before)."""
    from pivot_store import runcache
    from pivot_store.repo import Repo

    assert cli("init")[0] == 0
    repo = Repo(project)
    now = time.time()
    entries = []
    for i, age_days in enumerate([30, 10, 1]):  # oldest first
        added = repo.objects.add_bytes(f"result {i}".encode() * 100)
        old = now - age_days * 86400
        os.utime(repo.objects.path(added.oid), (old, old))
        lock = Lock.build(
            "asset/a",
            FingerprintParts(params={"i": i}),
            [OutputRecord(hash=added.oid, size=added.size, format="raw")],
        )
        runcache.write_local(repo.runs_dir, lock)
        path = runcache.local_entry_path(repo.runs_dir, lock)
        os.utime(path, (old, old))
        entries.append((path, added.oid))

    code, out, _ = cli("gc", "--grace", "0", "--json")
    assert json.loads(out)["runs_removed"] == 0 and all(p.exists() for p, _ in entries)

    code, out, _ = cli(
        "gc", "--grace", "0", "--keep-last", "1", "--keep-days", "15", "--dry-run", "--json"
    )
    report = json.loads(out)
    assert report["runs_removed"] == 1 and report["removed"] == [entries[0][1]]
    assert all(p.exists() for p, _ in entries)  # a dry run removes nothing

    code, out, _ = cli("gc", "--grace", "0", "--keep-last", "1", "--keep-days", "15", "--json")
    assert code == 0
    assert [p.exists() for p, _ in entries] == [False, True, True]
    assert [repo.objects.exists(o) for _, o in entries] == [False, True, True]

    code, out, _ = cli("gc", "--grace", "0", "--keep-last", "1", "--json")
    assert [p.exists() for p, _ in entries] == [False, False, True]
    assert [repo.objects.exists(o) for _, o in entries] == [False, False, True]
