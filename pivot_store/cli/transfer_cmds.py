"""`pivot push`, `pivot pull`, `pivot fetch`: move objects to and from a remote.

The transfer core reports progress through a callback; this module draws it
(a rich bar on a terminal, one summary line otherwise, JSON with `--json`) and
turns failures into the exit code.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

import typer

from pivot_store.cli.options import CHECKOUT_MODE, DRY_RUN, JOBS, JSON, NAMES, REMOTE
from pivot_store.cli.output import console, emit_json, human_size

_UNSIGNED_LOCKS = (
    "note: these locks come from git and carry no signature; their objects were checked "
    "by xxh64 only, not by PIVOT_SIGNING_KEY (see docs/security.md)"
)


class _Bar:
    """A rich progress bar (objects and bytes) on stderr, only on a terminal."""

    def __init__(self, verb: str, enabled: bool) -> None:
        self.verb = verb
        self.enabled = enabled
        self.lock = threading.Lock()
        self.bar: Any = None

    def __enter__(self) -> _Bar:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TransferSpeedColumn,
            )

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("objects"),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task(self.verb, total=0, bytes_total=0)
            self.nbytes = 0
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def plan(self, objects: int, nbytes: int) -> None:
        if self.bar is not None:
            with self.lock:
                t = self.bar.tasks[0]
                self.bar.update(self.task, total=(t.total or 0) + objects)

    def done(self, oid: str, nbytes: int, status: str) -> None:
        if self.bar is not None:
            self.bar.advance(self.task, 1)


#: After a push into a run-cache that older pivots filled (no `runcache.json` marker).
UPGRADE_HINT = (
    "hint: run-cache lookups on {remote!r} list its entries (they predate heads);"
    " `pivot remote upgrade {remote}` makes each lookup one request"
)


def _summary(res: Any, verb: str, extra: str = "") -> str:
    moved = f"{verb} {len(res.transferred)} object(s) ({human_size(res.nbytes)})"
    where = "to" if res.direction == "push" else "from"
    line = f"{moved} {where} {res.remote!r}; {len(res.present)} already there"
    if res.direction == "push":
        line += f"; {len(res.entries)} run-cache entr{'y' if len(res.entries) == 1 else 'ies'}"
        if res.unmarked:
            line += f"\n{UPGRADE_HINT.format(remote=res.remote)}"
    return line + extra


def _print_plan(res: Any, verb: str) -> None:
    for item in res.planned:
        size = human_size(item.size) if item.size is not None else "?"
        console().print(f"would {verb} {item.oid}  {size}  {', '.join(sorted(item.locks))}")
    console().print(f"{len(res.planned)} object(s) would {verb} ({res.remote!r}); nothing sent")


def push(
    names: list[str] = NAMES.typer(),
    remote: str = REMOTE.typer(),
    jobs: int = JOBS.typer(),
    dry_run: bool = DRY_RUN.typer(),
    as_json: bool = JSON.typer(),
    verify_remote: bool = typer.Option(
        False,
        "--verify-remote",
        help="Check every object on the remote, even the files of a folder whose "
        "manifest is already there (which otherwise vouches for them).",
    ),
) -> None:
    """Upload the objects the locks name (files, then manifests), then run-cache entries."""
    from pivot_store.repo import Repo

    repo = Repo.find()
    # By name: a push with nothing to do never reads an unchanged lock (sync.push).
    locks = names or None
    with _Bar("push", not as_json and sys.stderr.isatty()) as bar:
        res = repo.push(
            locks, remote=remote, jobs=jobs, dry_run=dry_run, progress=bar,
            verify_remote=verify_remote,
        )  # fmt: skip
    if as_json:
        emit_json(res.summary())
    elif dry_run:
        _print_plan(res, "push")
    else:
        console().print(_summary(res, "pushed"))
    res.raise_for_failures()


def _pull(names: list[str], remote: str | None, jobs: int | None, dry_run: bool,
          as_json: bool, checkout: bool, mode: str | None) -> None:  # fmt: skip
    from pivot_store.repo import Repo
    from pivot_store.signing import ENV_KEY, ENV_KEY_FILE

    repo = Repo.find()
    locks = list(repo.iter_locks(names or None))
    with _Bar("pull", not as_json and sys.stderr.isatty()) as bar:
        if checkout:
            res = repo.pull(
                locks, remote=remote, jobs=jobs, dry_run=dry_run, progress=bar, mode=mode
            )
        else:
            res = repo.fetch(locks, remote=remote, jobs=jobs, dry_run=dry_run, progress=bar)
    placed = len(res.checked_out) if checkout else 0
    if as_json:
        emit_json({**res.summary(), "checked_out": placed})
    elif dry_run:
        _print_plan(res, "pull")
    else:
        extra = f"; checked out {placed} output(s)" if checkout else ""
        console().print(_summary(res, "pulled" if checkout else "fetched", extra))
    if not dry_run and (os.environ.get(ENV_KEY) or os.environ.get(ENV_KEY_FILE)):
        print(_UNSIGNED_LOCKS, file=sys.stderr)
    if res.failed:
        for failure in sorted(res.failed.items())[3:]:
            print(f"failed: {failure[0]}: {failure[1]}", file=sys.stderr)
    res.raise_for_failures()


def pull(
    names: list[str] = NAMES.typer(),
    remote: str = REMOTE.typer(),
    jobs: int = JOBS.typer(),
    dry_run: bool = DRY_RUN.typer(),
    as_json: bool = JSON.typer(),
    checkout_mode: str = CHECKOUT_MODE.typer(),
) -> None:
    """Download what the locks name and the cache lacks, then check the outputs out."""
    _pull(names, remote, jobs, dry_run, as_json, True, checkout_mode)


def fetch(
    names: list[str] = NAMES.typer(),
    remote: str = REMOTE.typer(),
    jobs: int = JOBS.typer(),
    dry_run: bool = DRY_RUN.typer(),
    as_json: bool = JSON.typer(),
) -> None:
    """`pivot pull` without the checkout: fill the cache only."""
    _pull(names, remote, jobs, dry_run, as_json, False, None)


def register(app: typer.Typer) -> None:
    for command in (push, pull, fetch):
        app.command()(command)
