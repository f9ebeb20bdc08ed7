"""The PivotError tree.

Every error a user can meet says what went wrong and how to fix it, so the CLI
(and the Dagster run log) can print one line instead of a traceback. A class
also derives from a builtin where one fits, so generic callers still catch it.
"""

from __future__ import annotations


class PivotError(Exception):
    """Base class: `what` names the thing, `fix` says what to do about it."""

    exit_code = 1

    def __init__(self, what: str, fix: str | None = None) -> None:
        self.what = what
        self.fix = fix
        super().__init__(f"{what}; {fix}" if fix else what)


class InvalidOid(PivotError, ValueError):
    """A string that is not a 16-hex-digit xxh64 id (optionally with `.dir`)."""


class UnsafeName(PivotError, ValueError):
    """A name, key or path that would escape `.pivot/` or the tracked folder."""


class ObjectMissing(PivotError, FileNotFoundError):
    """An object named by a lock or manifest is not in the cache."""


class CorruptObject(PivotError):
    """An object whose bytes do not hash to its name."""


class ConfigError(PivotError):
    """`.pivot/config.yaml` is malformed or names something that does not exist."""


class LockError(PivotError):
    """A lock file is malformed, truncated, or written by a newer schema."""


class ManifestError(PivotError):
    """A directory manifest is malformed or names an unsafe path."""


class NotAProject(PivotError):
    """No `.pivot/` folder was found."""


class TrackError(PivotError):
    """A path cannot be tracked (missing, a symlink leaving the tree, ...)."""


class CheckoutError(PivotError):
    """A checkout could not place an output in the workspace."""


class DiskFull(PivotError, OSError):
    """No space (or quota) left where the store writes: ENOSPC / EDQUOT."""

    def __init__(self, what: str, fix: str | None = None, reason: str = "") -> None:
        super().__init__(what, fix)
        self.reason = reason or "No space left on device"


FULL_FIX = "free space, or move the cache (.pivot/cache, a symlink works) to a bigger disk"


class RemoteError(PivotError):
    """A remote failed permanently (no bucket, denied, unknown name)."""


class TransferError(PivotError):
    """Some objects failed to transfer; `failures` names each one."""

    def __init__(self, what: str, fix: str | None = None, failures: list[str] | None = None):
        super().__init__(what, fix)
        self.failures = failures or []


class GitError(PivotError):
    """git could not tell what the project's history names (gc keeps those objects)."""
