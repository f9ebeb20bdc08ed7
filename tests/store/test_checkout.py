"""Checkout: hardlink, symlink, copy, reflink; fallbacks; contract line 4 (a checkout
never corrupts the cache) and trees that match their manifest exactly."""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from pivot_store.checkout import Checkout
from pivot_store.errors import CheckoutError, UnsafeName
from pivot_store.hashing import hash_file
from pivot_store.manifest import Entry, Manifest
from pivot_store.manifest import build as build_manifest
from pivot_store.objects import ObjectStore
from pivot_store.state import NullState
from tests.fixtures.parts import require

MODES = ["hardlink", "symlink", "copy", "reflink"]


@pytest.fixture
def store(tmp_path: Path) -> ObjectStore:
    return ObjectStore(tmp_path / ".pivot" / "cache" / "files")


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "pivot" and r.levelno >= 30]


def _can_reflink(src: Path, probe: Path) -> bool:
    import fcntl

    from pivot_store.checkout import FICLONE

    try:
        with open(src, "rb") as s, open(probe, "xb") as t:
            fcntl.ioctl(t.fileno(), FICLONE, s.fileno())
    except OSError:
        return False
    return True


@pytest.mark.parametrize("mode", MODES)
def test_file_checkout_in_each_mode(store: ObjectStore, tmp_path: Path, mode: str, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="pivot")
    oid = store.add_bytes(b"payload" * 100).oid
    co = Checkout(store, mode)
    dests = [tmp_path / "ws" / f"out{i}.bin" for i in range(3)]
    for d in dests:
        co.file(oid, d)
        assert d.read_bytes() == b"payload" * 100
    obj = store.path(oid)
    d = dests[0]
    if mode == "hardlink":
        assert d.stat().st_ino == obj.stat().st_ino and not d.is_symlink()
    elif mode == "symlink":
        assert d.is_symlink() and Path(os.readlink(d)) == obj
    else:
        assert d.stat().st_ino != obj.stat().st_ino and not d.is_symlink()
        assert stat.S_IMODE(d.stat().st_mode) == 0o644  # a copy is the user's to edit
    if mode == "reflink" and not _can_reflink(obj, tmp_path / "probe"):
        # ext4/tmpfs cannot clone: one warning for the whole checkout, then copies.
        assert len(_warnings(caplog)) == 1 and "copying instead" in _warnings(caplog)[0]
    else:  # a filesystem that clones (btrfs, xfs): reflinks, silently
        assert _warnings(caplog) == []
    assert list(d.parent.glob(".tmp-*")) == []


def test_hardlink_falls_back_to_copy_across_filesystems(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="pivot")
    require(
        Path("/dev/shm").is_dir() and os.stat("/dev/shm").st_dev != tmp_path.stat().st_dev,
        "a second filesystem",
        "/dev/shm is not a separate filesystem from the workspace here",
    )
    shm = Path(tempfile.mkdtemp(dir="/dev/shm"))
    try:
        store = ObjectStore(shm / "cache" / "files")
        oids = [store.add_bytes(b"x%d" % i).oid for i in range(3)]
        co = Checkout(store, "hardlink")
        for i, oid in enumerate(oids):
            co.file(oid, tmp_path / f"f{i}")
            assert (tmp_path / f"f{i}").read_bytes() == b"x%d" % i
        warnings = _warnings(caplog)
        assert len(warnings) == 1 and "hardlink not possible" in warnings[0]
    finally:
        shutil.rmtree(shm)


def test_empty_files_are_never_hardlinked(store: ObjectStore, tmp_path: Path) -> None:
    oid = store.add_bytes(b"").oid
    for mode in ("hardlink", "symlink"):
        d = tmp_path / mode
        Checkout(store, mode).file(oid, d)
        assert not d.is_symlink() and d.stat().st_ino != store.path(oid).stat().st_ino
        assert d.read_bytes() == b""


@pytest.mark.parametrize("mode", MODES)
def test_writing_to_a_writable_checkout_never_changes_the_cache(
    store: ObjectStore, tmp_path: Path, mode: str
) -> None:
    # Contract line 4: an output that will be modified in place is checked out as a copy.
    oid = store.add_bytes(b"original").oid
    d = tmp_path / "out"
    Checkout(store, mode, writable=True).file(oid, d)
    assert not d.is_symlink() and d.stat().st_ino != store.path(oid).stat().st_ino
    with open(d, "r+b") as f:
        f.write(b"CHANGED!")
    with open(d, "ab") as f:
        f.write(b" and more")
    assert store.read_bytes(oid) == b"original" and store.verify(oid)


def test_a_copy_checkout_edited_in_place_leaves_the_cache_alone(store: ObjectStore, tmp_path):
    oid = store.add_bytes(b"original").oid
    d = tmp_path / "out"
    Checkout(store, "copy").file(oid, d)
    d.write_bytes(b"rewritten")
    assert store.verify(oid)


def test_checkout_replaces_what_is_there(store: ObjectStore, tmp_path: Path) -> None:
    oid = store.add_bytes(b"new").oid
    d = tmp_path / "out"
    d.mkdir()
    (d / "junk").write_text("x")
    Checkout(store, "hardlink").file(oid, d)  # a folder where a file belongs
    assert d.read_bytes() == b"new"
    d.unlink()
    d.symlink_to(tmp_path / "elsewhere")
    Checkout(store, "copy").file(oid, d)  # a symlink is replaced, not followed
    assert not d.is_symlink() and not (tmp_path / "elsewhere").exists()


def test_missing_object_and_unknown_mode(store: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(CheckoutError, match="0123456789abcdef"):
        Checkout(store).file("0123456789abcdef", tmp_path / "x")
    with pytest.raises(CheckoutError, match="teleport"):
        Checkout(store, "teleport")
    assert not (tmp_path / "x").exists()


def test_exec_bits_survive_links_when_one_object_serves_both(store: ObjectStore, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "plain").write_bytes(b"#!/bin/sh\n")
    (src / "tool").write_bytes(b"#!/bin/sh\n")
    (src / "tool").chmod(0o755)
    m = build_manifest(src, store, NullState())
    assert len({e.hash for e in m.files()}) == 1
    for mode in MODES:
        dest = tmp_path / mode
        Checkout(store, mode).tree(m, dest)
        assert (
            not os.access(dest / "plain", os.X_OK) or os.stat(dest / "plain").st_mode & 0o111 == 0
        )
        assert os.stat(dest / "tool").st_mode & stat.S_IXUSR, mode
        assert os.stat(dest / "plain").st_mode & stat.S_IXUSR == 0, mode


@pytest.mark.parametrize("mode", MODES)
def test_tree_checkout_removes_only_what_the_previous_manifest_listed(
    store, tmp_path: Path, mode: str
):
    """Issue 12 item 2: files the previous manifest did not list (the user's, another
    tool's) survive a checkout; those it listed and the new one drops are removed."""
    src = tmp_path / "src"
    (src / "keep" / "deep").mkdir(parents=True)
    (src / "keep" / "deep" / "a.txt").write_text("a")
    (src / "b.txt").write_text("b")
    (src / "gone").mkdir()
    (src / "gone" / "c.txt").write_text("c")
    (src / "empty").mkdir()
    v1 = build_manifest(src, store, NullState())
    shutil.rmtree(src / "gone")
    (src / "b.txt").unlink()
    v2 = build_manifest(src, store, NullState())
    dest = tmp_path / "dest"
    co = Checkout(store, mode)
    co.tree(v1, dest)
    assert (dest / "gone" / "c.txt").read_text() == "c"
    (dest / "stray.txt").write_text("not tracked")
    (dest / "keep" / "stray").mkdir()
    co.tree(v2, dest, previous=v1)
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*"))
    assert files == ["empty", "keep", "keep/deep", "keep/deep/a.txt", "keep/stray", "stray.txt"]
    assert (dest / "stray.txt").read_text() == "not tracked"
    (dest / "stray.txt").unlink()
    (dest / "keep" / "stray").rmdir()
    assert build_manifest(dest, None, NullState(), link_roots=(store.root,)).oid() == v2.oid()


def test_tree_checkout_without_a_previous_manifest_deletes_nothing(store, tmp_path: Path):
    """A folder checked out where no lock listed it before (a remote hit, a first
    checkout): every file already there stays; only the manifest's are written."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    m = build_manifest(src, store, NullState())
    dest = tmp_path / "dest"
    (dest / "sub").mkdir(parents=True)
    (dest / "mine.txt").write_text("mine")
    (dest / "sub" / "hook").write_text("#!/bin/sh\n")
    Checkout(store, "copy").tree(m, dest)
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*"))
    assert files == ["a.txt", "mine.txt", "sub", "sub/hook"]


def test_tree_checkout_never_writes_through_a_symlinked_subfolder(store, tmp_path: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    oid = store.add_bytes(b"data").oid
    m = Manifest((Entry("sub/f.txt", oid, 4), Entry("top.txt", oid, 4)))
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "sub").symlink_to(outside)
    with pytest.raises(UnsafeName, match="outside"):
        Checkout(store, "copy").tree(m, dest)
    assert list(outside.iterdir()) == []


def test_tree_checkout_refuses_a_hostile_manifest(store, tmp_path: Path) -> None:
    oid = store.add_bytes(b"data").oid
    for bad in ("../../x", "/etc/x", "a/../../x"):
        with pytest.raises(UnsafeName):
            Checkout(store, "copy").tree(Manifest((Entry(bad, oid, 4),)), tmp_path / "d")
    assert not (tmp_path / "x").exists()


def test_tree_checkout_is_idempotent_and_byte_exact(store, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(20):
        (src / f"f{i}").write_bytes(os.urandom(i * 100))
    m = build_manifest(src, store, NullState())
    dest = tmp_path / "dest"
    for _ in range(2):
        Checkout(store, "hardlink").tree(m, dest)
        for i in range(20):
            assert hash_file(dest / f"f{i}") == hash_file(src / f"f{i}")


def test_hardlink_to_a_missing_destination_links_straight_to_it(
    store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No temp, no rename: the link is made under the final name (a hard link is
    never half-written), and nested folders are made on the way."""
    oid = store.add_bytes(b"linked" * 100).oid
    replaced: list[object] = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: replaced.append(b) or real_replace(a, b))
    dest = tmp_path / "ws" / "a" / "b" / "f.bin"
    Checkout(store, "hardlink").file(oid, dest)
    assert dest.stat().st_ino == store.path(oid).stat().st_ino
    assert replaced == [] and os.listdir(dest.parent) == ["f.bin"]
    # A tree: every file a link to its object, no temp left in any folder.
    (tmp_path / "src" / "d").mkdir(parents=True)
    (tmp_path / "src" / "d" / "x").write_bytes(b"x" * 10)
    (tmp_path / "src" / "y").write_bytes(b"y" * 10)
    manifest = build_manifest(tmp_path / "src", store, NullState())
    Checkout(store, "hardlink").tree(manifest, tmp_path / "out")
    for e in manifest.files():
        assert (tmp_path / "out" / e.path).stat().st_ino == store.path(e.hash).stat().st_ino
    assert sorted(os.listdir(tmp_path / "out")) == ["d", "y"] and replaced == []


@pytest.mark.parametrize("what", ["other bytes", "same bytes", "folder", "symlink", "same inode"])
def test_hardlink_to_an_existing_destination_replaces_it_whole(
    store: ObjectStore, tmp_path: Path, what: str
) -> None:
    oid = store.add_bytes(b"wanted" * 100).oid
    obj = store.path(oid)
    dest = tmp_path / "ws" / "f.bin"
    dest.parent.mkdir()
    if what == "other bytes":
        dest.write_bytes(b"old")
    elif what == "same bytes":
        dest.write_bytes(b"wanted" * 100)
    elif what == "folder":
        (dest / "inner").mkdir(parents=True)
        (dest / "inner" / "x").write_bytes(b"x")
    elif what == "symlink":
        (tmp_path / "elsewhere").write_bytes(b"elsewhere")
        dest.symlink_to(tmp_path / "elsewhere")
    else:
        os.link(obj, dest)
    Checkout(store, "hardlink").file(oid, dest)
    assert not dest.is_symlink() and dest.stat().st_ino == obj.stat().st_ino
    assert os.listdir(dest.parent) == ["f.bin"]  # no temp left behind
    assert obj.read_bytes() == b"wanted" * 100 and _mode(obj) == 0o444
    if what == "symlink":
        assert (tmp_path / "elsewhere").read_bytes() == b"elsewhere"  # not written through


class _LinkedMeanwhile(Checkout):
    """Another process replaces `dest` with a link to the object between this
    one's check of `dest` and its rename (two `pivot checkout`s of one folder)."""

    def _already(self, src: Path, src_st: os.stat_result, dest: Path) -> bool:
        os.unlink(dest)
        os.link(src, dest)
        return False


def test_a_rename_onto_a_link_of_the_same_object_leaves_no_temp(
    store: ObjectStore, tmp_path: Path
) -> None:
    oid = store.add_bytes(b"wanted" * 100).oid
    dest = tmp_path / "ws" / "f.bin"
    dest.parent.mkdir()
    dest.write_bytes(b"old")  # something is there: the direct link is refused
    _LinkedMeanwhile(store, "hardlink").file(oid, dest)
    assert os.listdir(dest.parent) == ["f.bin"]  # rename(2) onto the same inode did nothing
    assert dest.stat().st_ino == store.path(oid).stat().st_ino


def test_hardlink_failure_is_tried_once_then_copies(
    store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    """EXDEV on the direct link: the temp path warns once and copies; later files do
    not try the direct link again."""
    import errno

    caplog.set_level(logging.WARNING, logger="pivot")
    oids = [store.add_bytes(b"x%d" % i).oid for i in range(4)]
    calls: list[object] = []

    def no_links(src, dst, *a, **kw):
        calls.append(dst)
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    monkeypatch.setattr(os, "link", no_links)
    co = Checkout(store, "hardlink")
    for i, oid in enumerate(oids):
        co.file(oid, tmp_path / f"f{i}")
        assert (tmp_path / f"f{i}").read_bytes() == b"x%d" % i
    direct = [d for d in calls if not Path(d).name.startswith(".tmp-")]
    assert direct == [tmp_path / "f0"]  # the direct link is tried for the first file only
    assert len(_warnings(caplog)) == 1


def _mode(p: Path) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)
