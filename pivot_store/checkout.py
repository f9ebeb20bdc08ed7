"""Place objects in the workspace: hardlink, symlink, copy or reflink.

Each file is built under a temp name beside its destination and renamed into
place, so a reader never sees half a file. A hard link is never half-made, so
a hardlink to a destination that does not exist yet is made straight under the
final name (no temp, no rename); one that exists goes through the temp. Links
can never corrupt the cache because objects are read-only; an output the caller
will modify in place (`writable=True`) and an empty file are always copies. When hard links or
reflinks are not possible (another filesystem, too many links) the file is
copied and one warning line says so.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Literal, get_args

from pivot_store import atomic, keys
from pivot_store.errors import CheckoutError, DiskFull, UnsafeName
from pivot_store.manifest import Manifest
from pivot_store.objects import ObjectStore

log = logging.getLogger("pivot")
# The one spelling of the checkout modes: config validation, the CLI's
# `--checkout-mode` and `Checkout` all read it from here.
CheckoutMode = Literal["hardlink", "symlink", "copy", "reflink"]
CHECKOUT_MODES: tuple[str, ...] = get_args(CheckoutMode)
FICLONE = 0x40049409
_FALLBACK_ERRNOS = {
    errno.EXDEV,
    errno.EPERM,
    errno.EMLINK,
    errno.EOPNOTSUPP,
    errno.EINVAL,
    errno.ENOTTY,
    errno.EACCES,
}


class Checkout:
    """One checkout operation; remembers whether it already warned about fallback."""

    def __init__(self, objects: ObjectStore, mode: str = "hardlink", *, writable: bool = False):
        if mode not in CHECKOUT_MODES:
            *first, last = CHECKOUT_MODES
            raise CheckoutError(
                f"unknown checkout mode {mode!r}", f"use {', '.join(first)} or {last}"
            )
        self.objects = objects
        # A reflink is a private copy too: writing into it never reaches the object.
        self.mode = mode if not writable or mode == "reflink" else "copy"
        self.warned = False
        # Hard links straight to the final name; off after the first failure
        # other than "exists" (another filesystem, no links), so each file is
        # not tried twice.
        self._direct = self.mode == "hardlink"

    # --- one file -----------------------------------------------------------
    def file(
        self,
        oid: str,
        dest: Path | str,
        *,
        size: int | None = None,
        executable: bool | None = None,
    ):
        """Make `dest` hold object `oid`; `executable=None` keeps the object's own bit."""
        src_s = self.objects._final(oid)
        try:
            src_st = os.stat(src_s)
        except FileNotFoundError:
            raise CheckoutError(
                f"object {oid} for {dest} is not in the cache", "run `pivot pull` first"
            ) from None
        stored_exec = bool(src_st.st_mode & stat.S_IXUSR)
        if executable is None:
            executable = stored_exec
        mode = self.mode
        # One object serves every file with its bytes, executable or not; a link
        # would carry the object's bit, so a file wanting the other one is a copy.
        if src_st.st_size == 0 or (mode in ("hardlink", "symlink") and executable != stored_exec):
            mode = "copy"
        elif mode == "hardlink" and self._direct and self._link_direct(src_s, dest):
            return
        src = Path(src_s)
        dest = Path(dest)
        if mode != "copy" and self._already(src, src_st, dest):
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = atomic.temp_name(dest.parent)
        try:
            self._place(mode, src, tmp, executable)
            if _is_dir(dest):
                shutil.rmtree(dest)
            os.replace(tmp, dest)
            # rename(2) of a name onto another link of the same inode does nothing
            # and succeeds: a process that linked `dest` to this object since the
            # check above leaves our temp in the folder. Its name goes; the file is
            # the object, which `dest` already is.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        except BaseException as e:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            if isinstance(e, OSError) and e.errno in atomic.FULL_ERRNOS:
                raise DiskFull(
                    f"no space left on device to check out {dest}",
                    "free space in the workspace, or use --checkout-mode hardlink",
                ) from None
            raise

    def _link_direct(self, src: str, dest: Path | str) -> bool:
        """Hard-link `src` straight to `dest` when nothing is there (atomic: the name
        appears with the whole file). False: use the temp path."""
        for attempt in range(2):
            try:
                os.link(src, dest)
                return True
            except FileExistsError:
                return False  # something is there: check it, or replace it through a temp
            except FileNotFoundError:
                if attempt:
                    return False
                with contextlib.suppress(OSError):  # no parent folder yet
                    os.makedirs(os.path.dirname(dest), exist_ok=True)
            except NotADirectoryError:
                return False  # a file where a parent folder should be: the temp path says so
            except OSError as e:
                if e.errno not in _FALLBACK_ERRNOS:
                    raise
                self._direct = False  # the temp path warns and copies
                return False
        return False

    def _already(self, src: Path, src_st: os.stat_result, dest: Path) -> bool:
        try:
            st = os.lstat(dest)
        except FileNotFoundError:
            return False
        if self.mode == "hardlink":
            return st.st_ino == src_st.st_ino and st.st_dev == src_st.st_dev
        if self.mode == "symlink":
            return os.path.islink(dest) and os.readlink(dest) == str(src)
        return False

    def _place(self, mode: str, src: Path, tmp: Path, executable: bool) -> None:
        if mode == "hardlink":
            if self._try(os.link, src, tmp):
                return
        elif mode == "symlink":
            os.symlink(src, tmp)
            return
        elif mode == "reflink" and self._try(_reflink, src, tmp):
            os.chmod(tmp, 0o755 if executable else 0o644)
            return
        shutil.copyfile(src, tmp)
        os.chmod(tmp, 0o755 if executable else 0o644)

    def _try(self, fn: Callable[[Path, Path], None], src: Path, tmp: Path) -> bool:
        try:
            fn(src, tmp)
            return True
        except OSError as e:
            if e.errno not in _FALLBACK_ERRNOS:
                raise
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            if not self.warned:
                log.warning(
                    "pivot: %s not possible here (%s); copying instead",
                    self.mode,
                    os.strerror(e.errno),
                )
                self.warned = True
            return False

    # --- a folder -----------------------------------------------------------
    def tree(self, manifest: Manifest, dest: Path, previous: Manifest | None = None) -> None:
        """Make folder `dest` hold `manifest`'s files; of the others, remove only those
        `previous` (the manifest this folder last held, per its lock) listed.

        A file no manifest named (the user's, another tool's, or planted around a
        hostile entry's path) is never deleted: without `previous` nothing is.
        """
        if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
            dest.unlink()
        dest.mkdir(parents=True, exist_ok=True)
        dest_s = os.fspath(dest)
        checked: set[str] = set()
        wanted: set[str] = set()
        for e in manifest.entries:
            keys.validate_name(e.path)
            parent = e.path.rpartition("/")[0]
            if parent and parent not in checked:
                # A symlinked folder in the workspace must not redirect writes out of
                # `dest`. Only the folders are resolved: the file itself may be a
                # symlink into the cache (symlink mode) and is replaced, not followed.
                keys.workspace_path(dest, parent)
                checked.add(parent)
                with contextlib.suppress(FileExistsError):  # a file there: file() replaces
                    os.makedirs(os.path.join(dest_s, parent), exist_ok=True)
            wanted.add(e.path)
            if e.hash is None:
                target = dest / e.path
                if target.is_symlink() or (target.exists() and not target.is_dir()):
                    target.unlink()
                target.mkdir(parents=True, exist_ok=True)
            else:
                self.file(e.hash, f"{dest_s}/{e.path}", size=e.size, executable=e.exec)
        if previous is not None:
            _remove_extra(dest, wanted, previous)


def _is_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _reflink(src: Path, dst: Path) -> None:
    import fcntl

    with open(src, "rb") as s, open(dst, "xb") as d:
        fcntl.ioctl(d.fileno(), FICLONE, s.fileno())


def _remove_extra(dest: Path, wanted: set[str], previous: Manifest) -> None:
    """Remove what `previous` listed and `wanted` does not; then its folders left empty."""
    keep_dirs = {p.rsplit("/", i)[0] for p in wanted for i in range(1, p.count("/") + 1)}
    gone = sorted((e for e in previous.entries if e.path not in wanted), key=lambda e: e.path)
    folders: set[str] = set()
    for e in gone:
        keys.validate_name(e.path)
        parent = e.path.rpartition("/")[0]
        folders.update(parent.rsplit("/", i)[0] for i in range(parent.count("/") + 1) if parent)
        if e.hash is None:
            folders.add(e.path)
            continue
        full = os.path.join(dest, e.path)
        if parent:
            try:  # a symlinked folder must not lead the removal out of `dest`
                keys.workspace_path(dest, parent)
            except UnsafeName:
                continue
        if os.path.isdir(full) and not os.path.islink(full):
            continue  # a folder where the old file was: not the file previous listed
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            os.unlink(full)
    # Deepest first; rmdir removes only a folder that is now empty.
    for rel in sorted(folders - wanted - keep_dirs, key=lambda r: -r.count("/")):
        full = os.path.join(dest, rel)
        if os.path.islink(full):
            continue
        with contextlib.suppress(OSError):
            os.rmdir(full)
