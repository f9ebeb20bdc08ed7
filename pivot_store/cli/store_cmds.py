"""Local store commands: init, add, status, checkout, verify, gc."""

from __future__ import annotations

from pathlib import Path

import typer

from pivot_store.cli.app import add_command, app, checkout_command, status_command
from pivot_store.cli.output import emit_json, human_size, say

MODES = "hardlink|symlink|copy|reflink"


def _mode_option(value: str | None) -> str | None:
    if value is not None and value not in MODES.split("|"):
        raise typer.BadParameter(f"{value!r} is not one of {MODES}")
    return value


@app.command()
def init(path: Path = typer.Argument(Path("."), help="Project folder.")) -> None:
    """Create .pivot/ (config.yaml and a .gitignore that keeps cache data out of git)."""
    from pivot_store.repo import Repo

    repo = Repo.init(path)
    say(f"Initialized pivot project in {repo.pivot_dir}")


@app.command()
def add(paths: list[Path] = typer.Argument(..., help="Files or folders to track.")) -> None:
    """Store files or folders in the cache and write their locks."""
    add_command(paths)  # shared with app._fast


@app.command()
def status(
    names: list[str] = typer.Argument(None, help="Lock names (default: all)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    remote: bool = typer.Option(False, "--remote", help="Also compare with the remote."),
    remote_name: str = typer.Option(None, "-r", "--remote-name", help="Remote to compare with."),
) -> None:
    """Per lock: ok / modified / missing from workspace / missing from cache."""
    # The body is shared with app._fast, which runs plain `pivot status` without typer.
    code = status_command(names or None, as_json, remote, remote_name)
    if code:
        raise typer.Exit(code)


@app.command()
def checkout(
    names: list[str] = typer.Argument(None, help="Lock names (default: all)."),
    checkout_mode: str = typer.Option(None, "--checkout-mode", callback=_mode_option, help=MODES),
) -> None:
    """Make workspace outputs match their locks."""
    checkout_command(names or None, checkout_mode)


@app.command()
def verify(
    as_json: bool = typer.Option(False, "--json"),
    repair: bool = typer.Option(False, "--repair", help="Delete corrupt objects."),
    jobs: int = typer.Option(4, "-j", "--jobs", min=1),
) -> None:
    """Rehash every object in the cache; exit 1 and name each corrupt one."""
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
    if res.corrupt:
        raise typer.Exit(1)


@app.command()
def gc(
    dry_run: bool = typer.Option(False, "--dry-run", help="List, remove nothing."),
    grace: float = typer.Option(24.0, "--grace", min=0, help="Keep objects newer than HOURS."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Remove objects that no lock references and that are older than the grace period."""
    from pivot_store.gc import collect
    from pivot_store.repo import Repo

    res = collect(Repo.find(), grace_hours=grace, dry_run=dry_run)
    if as_json:
        emit_json(
            {"removed": res.removed, "kept": res.kept, "freed": res.freed, "dry_run": dry_run}
        )
        return
    verb = "would remove" if dry_run else "removed"
    for oid in res.removed:
        say(f"{verb} {oid}")
    say(f"{verb} {len(res.removed)} object(s), {human_size(res.freed)}; kept {res.kept}")
