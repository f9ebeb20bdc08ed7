"""`pathlib.Path` outputs: a file or folder the asset wrote inside the project.

The value is not serialized: the path is added to the cache (folders as `.dir`
manifests) and checked out back to the same place on load. The IO manager does
the work through the store, because it needs the project root and checkout mode.
"""

from __future__ import annotations

from pathlib import Path, PurePath
from typing import Any

from pivot_dagster.formats.base import FormatHandler
from pivot_store import keys
from pivot_store.errors import UnsafeName
from pivot_store.lockfile import OutputRecord


class PathOutput(FormatHandler):
    name = "path"
    kind = "path"

    def accepts(self, obj: Any) -> bool:
        return isinstance(obj, PurePath)


def check_remote_checkout(repo: Any, out: OutputRecord, dest: Path) -> None:
    """When any object of `out` came from a remote: no folder here is replaced by a file
    (the checkout would remove the folder and all in it), and no folder entry names a
    `.git` or `.pivot` segment (`keys.remote_checkout_name`). Raises UnsafeName."""
    if not any(repo.objects.from_remote(o) for o in repo.output_oids(out)):
        return
    _no_folder_replaced(dest, out.path, out.kind == "dir")
    if out.kind == "dir":
        for entry in repo.manifest(out.hash).entries:
            rel = f"{out.path}/{entry.path}"
            keys.remote_checkout_name(rel)
            _no_folder_replaced(dest / entry.path, rel, entry.hash is None)


def _no_folder_replaced(dest: Path, rel: Any, wants_folder: bool) -> None:
    if not wants_folder and dest.is_dir() and not dest.is_symlink():
        raise UnsafeName(
            f"{rel!r} is a folder here; a file from a remote never replaces it",
            "remove the folder by hand if the remote's result is wanted",
        )
