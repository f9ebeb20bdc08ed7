"""Declared file and folder dependencies: `cached(file_deps=["export.csv", "data/"])`.

An asset that reads a file itself (`pd.read_csv("export.csv")`) has an input
Dagster never sees; declaring it puts the file's content hash into the
fingerprint (`FingerprintParts.files`, by the path as declared). Relative paths
are relative to the pivot project root (where `.pivot/` is), absolute ones are
taken as they are. A folder counts as the id of its manifest (every file's
relative path, hash, size and exec bit), as `pivot add` would record it, but
nothing is stored in the cache.

Hashing goes through the project's state db (`Repo.state`): a file that has
not changed since it was last hashed (same inode, mtime, size, ctime) costs a
`stat`, so declaring a 1 GiB export is free on every hit. A declared path
that does not exist is a miss whose value says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pivot_dagster.fingerprint import MISSING_DEP
from pivot_store.errors import PivotError
from pivot_store.manifest import build as build_manifest
from pivot_store.repo import Repo


def resolve(repo: Repo, dep: str) -> Path:
    path = Path(dep).expanduser()
    return path if path.is_absolute() else repo.root / path


def file_hash(repo: Repo, dep: str) -> str:
    """The content hash of one declared dep, or a `missing: ...` value saying why not."""
    path = resolve(repo, dep)
    try:
        if path.is_dir():
            return build_manifest(path, None, repo.state).oid()
        if path.is_file():
            return repo.state.hash(path)
    except (OSError, PivotError) as e:
        return f"{MISSING_DEP}: file dep `{dep}` cannot be read: {e}"
    return f"{MISSING_DEP}: file dep `{dep}` does not exist ({path})"


def file_hashes(repo: Repo, deps: Iterable[str]) -> dict[str, str]:
    """`{declared path: hash}` for `cached(file_deps=...)`."""
    return {dep: file_hash(repo, dep) for dep in sorted(set(deps))}
