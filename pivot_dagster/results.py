"""Storing, finding and loading asset results in a Repo: plain functions, no Dagster.

Write order (contract): objects, then the lock, then the run-cache entry, all
under the repo's shared writer lock so gc cannot collect an object between
its add and the lock naming it. The local run-cache mirrors the remote layout:
`.pivot/runs/<lock name>/<fingerprint>/<output hash>.lock`; entries are never
overwritten (a second result for one fingerprint lands beside the first).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pivot_dagster import formats, remote_hook
from pivot_dagster.formats.base import FormatHandler
from pivot_store import atomic, keys, runcache
from pivot_store.errors import ObjectMissing, TrackError
from pivot_store.lockfile import FingerprintParts, Lock, OutputRecord, read_lock
from pivot_store.repo import Repo


def store_value(
    repo: Repo, value: Any, handler: FormatHandler, name: str = "result"
) -> OutputRecord:
    """Serialize `value` straight into the cache (one pass: hash while writing)."""
    if handler.kind == "path":
        return store_path(repo, Path(value), name)
    with repo.objects.writer() as w:
        handler.dump(value, w)
    return OutputRecord(name=name, hash=w.oid, size=w.size, format=handler.name)  # type: ignore[attr-defined]


def store_path(repo: Repo, path: Path, name: str = "result") -> OutputRecord:
    """A file or folder the asset wrote in the project: cached, then left in place."""
    full = Path(os.path.abspath(repo.root / path))
    try:
        rel = full.relative_to(repo.root).as_posix()
    except ValueError:
        raise TrackError(
            f"output path {path} is outside the project {repo.root}",
            "write Path outputs inside the project folder",
        ) from None
    keys.workspace_path(repo.root, rel)
    move = repo.config.checkout_mode in ("hardlink", "symlink")
    rec = repo.add_path(full, move=move)
    return rec.replace(name=name, path=rel, format="path")


def run_entry_path(repo: Repo, lock: Lock) -> Path:
    """Named like the remote entry (`runcache.entry_id`), so equal results share a file."""
    digest = runcache.entry_id(lock)
    folder = repo.runs_dir / keys.run_prefix(lock.name, lock.fingerprint).removeprefix("runs/")
    return folder / f"{digest}{keys.LOCK_SUFFIX}"


def record(repo: Repo, lock: Lock, *, run_cache: bool = True) -> None:
    """Write the lock and, if new, its run-cache entry (objects must already be stored).

    A hit usually finds the very same lock in place; rewriting it (with fsync)
    would be the most expensive thing the hit does, so equal bytes are kept.
    """
    try:
        unchanged = repo.lock_path(lock.name).read_bytes() == lock.to_yaml()
    except OSError:
        unchanged = False
    if not unchanged:
        repo.write_lock(lock)
    if not run_cache:
        return
    entry = run_entry_path(repo, lock)
    if not entry.exists():
        entry.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_replace(entry, lock.to_yaml(), fsync=False)


def outputs_present(repo: Repo, lock: Lock) -> bool:
    return all(repo.objects.exists(o.hash) for o in lock.outputs)


def find_result(
    repo: Repo,
    name: str,
    parts: FingerprintParts,
    remote: str | None = None,
    *,
    trust_remote_pickle: bool = False,
) -> Lock | None:
    """A stored result for this fingerprint: the lock, else the local, else the remote run-cache.

    Only a result whose objects are all present (or were just pulled) counts.
    """
    fp = parts.digest(name)
    lock = repo.read_lock(name)
    if lock is not None and lock.fingerprint == fp and outputs_present(repo, lock):
        return lock
    folder = repo.runs_dir / keys.run_prefix(name, fp).removeprefix("runs/")
    if folder.is_dir():
        for entry in sorted(folder.glob("*" + keys.LOCK_SUFFIX), key=lambda p: -p.stat().st_mtime):
            cand = read_lock(entry)
            if cand.fingerprint == fp and outputs_present(repo, cand):
                return cand
    if remote is not None:
        return remote_hook.find_remote_result(
            repo, remote, name, fp, allow_pickle=trust_remote_pickle
        )
    return None


def ensure_present(repo: Repo, out: OutputRecord, *, owner: str, remote: str | None) -> bool:
    """Make the output's objects local; True if they had to come from the remote."""
    missing = [o for o in repo.output_oids(out) if not repo.objects.exists(o)]
    if not missing:
        return False
    if remote is None:
        raise ObjectMissing(
            f"object {out.hash} of {owner!r} is not in the local cache and no remote is configured",
            f"re-materialize {owner!r}, or set `remote` on PivotIOManager and push it from "
            "where it was built",
        )
    remote_hook.fetch_output(repo, remote, out, owner)
    return True


def load_output(repo: Repo, out: OutputRecord, python_type: Any = None) -> Any:
    """Read a stored output back with the handler its lock names."""
    handler = formats.by_name(out.format or "pickle")
    if handler.kind == "path":
        if out.path is None:
            return None
        dest = keys.workspace_path(repo.root, out.path)
        if repo.output_status(out) != "ok":
            repo.checkout_output(out, dest)
        return dest
    return handler.load(repo.objects.path(out.hash), python_type)


def object_path(repo: Repo, out: OutputRecord) -> Path:
    if out.path is not None:
        return repo.root / out.path
    return repo.objects.path(out.hash)
