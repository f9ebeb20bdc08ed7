"""The `pivot` command: one typer app, one `main()` that turns errors into lines.

Command groups live in their own modules and register on `app` when imported;
heavy libraries (lmdb, fsspec, s3fs, dagster) are imported inside the commands
so `pivot --help` stays fast.
"""

from __future__ import annotations

import sys

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

STATE = {"verbose": False}


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show tracebacks on errors."),
) -> None:
    STATE["verbose"] = verbose


def _register() -> None:
    # Imported for their side effect: each module adds its commands to `app`.
    from pivot_store.cli import (  # noqa: F401
        remote_cmds,
        run_cmd,
        store_cmds,
        transfer_cmds,
    )


_register()


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
        # Not standalone: errors come back here; `typer.Exit(n)` comes back as `n`.
        rv = app(args=args, prog_name="pivot", standalone_mode=False)
    except PivotError as e:
        if verbose:
            raise
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except (typer.Abort, KeyboardInterrupt):
        print("aborted", file=sys.stderr)
        return 1
    except Exception as e:
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
