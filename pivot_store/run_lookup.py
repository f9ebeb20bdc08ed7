"""Run-cache lookups on a remote: a hit or a miss in one request where the remote allows.

```
<remote>/runs/<name>/<fp>/head[-<key id>].json   copy of the fingerprint's first entry
<remote>/runcache.json                           {"heads":1}: every entry has its head
```

An entry's name is the hash of its record, which a reader that knows only the
fingerprint cannot know: finding one takes a LIST of the fingerprint's folder
and a GET of what it lists. So each writer also creates the folder's head
(`runcache.aput_record`, first writer wins, never replaced), a name every reader
knows. On a remote whose marker says every entry has its head, a lookup is one
GET: the head, or a 404 that is the miss. Elsewhere (a bucket older writers
filled) it is the LIST and GETs, as before.

Neither file can make a lookup return what it should not: a head is parsed and
checked exactly like an entry (record hash, name, fingerprint, signature), and
a bad one only sends the reader to the listing. A planted marker can only turn
entries without heads into misses; a deleted one only costs the listing.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator

from pivot_store import keys, signing
from pivot_store.errors import LockError
from pivot_store.remote import Remote, aretrying, retrying
from pivot_store.runcache import RunEntry, head_rel, parse_entry, parse_entry_name

log = logging.getLogger("pivot")
MARKER = "runcache.json"
MARKER_BYTES = b'{"heads":1}'
_MARKED: dict[str, bool] = {}  # remote identity -> its marker, read once per process
_GUARD = threading.Lock()


class Entries:
    """A fingerprint's valid entries in the order a step tries them: the head first,
    then (only when a caller looks past it) the rest of the folder, newest first.

    Callers iterate and stop at the first entry they can use, so a usable head
    costs its one GET and nothing else.
    """

    def __init__(
        self, first: list[RunEntry], rest: Callable[[], list[RunEntry]] | None = None
    ) -> None:
        self.first = first
        self._rest = rest
        self._more: list[RunEntry] | None = None if rest is not None else []
        self._lock = threading.Lock()

    @property
    def complete(self) -> bool:
        """True when every entry is loaded (the listing ran, or was never needed)."""
        return self._more is not None

    @property
    def loaded(self) -> list[RunEntry]:
        """What is loaded so far, in order, without asking the remote."""
        return self.first + (self._more or [])

    def __iter__(self) -> Iterator[RunEntry]:
        yield from self.first
        with self._lock:
            if self._more is None:
                seen = {e.entry_id for e in self.first}
                self._more = [e for e in self._rest() if e.entry_id not in seen]  # type: ignore[misc]
        yield from self._more

    def __repr__(self) -> str:
        return f"Entries({self.loaded!r}, complete={self.complete})"


def marked(remote: Remote) -> bool:
    """True when the remote's marker says every run-cache entry in it has its head."""
    with _GUARD:
        known = _MARKED.get(remote.identity)
    if known is not None:
        return known
    key = remote.key(MARKER)
    try:
        found = is_marker(retrying(remote, lambda: remote.get_bytes(key), f"marker {key}"))
    except FileNotFoundError:
        found = False
    with _GUARD:
        _MARKED[remote.identity] = found
    return found


def forget(remote: Remote) -> None:
    """Read the marker again next time (after this process wrote or removed it)."""
    with _GUARD:
        _MARKED.pop(remote.identity, None)


def lookup(remote: Remote, name: str, fingerprint: str) -> Entries:
    """Every valid entry for (name, fingerprint), head first; empty on a miss.

    On a marked remote the head's GET decides: found and valid, it is the first
    entry and the listing waits until a caller wants more; a 404 is the miss;
    anything else (a head that fails its checks) falls back to the listing.
    A malformed or mismatched entry is skipped with a warning rather than
    failing the lookup: the worst it can cost is a recomputation.
    """
    listing = lambda: list_entries(remote, name, fingerprint)  # noqa: E731
    if not marked(remote):
        return Entries(listing())
    key = remote.key(head_rel(name, fingerprint))
    try:
        data = retrying(remote, lambda: remote.get_bytes(key), f"run-cache {key}")
    except FileNotFoundError:
        return Entries([])
    try:
        head = parse_entry(data, f"{remote.name}:{key}")
    except LockError as e:
        log.warning("pivot: skipping run-cache head %s: %s", key, e)
        return Entries(listing())
    if head.name != name or head.fingerprint != fingerprint:
        log.warning("pivot: skipping run-cache head %s: it is for another result", key)
        return Entries(listing())
    return Entries([head], listing)


def list_entries(remote: Remote, name: str, fingerprint: str) -> list[RunEntry]:
    """The fingerprint's folder listed and each entry read: valid ones, newest first."""
    prefix = remote.key(keys.run_prefix(name, fingerprint))
    names = retrying(remote, lambda: remote.list_names(prefix), f"run-cache {prefix}")
    mine = signing.key_id()
    found: dict[str, RunEntry] = {}
    for n in sorted(names):
        parsed = parse_entry_name(n)
        if parsed is None:
            continue
        eid, kid = parsed
        if mine is not None and kid is not None and kid != mine:
            continue  # signed by another key (before a rotation): it would be refused
        key = f"{prefix}/{n}"
        try:
            data = retrying(remote, lambda key=key: remote.get_bytes(key), f"run-cache {key}")
            entry = parse_entry(data, f"{remote.name}:{key}", expected_id=eid)
        except (LockError, FileNotFoundError) as e:
            log.warning("pivot: skipping run-cache entry %s: %s", key, e)
            continue
        if entry.name != name or entry.fingerprint != fingerprint:
            log.warning("pivot: skipping run-cache entry %s: it is for another result", key)
            continue
        found.setdefault(eid, entry)  # one result under two names (format 1 and 2)
    return sorted(found.values(), key=lambda e: (e.created_at, e.entry_id), reverse=True)


async def amark_if_new(remote: Remote) -> bool:
    """Before a push's entries: mark a remote that has no run-cache yet (its every
    entry will have a head). A run-cache older writers filled is left unmarked, so
    its readers keep listing and find the entries that have no head. True when the
    remote is marked now (False: its lookups list, until `pivot remote upgrade`)."""
    with _GUARD:
        if _MARKED.get(remote.identity):
            return True
    key = remote.key(MARKER)
    try:
        data = await aretrying(remote, lambda: remote.aget_bytes(key), f"run-cache marker {key}")
    except FileNotFoundError:
        data = None
    if data is None:
        top = remote.key("runs")
        empty = not await aretrying(remote, lambda: remote.alist_dirs(top), f"listing {top}")
        if empty:
            await aretrying(remote, lambda: remote.aput_bytes(key, MARKER_BYTES), f"marker {key}")
        forget(remote)  # the next lookup reads what is there now
        return empty
    ours = is_marker(data)
    with _GUARD:
        _MARKED[remote.identity] = ours
    return ours


def is_marker(data: bytes) -> bool:
    """Only the exact marker counts: anything else at its name is as if absent."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(doc, dict) and doc.get("heads") == 1
