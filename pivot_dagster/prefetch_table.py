"""The run's table of prefetched lookups as a file, for the run's other step processes.

`prefetch` writes it beside its single-flight lock,
`.pivot/tmp/prefetch/<xxh64(run id)>.json`; a step process of the same run
reads it instead of looking up again. Local, written atomically, but checked
on read all the same: a row is used only when its entry id is the hash of the
lock it holds and that lock is for the name and fingerprint it is filed
under; anything else makes the whole file unusable (the table is rebuilt).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pivot_dagster.remote_hits import Table
from pivot_store import run_lookup, runcache
from pivot_store.errors import LockError
from pivot_store.hashing import canonical_json
from pivot_store.lockfile import parse_lock

VERSION = 2  # 2: rows say whether they hold every entry (`complete`)
KEEP_S = 86400.0  # tables of older runs are removed


def table_bytes(table: Table, remote: str) -> bytes:
    rows = [
        {
            "name": name,
            "fingerprint": fp,
            "entries": [
                {
                    "created_at": e.created_at,
                    "entry_id": e.entry_id,
                    "digests": e.digests,
                    "lock": e.lock.to_data(),
                }
                for e in entries.loaded
            ],
            "complete": entries.complete,
        }
        for (name, fp), entries in sorted(table.entries.items())
    ]
    doc = {"version": VERSION, "run_id": table.run_id, "remote": remote, "results": rows}
    return canonical_json(doc)


def read_table(path: Path, run_id: str, remote: str) -> Table | None:
    """The table another process wrote for this run and remote; None when there is none
    or it is unreadable (then it is built again)."""
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        return None
    if doc.get("run_id") != run_id or doc.get("remote") != remote:
        return None
    table = Table(run_id)
    try:
        for row in doc["results"]:
            name, fp = row["name"], row["fingerprint"]
            found = list(_entries(row["entries"], name, fp, str(path)))
            table.entries[(name, fp)] = run_lookup.Entries(found)
            if row["complete"] is not True:
                table.partial.add((name, fp))
    except (KeyError, TypeError, LockError):
        return None
    return table


def _entries(rows: Iterable[Any], name: str, fp: str, source: str) -> Iterable[runcache.RunEntry]:
    for row in rows:
        lock = parse_lock(row["lock"], source)
        eid = runcache.entry_id(lock)
        if lock.name != name or lock.fingerprint != fp or eid != row["entry_id"]:
            raise LockError(f"prefetch table {source} names another result", "it is rebuilt")
        yield runcache.RunEntry(lock, str(row["created_at"]), eid, row.get("digests"))


def remove_old(folder: Path) -> None:
    cutoff = time.time() - KEEP_S
    for p in folder.glob("*.json"):
        with contextlib.suppress(OSError):
            if p.stat().st_mtime < cutoff:
                p.unlink()
