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


def main(argv: list[str] | None = None) -> int:
    """Entry point: map PivotError to one line on stderr and an exit code."""
    from pivot_store.errors import PivotError

    verbose = "--verbose" in (argv or sys.argv) or "-v" in (argv or sys.argv)
    try:
        app(args=argv, standalone_mode=False)
    except PivotError as e:
        if verbose:
            raise
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return 1
    except Exception as e:  # click usage errors carry their own exit code
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            return e.exit_code
        if isinstance(e, click.exceptions.Exit):
            return e.exit_code
        if verbose:
            raise
        print(
            f"error: unexpected {type(e).__name__}: {e} (run with --verbose for details)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
