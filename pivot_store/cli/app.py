"""The `pivot` command: one typer app, one `main()` that turns errors into lines.

Command groups live in their own modules and register on `app` when imported;
heavy libraries (lmdb, fsspec, s3fs, dagster) are imported inside the commands
so `pivot --help` stays fast.

The typer app is built on first use (`app` is a lazy module attribute): typer
and the command modules cost ~70 ms to import, and typer coerces parameters
through pydantic (~100 ms more). The two commands run most often with the
simplest arguments, `pivot status [NAME...] [--json]` and `pivot checkout
[NAME...] [--checkout-mode MODE]` (and `pivot add PATH...`), are recognised by
`_fast` and run the same code (`*_command`) without typer; anything else, a
typo, `--help` or any other option, goes through typer as before.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

STATE = {"verbose": False}
MODES = ("hardlink", "symlink", "copy", "reflink")


def _build() -> Any:
    g = globals()
    if "app" in g:
        return g["app"]
    import typer

    app = typer.Typer(
        name="pivot",
        help="Content-addressed store for Dagster asset outputs.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    remote_app = typer.Typer(help="Manage remotes in .pivot/config.yaml.", no_args_is_help=True)
    app.add_typer(remote_app, name="remote")

    @app.callback()
    def _root(
        verbose: bool = typer.Option(False, "--verbose", "-v", help="Show tracebacks on errors."),
    ) -> None:
        STATE["verbose"] = verbose

    # Before the command modules import them from here.
    g["app"], g["remote_app"] = app, remote_app
    # Imported for their side effect: each module adds its commands to `app`.
    from pivot_store.cli import (  # noqa: F401
        remote_cmds,
        run_cmd,
        store_cmds,
        transfer_cmds,
    )

    return app


def __getattr__(name: str) -> Any:
    if name in ("app", "remote_app"):
        _build()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- the commands' bodies, shared by typer and the fast path ------------------
def status_command(
    names: list[str] | None,
    as_json: bool,
    remote: bool = False,
    remote_name: str | None = None,
) -> int:
    """`pivot status`: per lock ok / modified / missing ...; 1 unless all are ok."""
    from pivot_store.cli.output import emit_json, say, table
    from pivot_store.repo import Repo

    repo = Repo.find()
    rows = repo.status(names or None)
    data: dict = {"locks": [r.__dict__ for r in rows]}
    if remote:
        from pivot_store.transfer import remote_status

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


def add_command(paths: list[Path]) -> int:
    from pivot_store.cli.output import human_size, say
    from pivot_store.repo import Repo

    repo = Repo.find()
    for p in paths:
        lock = repo.track(p)
        out = lock.outputs[0]
        say(f"added {out.path} ({out.kind}, {human_size(out.size)}) -> {out.hash}")
    return 0


def checkout_command(names: list[str] | None, mode: str | None) -> int:
    from pivot_store.cli.output import say
    from pivot_store.repo import Repo

    placed = Repo.find().checkout(names or None, mode)
    say(f"checked out {len(placed)} output(s)")
    return 0


def _fast(args: list[str]) -> int | None:
    """Run plain `status`/`checkout`/`add` without building typer; None: let typer handle it."""
    rest = list(args)
    if rest and rest[0] in ("-v", "--verbose"):
        rest.pop(0)
    if not rest or rest[0] not in ("status", "checkout", "add"):
        return None
    cmd, rest = rest[0], rest[1:]
    if cmd == "add" and (not rest or any(t.startswith("-") or not t for t in rest)):
        return None  # typer: usage error, --help, or a path that looks like an option
    names: list[str] = []
    as_json = False
    mode: str | None = None
    i = 0
    while i < len(rest):
        tok = rest[i]
        if cmd == "status" and tok == "--json" and not as_json:
            as_json = True
        elif cmd == "checkout" and mode is None and tok.startswith("--checkout-mode"):
            if tok == "--checkout-mode" and i + 1 < len(rest):
                i += 1
                mode = rest[i]
            elif tok.startswith("--checkout-mode="):
                mode = tok.partition("=")[2]
            else:
                return None
            if mode not in MODES:
                return None  # typer says what is wrong (exit 2)
        elif tok.startswith("-") or not tok:
            return None
        else:
            names.append(tok)
        i += 1
    STATE["verbose"] = args[0] in ("-v", "--verbose")
    if cmd == "add":
        return add_command([Path(t) for t in names])
    if cmd == "status":
        return status_command(names or None, as_json)
    return checkout_command(names or None, mode)


def _is_abort(e: BaseException) -> bool:
    typer = sys.modules.get("typer")
    return typer is not None and isinstance(e, typer.Abort)


def _usage_errors() -> tuple[type[Exception], ...]:
    """Click's exception base, wherever it lives: typer >= 0.2x vendors click as
    `typer._click`, so `click.ClickException` alone misses its usage errors."""
    found: list[type[Exception]] = []
    try:
        from typer._click.exceptions import ClickException as Vendored

        found.append(Vendored)
    except ImportError:
        pass
    try:
        from click.exceptions import ClickException

        found.append(ClickException)
    except ImportError:
        pass
    return tuple(found)


def main(argv: list[str] | None = None) -> int:
    """Entry point: map PivotError to one line on stderr and an exit code."""
    from pivot_store.errors import PivotError

    args = sys.argv[1:] if argv is None else list(argv)
    verbose = "--verbose" in args or "-v" in args
    try:
        rv = _fast(args)
        if rv is None:
            # Not standalone: errors come back here; `typer.Exit(n)` comes back as `n`.
            rv = _build()(args=args, prog_name="pivot", standalone_mode=False)
    except PivotError as e:
        if verbose:
            raise
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("aborted", file=sys.stderr)
        return 1
    except Exception as e:
        if _is_abort(e):
            print("aborted", file=sys.stderr)
            return 1
        if isinstance(e, _usage_errors()):  # usage errors carry their own exit code (2)
            e.show()  # type: ignore[attr-defined]
            return e.exit_code  # type: ignore[attr-defined]
        if verbose:
            raise
        print(
            f"error: unexpected {type(e).__name__}: {e} (run with --verbose for details)",
            file=sys.stderr,
        )
        return 1
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    # `python -m pivot_store.cli.app`: the commands registered themselves on the
    # imported module's `app`, not on this `__main__` copy, so run that one.
    from pivot_store.cli.app import main as _main

    sys.exit(_main())
