"""What a push or fetch did (`Result`), what it moves (`Item`), how it reports (`Progress`).

Plain values, so the CLI, the Dagster layer and `Repo.push/fetch/pull` read
one shape whatever moved the objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from pivot_store.errors import TransferError


class Progress(Protocol):
    def plan(self, objects: int, nbytes: int) -> None: ...
    def done(self, oid: str, nbytes: int, status: str) -> None: ...


class NullProgress:
    def plan(self, objects: int, nbytes: int) -> None:
        pass

    def done(self, oid: str, nbytes: int, status: str) -> None:
        pass


@dataclass
class Item:
    """One object to move: which locks need it, how big it is (None: unknown)."""

    oid: str
    size: int | None
    locks: set[str] = field(default_factory=set)


@dataclass
class Result:
    """What a push or fetch did. `ok` is False when anything failed."""

    remote: str
    direction: str
    dry_run: bool = False
    transferred: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)  # already at the destination
    planned: list[Item] = field(default_factory=list)  # dry run: what would move
    failed: dict[str, str] = field(default_factory=dict)  # oid or entry -> reason
    entries: list[str] = field(default_factory=list)  # run-cache entries written
    entries_present: list[str] = field(default_factory=list)  # push: entries already there
    unmarked: bool = False  # push: entries written into a run-cache older pivots filled
    nbytes: int = 0
    complete_locks: list[str] = field(default_factory=list)  # every object now local/remote
    checked_out: list[str] = field(default_factory=list)  # pull: workspace paths placed

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> dict[str, Any]:
        """The `--json` summary; a push's also says whether it wrote entries into a
        run-cache older pivots filled (the text output's `pivot remote upgrade` hint)."""
        extra = {"run_cache_unmarked": self.unmarked} if self.direction == "push" else {}
        return {
            "remote": self.remote,
            "direction": self.direction,
            "dry_run": self.dry_run,
            "transferred": len(self.transferred),
            "already_present": len(self.present),
            "bytes": self.nbytes,
            "entries_written": len(self.entries),
            "planned": [
                {"oid": i.oid, "size": i.size, "locks": sorted(i.locks)} for i in self.planned
            ],
            "failed": dict(sorted(self.failed.items())),
            **extra,
        }

    def raise_for_failures(self) -> None:
        if not self.failed:
            return
        verb = "push to" if self.direction == "push" else "pull from"
        first = "; ".join(f"{k}: {v}" for k, v in sorted(self.failed.items())[:3])
        more = f" (and {len(self.failed) - 3} more)" if len(self.failed) > 3 else ""
        raise TransferError(
            f"{len(self.failed)} object(s) failed to {verb} remote {self.remote!r}: {first}{more}",
            "fix the cause and rerun; what succeeded is kept",
            failures=[f"{k}: {v}" for k, v in sorted(self.failed.items())],
        )
