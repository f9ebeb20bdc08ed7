"""Local store commands: init, add, status, checkout, verify, gc.

The typer declarations only; the bodies are in `commands`, shared with the
fast path in `app`, and the shared options come from `options`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from pivot_store.cli import commands
from pivot_store.cli.options import CHECKOUT_MODE, JSON, NAMES, PATHS


def _exit(code: int) -> None:
    if code:
        raise typer.Exit(code)


def init(path: Path = typer.Argument(Path("."), help="Project folder.")) -> None:
    """Create .pivot/ (config.yaml and a .gitignore that keeps cache data out of git)."""
    _exit(commands.init(path))


def add(paths: list[Path] = PATHS.typer()) -> None:
    """Store files or folders in the cache and write their locks."""
    _exit(commands.add(paths))


def status(
    names: list[str] = NAMES.typer(),
    as_json: bool = JSON.typer(),
    remote: bool = typer.Option(False, "--remote", help="Also compare with the remote."),
    remote_name: str = typer.Option(None, "-r", "--remote-name", help="Remote to compare with."),
) -> None:
    """Per lock: ok / modified / missing from workspace / missing from cache."""
    _exit(commands.status(names or None, as_json, remote, remote_name))


def checkout(
    names: list[str] = NAMES.typer(),
    checkout_mode: str = CHECKOUT_MODE.typer(),
) -> None:
    """Make workspace outputs match their locks."""
    _exit(commands.checkout(names or None, checkout_mode))


def verify(
    as_json: bool = JSON.typer(),
    repair: bool = typer.Option(False, "--repair", help="Delete corrupt objects."),
    jobs: int = typer.Option(4, "-j", "--jobs", min=1),
) -> None:
    """Rehash every object in the cache; exit 1 and name each corrupt one."""
    _exit(commands.verify(as_json, repair, jobs))


def gc(
    dry_run: bool = typer.Option(False, "--dry-run", help="List, remove nothing."),
    grace: float = typer.Option(24.0, "--grace", min=0, help="Keep objects newer than HOURS."),
    as_json: bool = JSON.typer(),
    workspace_only: bool = typer.Option(
        False,
        "--workspace-only",
        help="Keep only what the work tree's locks use, not the locks of other git refs.",
    ),
    keep_last: int | None = typer.Option(
        None, "--keep-last", min=0, help="Keep the newest K run-cache results per asset."
    ),
    keep_days: float | None = typer.Option(
        None, "--keep-days", min=0, help="Keep run-cache results younger than D days."
    ),
    remote: bool = typer.Option(False, "--remote", help="Collect on a remote (docs/remotes.md)."),
    name: str = typer.Argument(None, help="With --remote: its name (default: default_remote)."),
    rev: list[str] = typer.Option([], "--rev", help="With --remote: keep the locks at REF."),
    workspace: bool = typer.Option(
        True, "--workspace/--no-workspace", help="With --remote: keep the work tree's locks."
    ),
) -> None:
    """Remove objects that no lock (work tree, local run-cache, every local git branch
    and tag) references and that are older than the grace period.

    With --remote [NAME]: remote gc (docs/remotes.md#remote-gc), keeping the work
    tree's locks, those at each --rev, the results --keep-last/--keep-days keep (no
    policy keeps every result) and whatever the remote stored within the grace.
    """
    if remote:
        from pivot_store.cli.remote_gc_cmds import remote_gc

        _exit(remote_gc(name, rev, workspace, keep_last, keep_days, grace, dry_run, as_json))
        return
    if name is not None or rev:
        raise typer.BadParameter("a remote name and --rev need --remote")
    _exit(commands.gc(dry_run, grace, as_json, workspace_only, keep_last, keep_days))


def register(app: typer.Typer) -> None:
    for command in (init, add, status, checkout, verify, gc):
        app.command()(command)
