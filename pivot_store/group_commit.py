"""Group commit: a batch of new files made durable together, then published.

Publishing one file is a temp file beside its final name, an fsync, and an
`os.link` to the final name (which fails rather than replace one: contract
line 2). An fsync per file is a journal commit per file, and at 10,000 small
objects that, not the bytes, is the cost. Group commit keeps the order and
pays for durability once per batch:

1. every temp file of the batch is written (created read-only, `O_EXCL`);
2. all of them are made durable at once;
3. only then is each linked to its final name (the temp is removed);
4. the names themselves are made durable, once more for the whole batch,
   before the batch is reported written.

So no final name can ever point at bytes that were not on disk first, and a
name the batch reports as written survives a crash. Steps 2 and 4 are one
`syncfs` per filesystem the batch touched where that is sound (`fs_sync`:
Linux 5.8+, a local filesystem); its fd is opened before the batch writes
there, so a writeback error of any of its files is reported to it. Elsewhere
each temp is fsynced as it is written and each folder touched after the links.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from pivot_store import atomic, fs_sync

#: What one put publishes: its bytes, or a local file whose bytes are copied.
Source = bytes | Path
#: One put's outcome: True if this batch created the name, False if it existed,
#: or the error that stopped it (its temp removed, its name never created).
Outcome = bool | BaseException

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
_READ = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
_CHUNK = 1 << 20

#: Called as `observer(stage, paths)` at the two sync points, once each sync
#: is done: ("data", the temps now durable) before any link, ("names", the
#: names linked) before the batch returns. Tests watch the order with it.
_OBSERVER: list[Callable[[str, list[str]], None]] = []


@contextlib.contextmanager
def observing(fn: Callable[[str, list[str]], None]) -> Iterator[None]:
    """Call `fn(stage, paths)` at each sync point of the batches run inside."""
    _OBSERVER.append(fn)
    try:
        yield
    finally:
        _OBSERVER.remove(fn)


def _observe(stage: str, paths: list[str]) -> None:
    for fn in _OBSERVER:
        fn(stage, paths)


def _write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is written (a write may be short)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _copy(fd: int, src: Source) -> None:
    if isinstance(src, bytes):
        _write_all(fd, src)
        return
    rfd = os.open(src, _READ)
    try:
        while chunk := os.read(rfd, _CHUNK):
            _write_all(fd, chunk)
    finally:
        os.close(rfd)


def _failure(e: BaseException, folder: str) -> BaseException:
    return atomic.disk_full(e, folder) or e


def publish(puts: Sequence[tuple[str, Source]]) -> list[Outcome]:
    """Create each `(final path, source)` unless the name exists, durably, as one batch.

    Never replaces a name (the link refuses; two batches racing for a name end
    with one winner and the winner's bytes). One put failing (a full disk, a
    denied folder) fails only that put; a failed sync fails every put of the
    batch not yet linked, and none is linked. Outcomes are in `puts` order.
    """
    outcomes: list[Outcome] = [False] * len(puts)
    pending: list[tuple[int, str, str]] = []  # (index, temp, final)
    anchors: dict[int, int] = {}  # st_dev -> an fd there, opened before the batch wrote there
    folders: dict[str, bool] = {}  # folder -> on a filesystem synced whole
    try:
        for i, (final, src) in enumerate(puts):
            folder = os.path.dirname(final)
            tmp = atomic.fast_temp_name(folder)
            try:
                fd = _create(tmp, folder)
            except OSError as e:
                outcomes[i] = _failure(e, folder)
                continue
            try:
                dev = os.fstat(fd).st_dev
                whole = fs_sync.whole(dev)
                if whole and dev not in anchors:
                    anchors[dev] = os.open(folder, _READ)
                _copy(fd, src)
                if not whole:
                    fs_sync.fsync(fd)
            except Exception as e:
                outcomes[i] = _failure(e, folder)
                _remove(tmp)
                continue
            finally:
                os.close(fd)
            pending.append((i, tmp, final))
            folders[folder] = whole
        if not _sync_data(anchors, [tmp for _, tmp, _ in pending]):
            anchors, folders = {}, dict.fromkeys(folders, False)
        linked: list[int] = []
        for i, tmp, final in pending:
            try:
                outcomes[i] = atomic.publish_new(tmp, final)
                linked.append(i)
            except Exception as e:
                outcomes[i] = _failure(e, os.path.dirname(final))
                _remove(tmp)
        pending = []
        try:
            _sync_names(anchors, folders, [puts[i][0] for i in linked])
        except OSError as e:
            for i in linked:  # written, maybe not durably named: not reported as written
                outcomes[i] = e
    except BaseException as e:
        for i, tmp, _ in pending:  # the sync failed (or we were interrupted): link none
            outcomes[i] = _failure(e, os.path.dirname(tmp))
            _remove(tmp)
        if not isinstance(e, Exception):
            raise
    finally:
        for fd in anchors.values():
            os.close(fd)
    return outcomes


def _create(tmp: str, folder: str) -> int:
    """The temp file, created read-only; its folder made only when missing."""
    try:
        return os.open(tmp, _CREATE, 0o444)
    except FileNotFoundError:
        os.makedirs(folder, exist_ok=True)
        return os.open(tmp, _CREATE, 0o444)


def _sync_data(anchors: dict[int, int], temps: list[str]) -> bool:
    """Step 2: every temp of the batch durable; the observer is told once it is.

    One syncfs per filesystem synced whole (the others' temps were fsynced as
    written). False when the kernel refused syncfs: every temp was fsynced
    instead, and the names must be synced folder by folder.
    """
    held = all(fs_sync.syncfs(fd) for fd in anchors.values())
    if not held:
        for tmp in temps:
            fs_sync.fsync_path(tmp)
    _observe("data", temps)
    return held


def _sync_names(anchors: dict[int, int], folders: dict[str, bool], names: list[str]) -> None:
    """Step 4: the linked names durable: syncfs again, and an fsync of each other folder."""
    held = all(fs_sync.syncfs(fd) for fd in anchors.values())
    for folder in sorted(f for f, whole in folders.items() if not (whole and held)):
        fs_sync.fsync_path(folder)
    _observe("names", names)


def _remove(tmp: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
