"""The CLI's shared arguments and options, each declared once.

Two readers use this table: the typer declarations (`Opt.typer()`,
`Arg.typer()`, called by the command modules when the typer app is built) and
`app._fast`, which parses plain `status`/`checkout`/`add` without importing
typer. A flag, its help and its allowed values are therefore spelled in one
place, and the fast path cannot accept a value typer would refuse. Nothing here
imports typer at module level, and the two classes are plain ones: a frozen
dataclass costs ~1 ms to define, a measurable part of a no-op `pivot status`.
"""

from __future__ import annotations

from typing import Any

from pivot_store.checkout import CHECKOUT_MODES


class Opt:
    """An option: `is_flag` ones take no value; `choices` limits the values."""

    __slots__ = ("choices", "default", "flags", "help", "is_flag", "max", "min")

    def __init__(
        self,
        flags: tuple[str, ...],
        help: str,
        default: Any = None,
        *,
        is_flag: bool = False,
        choices: tuple[str, ...] = (),
        min: int | None = None,
        max: int | None = None,
    ) -> None:
        self.flags, self.help, self.default = flags, help, default
        self.is_flag, self.choices, self.min, self.max = is_flag, choices, min, max

    def typer(self) -> Any:
        import typer

        extra: dict[str, Any] = {}
        if self.choices:
            extra["callback"] = self.check
        if self.min is not None:
            extra["min"] = self.min
        if self.max is not None:
            extra["max"] = self.max
        return typer.Option(self.default, *self.flags, help=self.help, **extra)

    def accepts(self, value: str) -> bool:
        return not self.choices or value in self.choices

    def check(self, value: str | None) -> str | None:
        """typer's callback: a value outside `choices` is a usage error (exit 2)."""
        if value is not None and not self.accepts(value):
            import typer

            raise typer.BadParameter(f"{value!r} is not one of {'|'.join(self.choices)}")
        return value


class Arg:
    """Positional arguments: zero or more, or one or more when `required`."""

    __slots__ = ("help", "required")

    def __init__(self, help: str, *, required: bool = False) -> None:
        self.help, self.required = help, required

    def typer(self, default: Any = None) -> Any:
        import typer

        return typer.Argument(... if self.required else default, help=self.help)


VERBOSE = Opt(("--verbose", "-v"), "Show tracebacks on errors.", False, is_flag=True)
NAMES = Arg("Lock names (default: all).")
PATHS = Arg("Files or folders to track.", required=True)
JSON = Opt(("--json",), "Print JSON.", False, is_flag=True)
CHECKOUT_MODE = Opt(("--checkout-mode",), "|".join(CHECKOUT_MODES), choices=CHECKOUT_MODES)
REMOTE = Opt(("-r", "--remote"), "Remote name (default: default_remote).")
JOBS = Opt(("-j", "--jobs"), "Parallel transfers [20].", min=1, max=256)
DRY_RUN = Opt(("--dry-run",), "List what would move; move nothing.", False, is_flag=True)
