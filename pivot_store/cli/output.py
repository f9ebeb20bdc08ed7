"""Terminal output for the CLI: plain lines, tables, JSON when asked.

Importing rich costs 20-40 ms, more than a no-op `pivot status` itself, so it is
only used for a table on a terminal (where it fits the table to the window).
One-line messages are plain `print`s; a table written to a pipe or a file is
drawn by `_plain_table` in the same box characters as rich's default, so a
script reading `│`-separated rows sees the same shape either way.
"""

from __future__ import annotations

import json
import sys
from typing import Any


class _Plain:
    """The part of rich's Console the commands use: `print(text)` to stdout."""

    def print(self, *objects: Any, sep: str = " ", end: str = "\n", **_: Any) -> None:
        sys.stdout.write(sep.join(str(o) for o in objects) + end)


_PLAIN = _Plain()


def console() -> _Plain:
    """Where one-line messages go (plain text, never rich markup)."""
    return _PLAIN


def say(text: str) -> None:
    sys.stdout.write(text + "\n")


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _isatty() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):  # replaced or closed stdout
        return False


def table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    if not _isatty():
        sys.stdout.write(_plain_table(title, columns, rows))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*r)
    Console(highlight=False).print(t)


def _plain_table(title: str, columns: list[str], rows: list[list[str]]) -> str:
    """rich's default box (heavy head), no wrapping, no colour."""
    widths = [len(c) for c in columns]
    for r in rows:
        for i, cell in enumerate(r):
            widths[i] = max(widths[i], len(cell))

    def line(left: str, fill: str, mid: str, right: str) -> str:
        return left + mid.join(fill * (w + 2) for w in widths) + right

    def cells(bar: str, values: list[str]) -> str:
        return bar + bar.join(f" {v.ljust(w)} " for v, w in zip(values, widths, strict=False)) + bar

    out = [title] if title else []
    out.append(line("┏", "━", "┳", "┓"))
    out.append(cells("┃", columns))
    out.append(line("┡", "━", "╇", "┩"))
    out.extend(cells("│", r) for r in rows)
    out.append(line("└", "─", "┴", "┘"))
    return "\n".join(out) + "\n"


def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"
