"""`pivot gc --remote [NAME]`: the body of remote gc (pivot_store/remote_gc.py).

Called by `store_cmds.gc` when `--remote` is given; the local gc path is
untouched. What is kept: the work tree's locks (unless `--no-workspace`),
the locks at each `--rev`, the newest `--keep-last` results per name, those
newer than `--keep-days`, and whatever the remote stored within `--grace`.
"""

from __future__ import annotations

from pivot_store.cli.output import emit_json, human_size, say


def remote_gc(
    name: str | None,
    revs: list[str],
    workspace: bool,
    keep_last: int | None,
    keep_days: float | None,
    grace: float,
    dry_run: bool,
    as_json: bool,
) -> int:
    """Delete what the policy does not keep; 1 when a concurrent push lost an object."""
    from pivot_store import sync
    from pivot_store.git_history import refs_locks
    from pivot_store.remote_gc import KeepPolicy, collect_remote
    from pivot_store.repo import Repo

    repo = Repo.find()
    locks = list(repo.iter_locks()) if workspace else []
    if revs:
        locks += refs_locks(repo.stages_dir, revs)
    remote = sync.remote(repo, name)
    policy = KeepPolicy(keep_last=keep_last, keep_days=keep_days, grace_hours=grace)
    res = collect_remote(remote, locks, policy, objects=repo.objects, dry_run=dry_run)
    if as_json:
        emit_json(res.to_json())
        return 1 if res.lost else 0
    verb = "would remove" if dry_run else "removed"
    for kind in ("entries", "pointers", "objects"):
        items = getattr(res, kind)
        say(f"{verb} {len(items)} {kind} ({human_size(res.nbytes[kind])}); kept {res.kept[kind]}")
    for rel, why in sorted(res.unparsable.items()):
        say(f"left unparsable {rel}: {why}")
    if res.foreign:
        say(f"left {len(res.foreign)} key(s) outside pivot's layout")
    for oid in res.blocked:
        say(f"kept every file: manifest {oid} on the remote cannot be read")
    for oid in res.repaired:
        say(f"re-uploaded {oid}: a push during gc named it")
    for what in res.lost:
        say(f"LOST {what}: a push during gc named it; push that lock again with --verify-remote")
    return 1 if res.lost else 0
