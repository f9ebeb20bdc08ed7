"""WorkspaceIndex: the hash each tracked workspace output had, by its stat signature.

`pivot status` asks, for every output with a workspace path, whether the file
or folder there still hashes to what its lock says. The state db saves
rehashing big files only; a folder of 10,000 small files was read and hashed
in full on every call. Here each output's path keeps the hash it had and the
signature it had it at:

- a file: (device, inode, size, mtime_ns, ctime_ns), the state db's stamp;
- a folder: a digest of every entry's relative path and that stamp plus its
  mode, in scan order, empty folders included. Any file written, replaced,
  added, removed, renamed or chmodded changes it.

A hash is used only when the signature is equal, and recorded only when
every stamp in it is `RACY_NS` older than the moment hashing began (`settled`),
so a change within one timestamp tick cannot hide behind an equal signature.
The signature is the one taken before hashing, and "settled" is judged at a
moment taken before any byte is read: a file changed while it was hashed has
another signature by the next call. Values carry a checksum
(`index_record`); a damaged one is a miss. This only ever saves a hash.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
import time
from pathlib import Path
from typing import Protocol

import xxhash

from pivot_store import folder_index
from pivot_store.index_prune import prune as prune_keys
from pivot_store.index_record import pack, settled, signature, unpack
from pivot_store.manifest import build as build_manifest
from pivot_store.manifest import scan
from pivot_store.state import RACY_NS, NullState

_PREFIX = b"\x00workspace-index v1\x00"
_now = time.time_ns  # the moment of recording (tests move it)
_ENTRY = struct.Struct("<QQQqqQ")
_ABSENT = (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP)


class Output(Protocol):
    """An `OutputRecord` or a `lock_index.OutputSummary`."""

    @property
    def path(self) -> str | None: ...
    @property
    def hash(self) -> str: ...
    @property
    def kind(self) -> str: ...


class WorkspaceIndex:
    """Known hashes of workspace outputs, read and written through the state db."""

    def __init__(self, state: NullState, link_roots: tuple[Path, ...] = ()) -> None:
        self.state = state
        self.link_roots = link_roots
        self._known: dict[bytes, bytes | None] = {}
        self._pending: list[tuple[bytes, bytes]] = []

    def prefetch(self, paths: list[str]) -> None:
        """Read the entries of `paths` in one transaction (a status of many outputs)."""
        todo = [_key(p) for p in paths]
        todo = [k for k in todo if k not in self._known]
        self._known.update(zip(todo, self.state.get_many(todo), strict=True))

    def _stored(self, key: bytes) -> object:
        if key not in self._known:
            self._known[key] = self.state.get_many([key])[0]
        return unpack(self._known[key])

    def _remember(self, key: bytes, data: object) -> None:
        value = pack(data)
        self._known[key] = value
        self._pending.append((key, value))

    def file_hash(self, path: Path | str, st: os.stat_result) -> str:
        """The hash of the file at `path`, whose `os.stat` is `st`."""
        key = _key(path)
        sig = list(signature(st))
        stored = self._stored(key)
        known = stored[1] if type(stored) is list and len(stored) == 2 else None
        if type(known) is str and stored[0] == sig:  # type: ignore[index]
            return known
        started = _now()  # before the read: a later write lands in a later tick
        oid = self.state.hash(Path(path), st)
        if settled(st, started):
            self._remember(key, [sig, oid])
        return oid

    def folder_hash(self, path: Path | str) -> str:
        """The manifest id of the folder at `path` (`manifest.build` without objects);
        a changed folder rehashes only its changed files (`folder_index`)."""
        key = _key(path)
        stored = self._stored(key)
        folder = Path(path)
        listing = list(scan(folder, self.link_roots))
        seen = [(rel, st) for rel, _, st in listing]
        digest, newest = _digest(seen)
        known = stored[1] if type(stored) is list and len(stored) == 2 else None
        if type(known) is str and digest == stored[0]:  # type: ignore[index]
            return known
        started = _now()  # before any file is read (`settled`)
        oid = build_manifest(
            folder, None, self.state, link_roots=self.link_roots, listing=listing
        ).oid()
        if started - newest >= RACY_NS:
            self._remember(key, [digest, oid])
        return oid

    def flush(self) -> None:
        """Write what this run learnt, in one transaction."""
        pending, self._pending = self._pending, []
        self.state.put_many(pending)


def output_status(objects: object, index: WorkspaceIndex, root: Path, out: Output) -> str:
    """ok | modified | missing from workspace | missing from cache, for one output."""
    exists = objects.exists  # type: ignore[attr-defined]
    in_cache = exists(out.hash)
    if out.path is None:
        return "ok" if in_cache else "missing from cache"
    dest = f"{root}/{out.path}"  # a validated name inside the resolved root: no Path needed
    try:
        st = os.stat(dest)
    except OSError as e:
        if e.errno not in _ABSENT:  # what `Path.exists` calls absent
            raise
        return "missing from workspace" if in_cache else "missing from cache"
    if out.kind == "dir":
        current = index.folder_hash(dest) if stat.S_ISDIR(st.st_mode) else None
    else:
        # No inode shortcut: a hardlinked file written in place (root ignores
        # 0444) shares the object's inode, and only its stamp and bytes tell.
        current = None if stat.S_ISDIR(st.st_mode) else index.file_hash(dest, st)
    if current != out.hash:
        return "modified"
    return "ok" if in_cache else "missing from cache"


def prune(state: NullState, paths: list[str]) -> None:
    """Drop the entries (and folder tables, `folder_index`) of every output path
    but `paths`: those of a status of every lock (`index_prune`)."""
    prune_keys(state, _PREFIX, [_key(p) for p in paths])
    prune_keys(state, folder_index.PREFIX, [folder_index.key(p) for p in paths])


def _key(path: Path | str) -> bytes:
    return _PREFIX + os.fsencode(os.path.abspath(path))


def _digest(entries: list[tuple[str, os.stat_result | None]]) -> tuple[str, int]:
    """(the folder's signature, the newest mtime or ctime in it)."""
    parts: list[bytes] = []
    newest = 0
    pack_entry = _ENTRY.pack
    for rel, st in entries:
        name = rel.encode("utf-8", "surrogateescape")
        parts.append(len(name).to_bytes(4, "little") + name)
        if st is None:
            parts.append(b"\x00")
            continue
        parts.append(
            b"\x01"
            + pack_entry(
                st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode
            )
        )
        newest = max(newest, st.st_mtime_ns, st.st_ctime_ns)
    return xxhash.xxh3_128_hexdigest(b"".join(parts)), newest
