"""The engine without Dagster: store, record, find (and where from), restore, load, remote."""

from __future__ import annotations

from pathlib import Path

import pytest

from pivot_dagster import formats
from pivot_dagster.engine import LOCAL_SOURCE, LOCK_SOURCE, Engine, MissingUpstream
from pivot_store import runcache
from pivot_store.config import Config, RemoteConfig
from pivot_store.errors import ObjectMissing
from pivot_store.lockfile import FingerprintParts, Lock
from pivot_store.repo import Repo


def _repo(root: Path, remote: Path | None = None) -> Repo:
    repo = Repo.open(root)
    if remote is not None:
        cfg = {"origin": RemoteConfig(url=f"file://{remote}")}
        repo.save_config(Config(remotes=cfg, default_remote="origin"))
        repo = Repo.open(root)
    return repo


def _save(engine: Engine, value: object, cv: str = "1", *, run_cache: bool = True) -> Lock:
    parts = FingerprintParts(code_version=cv)
    handler = formats.choose(value)
    return engine.save_computed("x", parts, value, handler, "result", run_cache=run_cache)


def test_find_result_names_where_it_found_the_result(tmp_path: Path) -> None:
    engine = Engine(_repo(tmp_path))
    first = _save(engine, {"v": 1})
    assert engine.find_result("x", first.parts) == (first, LOCK_SOURCE)
    second = _save(engine, {"v": 2}, cv="2")  # replaces the lock; the first stays cached
    assert engine.find_result("x", first.parts) == (first, LOCAL_SOURCE)
    assert engine.find_result("x", second.parts) == (second, LOCK_SOURCE)
    engine.repo.objects.remove(first.outputs[0].hash)
    assert engine.find_result("x", first.parts) is None  # objects gone: not a result


def test_find_result_from_the_remote_and_its_label(tmp_path: Path) -> None:
    a = Engine(_repo(tmp_path / "a", tmp_path / "remote"), remote="origin")
    lock = _save(a, [1, 2])
    assert a.push([lock]).ok
    b_repo = _repo(tmp_path / "b", tmp_path / "remote")
    b = Engine(b_repo, remote="origin")
    found = b.find_result("x", lock.parts)
    assert found is not None and found.lock == lock
    assert found.source == f"origin (file://{tmp_path / 'remote'})"
    assert b.load(found.lock.outputs[0]) == [1, 2]
    # Not pulling: the remote is not asked.
    c = Engine(_repo(tmp_path / "c", tmp_path / "remote"), remote="origin", pull_missing=False)
    assert c.find_result("x", lock.parts) is None


def test_untrusted_remote_pickles_are_not_results(tmp_path: Path) -> None:
    a = Engine(_repo(tmp_path / "a", tmp_path / "remote"), remote="origin")
    parts = FingerprintParts(code_version="1")
    lock = a.save_computed("x", parts, {1, 2}, formats.choose({1, 2}), "result", run_cache=True)
    assert lock.outputs[0].format == "pickle" and a.push([lock]).ok
    b = Engine(_repo(tmp_path / "b", tmp_path / "remote"), remote="origin")
    assert b.find_result("x", parts) is None
    trusting = Engine(b.repo, remote="origin", trust_remote_pickle=True)
    found = trusting.find_result("x", parts)
    assert found is not None and found.lock == lock


def test_recorded_lock_finds_replaced_results_in_the_run_cache(tmp_path: Path) -> None:
    engine = Engine(_repo(tmp_path))
    first = _save(engine, "one")
    fp, h = first.fingerprint, first.outputs[0].hash
    assert engine.recorded_lock("x", fp, h) == (first, True)
    _save(engine, "two", cv="2")
    assert engine.recorded_lock("x", fp, h) == (first, True)
    assert engine.recorded_lock("x", fp, "0" * 16) == (None, False)
    plain = _save(engine, "three", cv="3", run_cache=False)
    assert engine.recorded_lock("x", plain.fingerprint, plain.outputs[0].hash) == (plain, False)
    assert not runcache.local_entry_path(engine.repo.runs_dir, plain).exists()


def test_record_leaves_an_equal_lock_file_alone(tmp_path: Path) -> None:
    engine = Engine(_repo(tmp_path))
    lock = _save(engine, "same")
    path = engine.repo.lock_path("x")
    before = path.stat().st_mtime_ns, path.stat().st_ino
    engine.record(lock)
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == before


def test_checkout_mode_is_the_engines_own(tmp_path: Path) -> None:
    """A copy-mode IO manager leaves the project's config (hardlink) as it is."""
    repo = _repo(tmp_path)
    (tmp_path / "out.txt").write_text("data")
    engine = Engine(repo, checkout_mode="copy")
    assert engine.checkout_mode == "copy" and repo.config.checkout_mode == "hardlink"
    rec = engine.store_value(Path("out.txt"), formats.by_name("path"), "report")
    assert (rec.name, rec.path, rec.format) == ("report", "out.txt", "path")
    assert (tmp_path / "out.txt").stat().st_ino != repo.objects.path(rec.hash).stat().st_ino
    assert Engine(repo).checkout_mode == "hardlink"


def test_load_upstream_errors_name_the_fix(tmp_path: Path) -> None:
    engine = Engine(_repo(tmp_path))
    with pytest.raises(MissingUpstream, match="materialize that asset"):
        engine.load_upstream("up", None, "result")
    lock = _save(engine, [3])
    assert engine.load_upstream("x", lock, "result") == [3]
    engine.repo.objects.remove(lock.outputs[0].hash)
    with pytest.raises(ObjectMissing, match="no remote is configured"):
        engine.load_upstream("x", lock, "result")


def test_missing_on_remote_lists_what_a_push_would_send(tmp_path: Path) -> None:
    engine = Engine(_repo(tmp_path, tmp_path / "remote"), remote="origin")
    lock = _save(engine, b"bytes")
    assert engine.missing_on_remote([lock]) == [lock.outputs[0].hash]
    assert engine.push([lock]).ok
    assert engine.missing_on_remote([lock]) == []


def test_a_missing_format_is_never_read_as_pickle(tmp_path: Path) -> None:
    """Issue 12 item 1: a load that cannot recompute fails clearly; no default to pickle."""
    from pivot_store.errors import LockError

    engine = Engine(_repo(tmp_path))
    lock = _save(engine, {1, 2})  # a pickle, made here
    out = lock.outputs[0].replace(format=None)
    with pytest.raises(LockError, match="no format"):
        engine.load(out)
    assert engine.load(lock.outputs[0]) == {1, 2}  # this project's own pickle loads


def test_a_remote_pickle_is_refused_on_every_load_until_made_here(tmp_path: Path) -> None:
    """Issue 12 item 3: provenance, not "was it fetched just now", decides."""
    from pivot_dagster.engine import UntrustedPickle

    a = Engine(_repo(tmp_path / "a", tmp_path / "remote"), remote="origin")
    lock = _save(a, {1, 2})
    assert a.push([lock]).ok
    b = Engine(_repo(tmp_path / "b", tmp_path / "remote"), remote="origin")
    for _ in range(2):
        with pytest.raises(UntrustedPickle):
            b.load_upstream("x", lock, "result")
    trusting = Engine(b.repo, remote="origin", trust_remote_pickle=True)
    assert trusting.load_upstream("x", lock, "result") == {1, 2}
    assert b.repo.objects.from_remote(lock.outputs[0].hash)
    _save(b, {1, 2})  # the same bytes produced here: no longer remote
    assert b.load_upstream("x", lock, "result") == {1, 2}


def test_a_remote_entry_in_a_format_the_asset_cannot_make_is_a_miss(tmp_path: Path, caplog) -> None:
    a = Engine(_repo(tmp_path / "a", tmp_path / "remote"), remote="origin")
    lock = _save(a, {"v": 1})
    assert a.push([lock]).ok
    b = Engine(_repo(tmp_path / "b", tmp_path / "remote"), remote="origin")
    assert b.find_result("x", lock.parts, formats.Expected(forced="raw")) is None
    assert "refusing run-cache entry" in caplog.text and "'raw'" in caplog.text
    assert b.find_result("x", lock.parts, formats.Expected(forced="json")) is not None


def test_restore_of_a_folder_removes_only_what_its_lock_listed(tmp_path: Path) -> None:
    """Issue 12 item 2: a hit's tree checkout keeps files the previous lock did not list."""
    engine = Engine(_repo(tmp_path), checkout_mode="copy")
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "old.txt").write_text("old")
    parts = FingerprintParts(code_version="1")
    handler = formats.by_name("path")
    v1 = engine.save_computed("x", parts, folder, handler, "result", run_cache=True)
    (folder / "old.txt").unlink()
    (folder / "new.txt").write_text("new")
    parts2 = FingerprintParts(code_version="2")
    v2 = engine.save_computed("x", parts2, folder, handler, "result", run_cache=True)
    (folder / "mine.txt").write_text("the user's")
    engine.save_hit("x", v1, v1.parts)  # back to v1: new.txt was listed by v2, mine.txt not
    assert sorted(p.name for p in folder.iterdir()) == ["mine.txt", "old.txt"]
    assert v2.outputs[0].hash != v1.outputs[0].hash


def test_a_remote_file_never_replaces_a_folder_here(tmp_path: Path) -> None:
    """A Path output from a remote is a file where this project has a folder: refused,
    not `rmtree`d (the checkout would replace the folder and everything in it)."""
    from pivot_store.errors import UnsafeName

    a = Engine(_repo(tmp_path / "a", tmp_path / "remote"), remote="origin")
    (a.repo.root / "src").write_text("a file")
    parts = FingerprintParts(code_version="1")
    handler = formats.by_name("path")
    lock = a.save_computed("x", parts, a.repo.root / "src", handler, "result", run_cache=True)
    assert a.push([lock]).ok
    b = Engine(_repo(tmp_path / "b", tmp_path / "remote"), remote="origin")
    (b.repo.root / "src").mkdir()
    (b.repo.root / "src" / "code.py").write_text("mine")
    with pytest.raises(UnsafeName, match="folder here"):
        b.restore(lock, "x")
    assert (b.repo.root / "src" / "code.py").read_text() == "mine"


def test_a_path_output_is_stored_by_copy_and_restored_as_a_private_copy(tmp_path: Path) -> None:
    """Issue 15 item 2: the asset's own file never becomes the object, whatever the
    project's checkout mode (hardlink here), so rewriting it in place (as the next
    run does; root ignores 0444) leaves every stored result's bytes as they were."""
    from pivot_store.integrity import verify

    repo = _repo(tmp_path)
    engine = Engine(repo)  # the project's hardlink mode
    out = tmp_path / "out.txt"
    out.write_text("one")
    first = engine.store_value(Path("out.txt"), formats.by_name("path"), "report")
    assert out.stat().st_ino != repo.objects.path(first.hash).stat().st_ino
    with open(out, "w") as f:  # the next run rewrites it in place
        f.write("two!")
    second = engine.store_value(Path("out.txt"), formats.by_name("path"), "report")
    assert repo.objects.path(first.hash).read_text() == "one"
    # A hit on the first result checks it out again: a copy, writable in place.
    engine.load(first, owner="report")
    assert out.read_text() == "one"
    assert out.stat().st_ino != repo.objects.path(first.hash).stat().st_ino
    with open(out, "w") as f:
        f.write("three")
    assert repo.objects.path(first.hash).read_text() == "one"
    assert repo.objects.path(second.hash).read_text() == "two!"
    assert verify(repo.objects).corrupt == []
