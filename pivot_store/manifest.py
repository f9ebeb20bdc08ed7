"""Directory manifests: a folder as one `.dir` object listing its files.

The manifest is canonical JSON (entries sorted by posix relpath) so the same
folder always gets the same id; files are ordinary objects, so two versions of
a folder share every unchanged file. Empty folders are entries without a hash.
Reading a manifest validates every path: a hostile manifest cannot name
`../x` or an absolute path.
"""

from __future__ import annotations

import json
import operator
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pivot_store import keys
from pivot_store import oid as oids
from pivot_store.atomic import is_own_temp
from pivot_store.errors import ManifestError, PivotError, TrackError
from pivot_store.folder_index import FolderIndex
from pivot_store.hashing import canonical_json, hash_bytes
from pivot_store.objects import Added, ObjectStore
from pivot_store.state import NullState

MANIFEST_VERSION = 1
_NAME = operator.attrgetter("name")


@dataclass(frozen=True)
class Entry:
    path: str
    hash: str | None  # None: an empty folder
    size: int = 0
    exec: bool = False


@dataclass(frozen=True)
class Manifest:
    entries: tuple[Entry, ...]

    @property
    def size(self) -> int:
        return sum(e.size for e in self.entries)

    def files(self) -> Iterator[Entry]:
        return (e for e in self.entries if e.hash is not None)

    def to_bytes(self) -> bytes:
        rows = []
        for e in sorted(self.entries, key=lambda e: e.path):
            row: dict[str, object] = {"path": e.path}
            if e.hash is None:
                row["dir"] = True
            else:
                row.update(hash=e.hash, size=e.size, exec=e.exec)
            rows.append(row)
        return canonical_json({"version": MANIFEST_VERSION, "entries": rows})

    def oid(self) -> str:
        return hash_bytes(self.to_bytes()) + oids.DIR_SUFFIX

    @classmethod
    def from_bytes(cls, data: bytes, source: str) -> Manifest:
        try:
            doc = json.loads(data)
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
            if doc.get("version") != MANIFEST_VERSION:
                raise ValueError(f"unknown manifest version {doc.get('version')!r}")
            entries = tuple(_entry(row) for row in doc["entries"])
            _check_tree(entries)
        except RecursionError:
            raise ManifestError(
                f"manifest {source} is malformed: nested too deeply",
                "run `pivot verify --repair` and pull it again",
            ) from None
        except (ValueError, KeyError, TypeError, AttributeError, PivotError) as e:
            raise ManifestError(
                f"manifest {source} is malformed: {e}",
                "run `pivot verify --repair` and pull it again",
            ) from None
        return cls(entries)


def _entry(row: dict) -> Entry:
    if not isinstance(row, dict):
        raise ValueError("an entry is not a JSON object")
    path = keys.validate_name(row["path"])
    if row.get("dir"):
        return Entry(path, None)
    size = row["size"]
    if type(size) is not int or size < 0:  # a bool is an int to isinstance
        raise ValueError(f"bad size for {path!r}")
    return Entry(path, oids.validate(row["hash"]), size, bool(row.get("exec", False)))


def _check_tree(entries: tuple[Entry, ...]) -> None:
    """One entry per path, and no file that is also a folder of other entries:
    a checkout could not place such a tree."""
    seen: set[str] = set()
    files: set[str] = set()
    for e in entries:
        if e.path in seen:
            raise ValueError(f"duplicate path {e.path!r}")
        seen.add(e.path)
        if e.hash is not None:
            files.add(e.path)
    for e in entries:
        parts = e.path.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in files:
                raise ValueError(f"{e.path!r} is inside {'/'.join(parts[:i])!r}, a file")


def read_manifest(objects: ObjectStore, oid: str) -> Manifest:
    return Manifest.from_bytes(objects.read_bytes(oid), oid)


def scan(
    root: Path, link_roots: tuple[Path, ...] = ()
) -> Iterator[tuple[str, str, os.stat_result | None]]:
    """Yield (relpath, path, stat) for each file, (relpath, path, None) for empty dirs.

    Paths are strings (a folder of thousands of files makes no Path objects).

    A pivot writer's temp file (`atomic.is_own_temp`: a concurrent checkout's
    file before its rename) is not the folder's content and is not yielded.

    Symlinks are followed only when they stay inside `root` (or point into one of
    `link_roots`: the cache, which a symlink checkout links to); one that leaves
    them is refused, since its target is not part of the tracked folder.
    """
    root_r = root.resolve()
    allowed = (root_r, *(r.resolve() for r in link_roots))
    stack: list[tuple[str | Path, str]] = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        with os.scandir(folder) as it:
            entries = sorted((e for e in it if not is_own_temp(e.name)), key=_NAME)
        if not entries and prefix:
            yield prefix.rstrip("/"), os.fspath(folder), None
        for e in entries:
            rel = prefix + e.name
            if e.is_symlink():
                target = Path(e.path).resolve()
                inside = any(target.is_relative_to(r) for r in allowed)
                if not inside or not target.is_file():
                    raise TrackError(
                        f"{e.path} is a symlink to {target}, outside the tracked folder",
                        "replace it with a copy of the file, or remove it",
                    )
                yield rel, e.path, os.stat(e.path)
            elif e.is_dir(follow_symlinks=False):
                stack.append((e.path, rel + "/"))
            elif e.is_file(follow_symlinks=False):
                yield rel, e.path, e.stat(follow_symlinks=False)


def build(
    root: Path,
    objects: ObjectStore | None,
    state: NullState,
    *,
    move: bool = False,
    link_roots: tuple[Path, ...] = (),
    unlinked: list[str] | None = None,
    seen: list[tuple[str, os.stat_result | None]] | None = None,
    listing: list[tuple[str, str, os.stat_result | None]] | None = None,
) -> Manifest:
    """Hash a folder; with `objects`, also add its files (and the manifest itself).

    A file whose stat signature is the one it was last hashed at here is not
    read again (`folder_index`): a changed folder costs what changed.
    `unlinked`, when given, collects the non-empty files that are not now their
    cache object (a move-add could not link them, or `move` is off): after a
    move-add that leaves it empty, a hardlink checkout would change nothing.
    `seen`, when given, collects (relpath, stat) of each entry as it was before
    its file was hashed (`workspace_index` signs a folder's state with them).
    `listing` is a `scan` of `root` the caller has just made (not made again).
    """
    entries = []
    if objects is not None:
        link_roots = (*link_roots, objects.root)
    index = FolderIndex(state, root)
    with state.batch():  # one state-db commit for the folder, not one per file
        for rel, path, st in listing if listing is not None else scan(root, link_roots):
            keys.validate_name(rel)
            if seen is not None:
                seen.append((rel, st))
            if st is None:
                entries.append(Entry(rel, None))
                continue
            executable = bool(st.st_mode & stat.S_IXUSR)
            known = index.known(rel, st)
            if objects is None:
                h = known if known is not None else state.hash(path, st)
            else:
                added = None if known is None else _reuse(objects, known, st, move)
                if added is None:
                    added = objects.add_file(path, move=move, executable=executable, state=state)
                h = added.oid
                if unlinked is not None and not added.linked and st.st_size > 0:
                    unlinked.append(rel)
            index.remember(rel, st, h)
            entries.append(Entry(rel, h, st.st_size, executable))
    manifest = Manifest(tuple(entries))
    if objects is not None:
        objects.add_bytes(manifest.to_bytes(), suffix=oids.DIR_SUFFIX)
    index.flush()
    return manifest


def _reuse(objects: ObjectStore, oid: str, st: os.stat_result, move: bool) -> Added | None:
    """What `add_file` would return for an unchanged file known to hash to `oid`,
    without reading it; None when it must be added (the object is gone, or a
    move-add has not made the file its object yet)."""
    try:
        obj = os.stat(objects.path(oid))
    except OSError:
        return None
    linked = move and st.st_size > 0 and (obj.st_dev, obj.st_ino) == (st.st_dev, st.st_ino)
    if move and st.st_size > 0 and not linked:
        return None
    objects.freshen(oid)
    return Added(oid, st.st_size, False, linked=linked)
