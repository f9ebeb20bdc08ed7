"""The local store commands' bodies, without typer.

`app._fast` (plain `status`/`checkout`/`add`, no typer) and the typer commands
in `store_cmds` call these same functions, so each command has one body. Each
returns the exit code. Everything heavier than the output helpers is imported
inside, so a no-op `pivot status` loads only what it uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pivot_store.cli.output import emit_json, human_size, say

if TYPE_CHECKING:
    from pivot_store.gc import GcResult
    from pivot_store.repo import Repo
    from pivot_store.retention import KeepPolicy


def init(path: Path) -> int:
    from pivot_store.repo import Repo

    repo = Repo.init(path)
    say(f"Initialized pivot project in {repo.pivot_dir}")
    return 0


def add(paths: Sequence[str | Path]) -> int:
    from pivot_store.repo import Repo

    repo = Repo.find()
    for p in paths:
        lock = repo.track(Path(p))
        out = lock.outputs[0]
        say(f"added {out.path} ({out.kind}, {human_size(out.size)}) -> {out.hash}")
    return 0


def status(
    names: list[str] | None,
    as_json: bool = False,
    remote: bool = False,
    remote_name: str | None = None,
) -> int:
    """Per lock ok / modified / missing ...; 1 unless all are ok."""
    from pivot_store.cli.output import table
    from pivot_store.repo import Repo

    repo = Repo.find()
    rows = repo.status(names or None)
    data: dict = {"locks": [r.__dict__ for r in rows]}
    if remote:
        data["remote"] = remote_status(repo, names or None, remote_name)
    if as_json:
        emit_json(data)
    else:
        if not rows:
            say("no locks yet: track something with `pivot add PATH`")
        else:
            table(
                "status",
                ["lock", "path", "status"],
                [[r.name, r.path or "-", r.status] for r in rows],
            )
        if remote:
            for key, items in data["remote"].items():
                if isinstance(items, list):
                    say(f"{key}: {len(items)}")
    return 1 if any(r.status != "ok" for r in rows) else 0


def remote_status(repo: Repo, names: list[str] | None, remote_name: str | None) -> dict[str, Any]:
    """`status --remote`: JSON-ready lists of what is missing where (reads only)."""
    from pivot_store.status import compare

    st = compare(repo.objects, repo.remote(remote_name), list(repo.iter_locks(names)))
    return {
        "remote": st.remote,
        "missing_on_remote": [{"lock": lk, "oid": o} for lk, o in st.missing_on_remote],
        "missing_locally": [{"lock": lk, "oid": o} for lk, o in st.missing_locally],
    }


def checkout(names: list[str] | None, mode: str | None = None) -> int:
    from pivot_store.repo import Repo

    placed = Repo.find().checkout(names or None, mode)
    say(f"checked out {len(placed)} output(s)")
    return 0


def verify(as_json: bool, repair: bool, jobs: int) -> int:
    """Rehash every object; 1 when any is corrupt."""
    from pivot_store.integrity import verify as run_verify
    from pivot_store.repo import Repo

    res = run_verify(Repo.find().objects, repair=repair, jobs=jobs)
    if as_json:
        emit_json({"checked": res.checked, "corrupt": res.corrupt, "repaired": res.repaired})
    else:
        for oid in res.corrupt:
            fix = "deleted; pull it again" if oid in res.repaired else "run `pivot verify --repair`"
            say(f"corrupt: {oid} ({fix})")
        say(f"checked {res.checked} object(s), {len(res.corrupt)} corrupt")
    return 1 if res.corrupt else 0


def collect_garbage(
    repo: Repo,
    *,
    grace_hours: float = 24.0,
    dry_run: bool = False,
    workspace_only: bool = False,
    keep: KeepPolicy | None = None,
) -> GcResult:
    """gc of a project: what its locks, its local run-cache and (in a git repository,
    unless `workspace_only`) the locks of every local branch, tag and HEAD use is kept.

    The exclusive hold spans computing `used` and collecting, so a writer
    (which holds the shared lock from its first object to the lock naming it)
    never loses an object in between. History is read before the hold: git
    is slow next to a writer's wait, and committed locks do not change under it.
    Local run-cache entries `keep` drops go first, then what only they named.
    """
    from pivot_store.gc import collect, referenced
    from pivot_store.git_history import history_locks
    from pivot_store.retention import KeepPolicy, local_entries, split

    history = None if workspace_only else history_locks(repo.stages_dir)
    past = history.locks if history is not None else []
    with repo.writing(exclusive=True):
        runs, dropped = split(local_entries(repo.runs_dir), keep or KeepPolicy())
        if not dry_run:
            for e in dropped:
                e.path.unlink(missing_ok=True)
        run_locks = (e.lock for e in runs)
        used = referenced(repo.objects, chain(repo.lock_summaries(), run_locks, past), repo.state)
        res = collect(
            repo.objects,
            used,
            grace_hours=grace_hours,
            dry_run=dry_run,
            temp_root=repo.pivot_dir,
        )
    res.git_refs = len(history.refs) if history is not None else None
    res.runs_removed = len(dropped)
    return res


def gc(
    dry_run: bool,
    grace: float,
    as_json: bool,
    workspace_only: bool = False,
    keep_last: int | None = None,
    keep_days: float | None = None,
) -> int:
    from pivot_store.repo import Repo
    from pivot_store.retention import KeepPolicy

    res = collect_garbage(
        Repo.find(),
        grace_hours=grace,
        dry_run=dry_run,
        workspace_only=workspace_only,
        keep=KeepPolicy(last=keep_last, days=keep_days),
    )
    if as_json:
        emit_json(
            {
                "removed": res.removed,
                "kept": res.kept,
                "freed": res.freed,
                "dry_run": dry_run,
                "git_refs": res.git_refs,
                "temps_removed": res.temps_removed,
                "runs_removed": res.runs_removed,
            }
        )
        return 0
    verb = "would remove" if dry_run else "removed"
    for oid in res.removed:
        say(f"{verb} {oid}")
    refs = "" if res.git_refs is None else f" (locks of {res.git_refs} git ref(s) included)"
    say(f"{verb} {len(res.removed)} object(s), {human_size(res.freed)}; kept {res.kept}{refs}")
    if res.runs_removed:
        say(f"{verb} {res.runs_removed} local run-cache entr(ies) outside the keep policy")
    return 0
