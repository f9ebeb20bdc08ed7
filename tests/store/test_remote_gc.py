"""Remote gc (issue 15 item 5): keep policy, grace on the remote's mtimes, order,
dry run, the known-on-remote index, untrusted records, and a push during gc."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pivot_store import keys, pointers, runcache, transfer
from pivot_store.config import Config, RemoteConfig
from pivot_store.errors import RemoteError
from pivot_store.hashing import hash_bytes
from pivot_store.lockfile import FingerprintParts, Lock, OutputRecord
from pivot_store.manifest import Entry, Manifest
from pivot_store.objects import ObjectStore
from pivot_store.remote import LocalRemote, Remote, open_remote
from pivot_store.remote_gc import KeepPolicy, collect_remote
from pivot_store.remote_index import KnownIndex
from pivot_store.repo import Repo

DAY = 86400.0
OLD = datetime(2024, 1, 1, tzinfo=UTC)


def result(objects: ObjectStore, data: bytes, name: str = "a", code: str = "v1") -> Lock:
    added = objects.add_bytes(data)
    parts = FingerprintParts(code_version=code, params={})
    return Lock.build(name, parts, [OutputRecord(hash=added.oid, size=added.size)])


def folder_result(objects: ObjectStore, files: dict[str, bytes], name: str, code: str) -> Lock:
    entries = []
    for path, data in sorted(files.items()):
        added = objects.add_bytes(data)
        entries.append(Entry(path, added.oid, added.size))
    manifest = Manifest(tuple(entries))
    dir_oid = objects.add_bytes(manifest.to_bytes(), suffix=".dir").oid
    parts = FingerprintParts(code_version=code, params={})
    return Lock.build(name, parts, [OutputRecord(hash=dir_oid, size=manifest.size, kind="dir")])


def publish(objects: ObjectStore, remote: Remote, lock: Lock, created: datetime) -> None:
    """Push the objects, then the entry with a chosen created_at (the writer's claim)."""
    assert transfer.push(objects, remote, [lock], run_cache=False).ok
    assert runcache.write_entry(remote, lock, created)


def age(remote: LocalRemote, seconds: float) -> None:
    """Set every key's mtime on a folder remote `seconds` into the past (the remote's clock)."""
    when = time.time() - seconds
    for folder, _, files in os.walk(remote.root):
        for n in files:
            os.utime(os.path.join(folder, n), (when, when))


def on_remote(remote: Remote, lock: Lock) -> bool:
    return all(remote.exists(remote.object_key(o.hash)) for o in lock.outputs)


def entry_there(remote: Remote, lock: Lock) -> bool:
    return remote.exists(remote.key(runcache.entry_rel(lock)))


@pytest.fixture
def folder(tmp_path: Path) -> LocalRemote:
    rem = open_remote(remote=RemoteConfig(url=f"file://{tmp_path}/remote"), name="origin")
    assert isinstance(rem, LocalRemote)
    return rem


@pytest.fixture
def objects(tmp_path: Path) -> ObjectStore:
    return ObjectStore(tmp_path / "proj" / ".pivot" / "cache" / "files")


def _three_and_one(objects: ObjectStore, remote: Remote) -> tuple[list[Lock], Lock]:
    a = [result(objects, f"a{i}".encode(), "a", f"v{i}") for i in range(3)]
    for i, lock in enumerate(a):
        publish(objects, remote, lock, OLD + timedelta(days=i))
    b = result(objects, b"b0", "b")
    publish(objects, remote, b, OLD)
    return a, b


@pytest.mark.parametrize("k", [0, 1, 2])
def test_keep_last_keeps_the_newest_k_per_name(
    folder: LocalRemote, objects: ObjectStore, k: int
) -> None:
    a, b = _three_and_one(objects, folder)
    age(folder, 2 * DAY)
    res = collect_remote(folder, [], KeepPolicy(keep_last=k, grace_hours=24), objects=objects)
    kept_a = a[len(a) - k :] if k else []
    for lock in [*a, b]:
        kept = lock in kept_a or (lock is b and k > 0)
        assert entry_there(folder, lock) is kept, (lock.parts.code_version, k)
        assert on_remote(folder, lock) is kept
    assert len(res.entries) == 4 - len(kept_a) - (1 if k else 0)
    assert res.kept["entries"] == len(kept_a) + (1 if k else 0)


def test_locks_given_keep_their_results_and_objects(
    folder: LocalRemote, objects: ObjectStore
) -> None:
    """The work tree's (or a ref's) locks keep their entries and objects, however old."""
    a, b = _three_and_one(objects, folder)
    age(folder, 2 * DAY)
    collect_remote(folder, [a[0]], KeepPolicy(keep_last=0), objects=objects)
    assert entry_there(folder, a[0]) and on_remote(folder, a[0])
    assert not any(entry_there(folder, x) or on_remote(folder, x) for x in (a[1], a[2], b))


def test_keep_days_keeps_recent_results_by_created_at(
    folder: LocalRemote, objects: ObjectStore
) -> None:
    now = datetime.now(UTC)
    old = result(objects, b"ten days", "a", "v1")
    new = result(objects, b"one day", "a", "v2")
    publish(objects, folder, old, now - timedelta(days=10))
    publish(objects, folder, new, now - timedelta(days=1))
    age(folder, 2 * DAY)
    collect_remote(folder, [], KeepPolicy(keep_last=0, keep_days=3), objects=objects)
    assert entry_there(folder, new) and on_remote(folder, new)
    assert not entry_there(folder, old) and not on_remote(folder, old)


def test_grace_is_measured_on_the_remotes_own_mtimes(
    folder: LocalRemote, objects: ObjectStore
) -> None:
    """An entry claiming 2024 but stored an hour ago (a concurrent push) stays, and so
    do its objects; an object stored an hour ago that nothing names stays too."""
    stored_old = result(objects, b"stored long ago", "a", "v1")
    publish(objects, folder, stored_old, OLD)
    age(folder, 2 * DAY)
    just_now = result(objects, b"stored an hour ago", "a", "v2")
    publish(objects, folder, just_now, OLD)  # created_at claims 2024
    loose = objects.add_bytes(b"an object with no entry yet")
    assert folder.put_bytes(folder.object_key(loose.oid), b"an object with no entry yet")
    hour = time.time() - 3600
    for path in (folder.object_key(loose.oid), folder.key(runcache.entry_rel(just_now))):
        os.utime(path, (hour, hour))
    res = collect_remote(folder, [], KeepPolicy(keep_last=0, grace_hours=24), objects=objects)
    assert entry_there(folder, just_now) and on_remote(folder, just_now)
    assert folder.exists(folder.object_key(loose.oid))
    assert not entry_there(folder, stored_old) and not on_remote(folder, stored_old)
    assert res.objects == [stored_old.outputs[0].hash]
    # Grace 0: the same remote loses everything nothing keeps.
    collect_remote(folder, [], KeepPolicy(keep_last=0, grace_hours=0), objects=objects)
    assert not folder.exists(folder.object_key(loose.oid)) and not entry_there(folder, just_now)


def test_a_young_head_stays_before_its_entry_is_there(
    folder: LocalRemote, objects: ObjectStore
) -> None:
    """A batched push may store a head a moment before its entry: gc listing in
    between sees a head with no entry, and must keep it (and what it names) for
    the grace like any young key, or the entry arriving next has no head."""
    early = result(objects, b"head stored first", "a", "v1")
    assert transfer.push(objects, folder, [early]).ok
    entry_key = folder.key(runcache.entry_rel(early))
    os.unlink(entry_key)  # the moment before the entry lands
    head_key = folder.key(runcache.head_rel(early.name, early.fingerprint))
    res = collect_remote(folder, [], KeepPolicy(keep_last=0, grace_hours=24), objects=objects)
    assert folder.exists(head_key) and on_remote(folder, early) and res.heads == []
    age(folder, 2 * DAY)
    res = collect_remote(folder, [], KeepPolicy(keep_last=0, grace_hours=24), objects=objects)
    assert not folder.exists(head_key) and res.heads == [runcache.head_rel("a", early.fingerprint)]


def test_folder_files_stay_while_a_manifest_naming_them_stays(
    folder: LocalRemote, objects: ObjectStore
) -> None:
    """A `.dir` manifest's files are kept through it (read from the remote and checked);
    a dropped folder takes its own files, not those another folder shares."""
    kept = folder_result(objects, {"x.csv": b"shared", "y.csv": b"only kept"}, "d", "v1")
    gone = folder_result(objects, {"x.csv": b"shared", "z.csv": b"only gone"}, "e", "v1")
    publish(objects, folder, kept, OLD)
    publish(objects, folder, gone, OLD)
    age(folder, 2 * DAY)
    elsewhere = ObjectStore(objects.root.parent.parent / "other")  # manifests from the remote
    res = collect_remote(folder, [kept], KeepPolicy(keep_last=0), objects=elsewhere)
    oid = lambda b: hash_bytes(b)  # noqa: E731
    assert folder.exists(folder.object_key(kept.outputs[0].hash))
    assert all(folder.exists(folder.object_key(oid(b))) for b in (b"shared", b"only kept"))
    assert not folder.exists(folder.object_key(oid(b"only gone")))
    assert sorted(res.objects) == sorted([gone.outputs[0].hash, oid(b"only gone")])


def test_dry_run_deletes_nothing_and_counts_what_a_run_removes(
    folder: LocalRemote, objects: ObjectStore
) -> None:
    _three_and_one(objects, folder)
    age(folder, 2 * DAY)
    before = sorted(x.key for x in folder.list_info(folder.root))
    dry = collect_remote(folder, [], KeepPolicy(keep_last=1), objects=objects, dry_run=True)
    assert sorted(x.key for x in folder.list_info(folder.root)) == before
    assert len(dry.entries) == 2 and len(dry.objects) == 2 and dry.pointers == []
    sizes = {x.key: x.size for x in folder.list_info(folder.root)}
    assert dry.nbytes["objects"] == 4  # b"a0", b"a1"
    assert dry.nbytes["entries"] == sum(sizes[folder.key(r)] for r in dry.entries)
    real = collect_remote(folder, [], KeepPolicy(keep_last=1), objects=objects)
    assert (real.entries, real.objects, real.nbytes) == (dry.entries, dry.objects, dry.nbytes)
    assert len(dry.heads) == 2 and real.heads == dry.heads  # their folders' heads go too
    assert len(folder.list_info(folder.root)) == len(before) - 6


def test_a_push_after_gc_uploads_a_deleted_object_again(
    folder: LocalRemote, objects: ObjectStore
) -> None:
    """The known-on-remote index forgets what gc deleted: the next push re-uploads it."""
    lock = result(objects, b"will be collected")
    assert transfer.push(objects, folder, [lock]).ok
    index = KnownIndex(objects.root, folder.identity)
    assert lock.outputs[0].hash in index.load()
    age(folder, 2 * DAY)
    res = collect_remote(folder, [], KeepPolicy(keep_last=0), objects=objects)
    assert res.objects == [lock.outputs[0].hash] and not on_remote(folder, lock)
    assert lock.outputs[0].hash not in index.load()
    again = transfer.push(objects, folder, [lock])
    assert again.ok and again.transferred == [lock.outputs[0].hash]
    assert on_remote(folder, lock) and entry_there(folder, lock)


def test_newest_pointer_always_stays_and_older_ones_go(
    folder: LocalRemote, objects: ObjectStore
) -> None:
    """Deleting the newest pointer would make an older result "latest" (stale)."""
    locks = [result(objects, f"p{i}".encode(), "p", f"v{i}") for i in range(3)]
    for i, lock in enumerate(locks):
        assert transfer.push(objects, folder, [lock], run_cache=False).ok
        pointers.publish_latest(folder, lock, created_at=datetime.now(UTC) - timedelta(hours=3 - i))
    age(folder, 2 * DAY)
    res = collect_remote(folder, [], KeepPolicy(keep_last=0), objects=objects)
    assert len(res.pointers) == 2
    assert pointers.latest_lock(folder, "p") == locks[2] and on_remote(folder, locks[2])
    assert not on_remote(folder, locks[0]) and not on_remote(folder, locks[1])


def test_unparsable_and_foreign_keys_are_left_and_reported(
    folder: LocalRemote, objects: ObjectStore
) -> None:
    lock = result(objects, b"real")
    publish(objects, folder, lock, OLD)
    root = Path(folder.root)
    junk = root / "runs" / "a" / lock.fingerprint / "0123456789abcdef.json"
    junk.write_text("{not json")
    lies = root / "runs" / "b" / lock.fingerprint / f"{runcache.entry_id(lock)}.json"
    lies.parent.mkdir(parents=True)
    lies.write_bytes(runcache.entry_bytes(lock, OLD))  # names a's record under b/
    stray = root / "files" / "zz" / "not-an-object"
    stray.parent.mkdir(parents=True)
    stray.write_text("x")
    odd = root / "runs" / "%2e%2e" / "x.json"
    odd.parent.mkdir(parents=True)
    odd.write_text("{}")
    age(folder, 2 * DAY)
    res = collect_remote(folder, [], KeepPolicy(keep_last=0), objects=objects)
    assert set(res.unparsable) == {
        f"runs/a/{lock.fingerprint}/0123456789abcdef.json",
        f"runs/b/{lock.fingerprint}/{runcache.entry_id(lock)}.json",
    }
    assert sorted(res.foreign) == sorted([str(stray), str(odd)])
    assert junk.exists() and lies.exists() and stray.exists() and odd.exists()
    assert res.entries == [runcache.entry_rel(lock)] and not on_remote(folder, lock)


def test_a_record_of_a_newer_pivot_stops_gc_before_any_delete(
    folder: LocalRemote, objects: ObjectStore
) -> None:
    lock = result(objects, b"x")
    publish(objects, folder, lock, OLD)
    doc = json.loads(runcache.entry_bytes(lock, OLD))
    doc["schema_version"] = 99
    newer = Path(folder.key(f"{keys.run_prefix('z', lock.fingerprint)}/{'1' * 16}.json"))
    newer.parent.mkdir(parents=True)
    newer.write_text(json.dumps(doc))
    age(folder, 2 * DAY)
    with pytest.raises(RemoteError, match="newer pivot"):
        collect_remote(folder, [], KeepPolicy(keep_last=0), objects=objects)
    assert entry_there(folder, lock) and on_remote(folder, lock)


# --- S3 (moto) ----------------------------------------------------------------


def _s3(cfg: dict[str, Any], endpoint: str | None = None) -> Remote:
    cfg = dict(cfg, **({"endpoint_url": endpoint} if endpoint else {}))
    return open_remote(remote=RemoteConfig(**cfg), name="origin")


def test_entries_go_before_objects_so_a_failed_gc_leaves_no_broken_entry(
    s3_remote_config: dict[str, Any], make_faulty_proxy: Any, tmp_path: Path
) -> None:
    """Real S3 requests: the second DeleteObjects (the objects) is refused with 403.
    gc stops with an error; the entries are gone, every object is still there, so
    no entry names a missing object. A second gc finishes the job."""
    objects = ObjectStore(tmp_path / "cache")
    rem = _s3(s3_remote_config)
    locks = [result(objects, f"r{i}".encode(), "a", f"v{i}") for i in range(3)]
    for i, lock in enumerate(locks):
        publish(objects, rem, lock, OLD + timedelta(days=i))
    # S3's LastModified and Date have whole seconds: an object uploaded in the second
    # the listing reports as "now" is within even a zero grace, kept, and then gc sends
    # one DeleteObjects, not two. Let a second pass so every object is past it.
    time.sleep(1.1)
    proxy = make_faulty_proxy(every=2, modes=("403",), methods=["POST"])
    flaky = _s3(s3_remote_config, proxy.url)
    with pytest.raises(RemoteError):
        collect_remote(flaky, [], KeepPolicy(keep_last=1, grace_hours=0), objects=objects)
    assert [entry_there(rem, lk) for lk in locks] == [False, False, True]
    assert all(on_remote(rem, lk) for lk in locks)
    res = collect_remote(rem, [], KeepPolicy(keep_last=1, grace_hours=0), objects=objects)
    assert [on_remote(rem, lk) for lk in locks] == [False, False, True]
    assert len(res.objects) == 2


def test_a_gc_machine_whose_clock_runs_ahead_uses_the_buckets_clock(
    s3_remote_config: dict[str, Any], tmp_path: Path
) -> None:
    """Grace on S3's clock: `LastModified` against the listing's `Date` header, so a
    gc whose own clock is ten days ahead still keeps what was uploaded just now."""
    objects = ObjectStore(tmp_path / "cache")
    rem = _s3(s3_remote_config)
    lock = result(objects, b"just uploaded")
    publish(objects, rem, lock, OLD)
    ahead = time.time() + 10 * DAY
    res = collect_remote(rem, [], KeepPolicy(keep_last=0), objects=objects, now=ahead)
    assert res.objects == [] and res.entries == []
    assert entry_there(rem, lock) and on_remote(rem, lock)
    assert rem.server_time is not None and abs(rem.server_time - time.time()) < 60


def _every_entry_is_whole(rem: Remote) -> tuple[int, list[str]]:
    """(entries on the remote, objects they name that are missing)."""
    listed = rem.list_info(f"{rem.root}/runs")
    missing = []
    for item in listed:
        entry = runcache.parse_entry(rem.get_bytes(item.key), item.key)
        missing += [o.hash for o in entry.lock.outputs if not rem.exists(rem.object_key(o.hash))]
    return len(listed), missing


@pytest.mark.parametrize("same_cache", [True, False], ids=["same-cache", "other-machine"])
def test_a_push_loop_during_gc_loses_no_object_of_a_kept_entry(
    s3_remote_config: dict[str, Any], tmp_path: Path, same_cache: bool
) -> None:
    """A thread pushes results while gc runs on moto: new results with new objects, and
    new results re-using old objects that gc is collecting (the race). Afterwards every
    entry on the remote names only objects the remote has. With gc on another machine
    (no copy to restore from) a broken entry is deleted (a miss) and reported as lost."""
    objects = ObjectStore(tmp_path / "cache")
    gc_objects = objects if same_cache else ObjectStore(tmp_path / "gc-cache")
    rem = _s3(s3_remote_config)
    old = [result(objects, f"old {i}".encode() * 50, f"n{i % 5}", f"v{i}") for i in range(60)]
    assert transfer.push(objects, rem, old).ok
    grace_s = 4.0
    time.sleep(grace_s + 0.5)
    stop = threading.Event()
    pushed: list[Lock] = []
    errors: list[BaseException] = []

    def loop() -> None:
        pusher = _s3(s3_remote_config)
        i = 0
        try:
            while not stop.is_set():
                fresh = result(objects, f"fresh {i}".encode(), f"n{i % 5}", f"w{i}")
                reuse = old[i % len(old)]
                again = Lock.build(
                    reuse.name, FingerprintParts(code_version=f"u{i}"), reuse.outputs
                )
                res = transfer.push(objects, pusher, [fresh, again])
                assert res.ok, res.failed
                pushed.extend([fresh, again])
                i += 1
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        time.sleep(0.5)
        done = []
        for _ in range(3):
            policy = KeepPolicy(keep_last=0, grace_hours=grace_s / 3600)
            done.append(collect_remote(rem, [], policy, objects=gc_objects))
        n_during = len(pushed)
    finally:
        stop.set()
        thread.join(60)
    assert not errors, errors
    assert n_during >= 4  # the loop really ran during gc
    assert sum(len(r.objects) for r in done) >= 30  # and gc really collected old objects
    if same_cache:
        assert all(not r.lost for r in done)
    n, missing = _every_entry_is_whole(rem)
    assert n > 0 and missing == []
    for lock in pushed:
        if entry_there(rem, lock):
            assert on_remote(rem, lock), lock


# --- CLI and git refs ---------------------------------------------------------


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def test_cli_keeps_a_lock_committed_on_another_branch(repo: Repo, cli: Any, tmp_path: Path) -> None:
    """`pivot gc --remote origin --rev other`: a lock only on branch `other`, read through
    git without a checkout, keeps its result; `--dry-run --json` counts first."""
    url = f"file://{tmp_path}/remote"
    repo.save_config(Config(remotes={"origin": RemoteConfig(url=url)}, default_remote="origin"))
    folder = open_remote(repo.config)
    _git(repo.root, "init", "-q", "-b", "main")
    _git(repo.root, "config", "user.email", "t@t")
    _git(repo.root, "config", "user.name", "t")
    branch_only = result(repo.objects, b"only on branch other", "x")
    nowhere = result(repo.objects, b"in no lock", "y")
    publish(repo.objects, folder, branch_only, OLD)
    publish(repo.objects, folder, nowhere, OLD)
    _git(repo.root, "checkout", "-q", "-b", "other")
    repo.write_lock(branch_only)
    _git(repo.root, "add", "-f", ".pivot/stages")
    _git(repo.root, "commit", "-q", "-m", "lock")
    _git(repo.root, "checkout", "-q", "-b", "main2", "HEAD~0")
    (repo.root / ".pivot" / "stages" / "x.lock").unlink()
    assert repo.read_lock("x") is None
    age(folder, 2 * DAY)  # type: ignore[arg-type]
    args = ["gc", "--remote", "origin", "--keep-last", "0", "--json"]
    code, out, _ = cli(*args, "--dry-run")
    assert code == 0
    dry = json.loads(out)
    assert dry["removed"]["entries"]["count"] == 2 and dry["removed"]["objects"]["count"] == 2
    assert on_remote(folder, branch_only) and on_remote(folder, nowhere)
    code, out, _ = cli(*args, "--rev", "other")
    assert code == 0, out
    done = json.loads(out)
    assert done["objects"] == [nowhere.outputs[0].hash]
    assert on_remote(folder, branch_only) and entry_there(folder, branch_only)
    assert not on_remote(folder, nowhere)
    code, _, err = cli(*args, "--rev", "no-such-branch")
    assert code != 0 and "no-such-branch" in err, err


def test_cli_keeps_the_work_trees_locks_unless_no_workspace(
    repo: Repo, cli: Any, tmp_path: Path
) -> None:
    url = f"file://{tmp_path}/remote"
    repo.save_config(Config(remotes={"origin": RemoteConfig(url=url)}, default_remote="origin"))
    folder = open_remote(repo.config)
    here = result(repo.objects, b"in the work tree", "w")
    publish(repo.objects, folder, here, OLD)
    repo.write_lock(here)
    age(folder, 2 * DAY)  # type: ignore[arg-type]
    code, out, _ = cli("gc", "--remote", "--keep-last", "0")
    assert code == 0 and "removed 0 objects" in out and on_remote(folder, here)
    code, out, _ = cli("gc", "--remote", "--keep-last", "0", "--no-workspace")
    assert code == 0 and "removed 1 objects" in out and "removed 1 entries" in out
    assert not on_remote(folder, here) and not entry_there(folder, here)


def test_a_pointer_published_after_gc_deleted_its_object_restores_it(
    folder: LocalRemote, objects: ObjectStore
) -> None:
    """Remote-first: the push found an old object present, gc deleted it, then the
    pointer was written (after gc's last listing): publishing it uploads it again."""
    lock = result(objects, b"reused by a new pointer")
    publish(objects, folder, lock, OLD)
    age(folder, 2 * DAY)
    collect_remote(folder, [], KeepPolicy(keep_last=0), objects=None)
    assert not on_remote(folder, lock)
    assert pointers.publish_latest(folder, lock, objects)
    assert pointers.latest_lock(folder, lock.name) == lock and on_remote(folder, lock)


def test_no_policy_keeps_every_result_and_collects_only_orphans(
    folder: LocalRemote, objects: ObjectStore
) -> None:
    """Neither --keep-last nor --keep-days: every entry stays; an object no record names
    (a push that stopped before its entry) goes once past the grace."""
    a, b = _three_and_one(objects, folder)
    orphan = objects.add_bytes(b"pushed, never named")
    assert folder.put_bytes(folder.object_key(orphan.oid), b"pushed, never named")
    age(folder, 2 * DAY)
    res = collect_remote(folder, [], KeepPolicy(), objects=objects)
    assert res.entries == [] and res.objects == [orphan.oid]
    assert all(entry_there(folder, x) and on_remote(folder, x) for x in [*a, b])
