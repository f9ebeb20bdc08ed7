"""The `pivot` command: `main()`, the one place errors become lines and exit codes.

Commands live in one module per group, each with `register(app)`; `build()`
makes the typer app and calls them (the built-in modules, then the plugins of
the `pivot.commands` entry-point group, such as pivot_dagster's `pivot run`:
see `plugins`). No command module imports this one.

typer and the command modules cost ~70 ms to import, and typer coerces
parameters through pydantic (~100 ms more), so the commands run most often
with the simplest arguments, `pivot status [NAME...] [--json]`, `pivot checkout
[NAME...] [--checkout-mode MODE]` and `pivot add PATH...`, are recognised by
`_fast` from the `FAST` table and run the same bodies (`commands`) without
typer. Their options come from `options`, the table typer's declarations are
built from too. Anything else, a typo, `--help` or any other option, goes
through typer.
"""

from __future__ import annotations

import sys
from typing import Any

from pivot_store.cli.options import CHECKOUT_MODE, JSON, NAMES, PATHS, VERBOSE, Arg, Opt

# command -> (body in `commands`, its positional arguments, {option: keyword of the body})
FAST: dict[str, tuple[str, Arg, dict[Opt, str]]] = {
    "status": ("status", NAMES, {JSON: "as_json"}),
    "checkout": ("checkout", NAMES, {CHECKOUT_MODE: "mode"}),
    "add": ("add", PATHS, {}),
}

_app: Any = None
_builtin: set[str] = set()  # names of the built-in commands and groups


def build(command: str | None = None) -> Any:
    """The typer app with every command; the plugin called `command` is loaded."""
    global _app
    if _app is None:
        import typer

        app = typer.Typer(
            name="pivot",
            help="Content-addressed store for Dagster asset outputs.",
            no_args_is_help=True,
            add_completion=False,
            pretty_exceptions_enable=False,
        )

        @app.callback()
        def _root(verbose: bool = VERBOSE.typer()) -> None:
            """`main` reads --verbose from the arguments itself; declared for --help."""

        from pivot_store.cli import remote_cmds, store_cmds, transfer_cmds

        for module in (store_cmds, transfer_cmds, remote_cmds):  # `pivot --help` order
            module.register(app)
        _builtin.update(c.name or c.callback.__name__ for c in app.registered_commands)
        _builtin.update(g.name for g in app.registered_groups)
        _app = app
    if command not in _builtin:  # `pivot --help`, `pivot run`, a typo: plugins may answer
        from pivot_store.cli import plugins

        plugins.add(_app, command, _builtin)
    return _app


def _fast(args: list[str]) -> int | None:
    """Run plain `status`/`checkout`/`add` without typer; None: let typer handle it."""
    rest = list(args)
    if rest and rest[0] in VERBOSE.flags:
        rest.pop(0)
    if not rest or rest[0] not in FAST:
        return None
    body, positional, options = FAST[rest[0]]
    parsed = _parse(rest[1:], options)
    if parsed is None or (positional.required and not parsed[0]):
        return None  # typer: usage error, --help, or anything unusual
    values, kwargs = parsed
    from pivot_store.cli import commands

    return getattr(commands, body)(values or None, **kwargs)


def _parse(tokens: list[str], options: dict[Opt, str]) -> tuple[list[str], dict[str, Any]] | None:
    """Positionals and the body's keywords, or None for anything typer should see."""
    by_flag = {flag: (opt, key) for opt, key in options.items() for flag in opt.flags}
    values: list[str] = []
    kwargs: dict[str, Any] = {}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        flag, eq, value = tok.partition("=")
        hit = by_flag.get(flag)
        if hit is None:
            if tok.startswith("-") or not tok:
                return None
            values.append(tok)
        else:
            opt, key = hit
            if key in kwargs or (opt.is_flag and eq):
                return None
            if opt.is_flag:
                value = True
            elif not eq:
                i += 1
                if i == len(tokens):
                    return None
                value = tokens[i]
            if not opt.is_flag and not opt.accepts(value):
                return None  # typer says what is wrong (exit 2)
            kwargs[key] = value
        i += 1
    return values, kwargs


def _command_name(args: list[str]) -> str | None:
    return next((a for a in args if not a.startswith("-")), None)


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
    verbose = any(a in VERBOSE.flags for a in args)
    try:
        rv = _fast(args)
        if rv is None:
            # Not standalone: errors come back here; `typer.Exit(n)` comes back as `n`.
            app = build(_command_name(args))
            rv = app(args=args, prog_name="pivot", standalone_mode=False)
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
    sys.exit(main())
