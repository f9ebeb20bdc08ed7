"""Give a run-cache that older pivots filled its heads, then mark it (format 3).

A remote is marked by its first push only when its `runs/` is empty: a bucket
older writers filled has fingerprints without heads, and a marked reader takes
a missing head as a miss, so marking it as it is would turn those results into
misses. `upgrade_remote` writes the missing heads first (each a byte copy of the
folder's oldest entry that passes the checks a reader runs, per signer, as a
writer would have written it), and the marker last, so no reader ever sees the
marker before a head it needs.

Nothing here is trusted more than a reader trusts it: every head is checked by
its readers like an entry, and a bad one only sends them to the listing.
Entries that older pivots push after the marker have no head, and marked
readers miss them: upgrade once every deployment writes heads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pivot_store import pointers, run_lookup, runcache, signing
from pivot_store.errors import LockError
from pivot_store.remote import DEFAULT_JOBS, Remote, amap, aretrying
from pivot_store.remote_scan import Record, ascan_records


@dataclass
class HeadsResult:
    """What `upgrade_remote` found and wrote."""

    remote: str
    folders: int = 0  # fingerprint folders with at least one entry
    written: list[str] = field(default_factory=list)  # heads created (relative keys)
    present: int = 0  # heads already there
    headless: list[str] = field(default_factory=list)  # folders with no entry fit to copy
    marked: bool = False  # the marker is there (now or before)
    blocked: str = ""  # why the marker was not written

    def to_json(self) -> dict:
        return {
            "remote": self.remote,
            "folders": self.folders,
            "written": self.written,
            "present": self.present,
            "headless": self.headless,
            "marked": self.marked,
            "blocked": self.blocked,
        }


def upgrade_remote(remote: Remote, *, jobs: int = DEFAULT_JOBS) -> HeadsResult:
    """Write every missing head of `remote`'s run-cache, then its marker."""
    remote.check()
    return remote.run(_aupgrade, remote, jobs, jobs=jobs)


async def _aupgrade(remote: Remote, jobs: int) -> HeadsResult:
    res = HeadsResult(remote.name)
    skew = pointers.max_clock_skew().total_seconds()
    records, _ = await ascan_records(remote, skew, jobs)
    wanted: dict[str, dict[str | None, list[Record]]] = {}  # folder -> signer -> entries
    present: set[tuple[str, str | None]] = set()
    for rec in records.values():
        if rec.pointer:
            continue
        file = rec.rel.rpartition("/")[2]
        if rec.head:
            present.add((rec.folder, runcache.head_signer(file)))
            continue
        by_signer = wanted.setdefault(rec.folder, {})
        if rec.lock is not None and rec.created is not None:
            by_signer.setdefault(runcache.parse_entry_name(file)[1], []).append(rec)  # type: ignore[index]
    res.folders = len(wanted)
    todo = [
        (folder, signer, recs)
        for folder, by_signer in sorted(wanted.items())
        for signer, recs in sorted(by_signer.items(), key=lambda kv: kv[0] or "")
        if (folder, signer) not in present
    ]
    res.present = sum(1 for folder, signer in present if folder in wanted)
    covered = {folder for folder, _ in present}

    async def one(item: tuple[str, str | None, list[Record]]) -> None:
        folder, signer, recs = item
        rel, wrote = await _awrite_head(remote, folder, signer, recs)
        if rel is not None:
            covered.add(folder)
        if wrote:
            res.written.append(rel)  # type: ignore[arg-type]
        elif rel is not None:
            res.present += 1  # a concurrent writer made it first

    await amap(jobs, one, todo)
    res.written.sort()
    res.headless = sorted(f for f in wanted if f not in covered)
    await _amark(remote, res)
    return res


async def _awrite_head(
    remote: Remote, folder: str, signer: str | None, recs: list[Record]
) -> tuple[str | None, bool]:
    """Copy the folder's oldest fit entry of `signer` to its head: (its relative key
    or None when no entry is fit, whether this call created it)."""
    rel = f"{folder}/{runcache.head_name(signer)}"
    for rec in sorted(recs, key=lambda r: (r.created, r.entry_id)):
        key = remote.key(rec.rel)
        try:
            data = await aretrying(remote, lambda key=key: remote.aget_bytes(key), key)
        except FileNotFoundError:
            continue  # deleted since the listing
        if not _fit(data, rec, signer):
            continue
        return rel, await runcache.aput_record(remote, rel, data)
    return None, False


def _fit(data: bytes, rec: Record, signer: str | None) -> bool:
    """Would this entry's reader take it? Checked here with this process's key when
    the entry is signed by it; otherwise the listing's checks (record hash, name,
    folder) are all that can be run, and its readers run the rest."""
    mine = signing.key_id()
    if signer is None or signer != mine:
        return True  # `ascan_records` checked what a keyless reader checks
    try:
        entry = runcache.parse_entry(data, rec.rel, expected_id=rec.entry_id)
    except LockError:
        return False
    return entry.lock == rec.lock


async def _amark(remote: Remote, res: HeadsResult) -> None:
    key = remote.key(run_lookup.MARKER)
    await runcache.aput_record(remote, run_lookup.MARKER, run_lookup.MARKER_BYTES)
    data = await aretrying(remote, lambda: remote.aget_bytes(key), f"marker {key}")
    res.marked = run_lookup.is_marker(data)
    if not res.marked:
        res.blocked = f"{key} is there and is not pivot's marker: delete it and upgrade again"
    run_lookup.forget(remote)
