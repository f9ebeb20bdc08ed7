"""Commands other packages add to `pivot`: the `pivot.commands` entry points.

A distribution declares `[project.entry-points."pivot.commands"] run =
"pivot_dagster.cli:register"`; `register(app)` adds its commands to the typer
app, as the built-in command modules do. A plugin is imported only when its
command is asked for: `pivot --help` lists a stub line instead (importing
pivot_dagster means importing dagster, ~1 s). A plugin that fails to load costs
one warning line and leaves every other command working.

`discover` reads the distributions' `entry_points.txt` itself: importing
`importlib.metadata` and its scan cost ~40 ms (plus ~40 ms for what it
imports), a third of `pivot --help`. It finds what
`importlib.metadata.entry_points(group=GROUP)` finds (a test holds them equal):
every `*.dist-info` / `*.egg-info` folder on `sys.path`, the first of each
distribution name winning.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

GROUP = "pivot.commands"

_state: dict[str, str] = {}  # plugin name -> "stub" | "loaded" | "broken"


@dataclass(frozen=True)
class Plugin:
    name: str
    value: str  # "module:function"
    dist: str

    def load(self) -> Callable[[Any], None]:
        module, _, attr = self.value.partition(":")
        obj: Any = importlib.import_module(module.strip())
        for part in attr.strip().split(".") if attr.strip() else ():
            obj = getattr(obj, part)
        return obj


def discover() -> list[Plugin]:
    found: list[Plugin] = []
    seen: set[str] = set()
    for folder, dist in _distributions():
        if dist in seen:
            continue
        seen.add(dist)
        try:
            with open(os.path.join(folder, "entry_points.txt"), encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError):
            continue
        found.extend(Plugin(n, v, dist) for n, v in _section(text, GROUP))
    return found


def _distributions() -> Iterator[tuple[str, str]]:
    """(metadata folder, normalized distribution name), in sys.path order."""
    for entry in sys.path:
        root = entry or "."
        try:
            names = os.listdir(root)
        except OSError:  # missing, a file, a zip
            continue
        for name in names:
            if name.endswith((".dist-info", ".egg-info")):
                dist = name.rpartition(".")[0].partition("-")[0]
                yield os.path.join(root, name), re.sub(r"[-_.]+", "_", dist).lower()


def _section(text: str, group: str) -> Iterator[tuple[str, str]]:
    """`name = value` lines of one `[group]` of an entry_points.txt (an ini file)."""
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip()
        elif current == group and "=" in line:
            name, _, value = line.partition("=")
            yield name.strip(), value.partition("[")[0].strip()  # drop `[extras]`


def add(app: Any, wanted: str | None, builtin: set[str]) -> None:
    """Stub lines for the plugins, and the real commands of the one called `wanted`."""
    for plugin in discover():
        state = _state.get(plugin.name)
        if state in ("loaded", "broken") or (state == "stub" and plugin.name != wanted):
            continue
        if plugin.name in builtin:
            _warn(plugin, "a built-in command has that name")
            _state[plugin.name] = "broken"
        elif plugin.name != wanted:
            _add_stub(app, plugin)
            _state[plugin.name] = "stub"
        else:
            app.registered_commands[:] = [
                c for c in app.registered_commands if c.name != plugin.name
            ]
            try:
                plugin.load()(app)
            except Exception as e:
                _warn(plugin, f"{type(e).__name__}: {e}")
                _state[plugin.name] = "broken"
            else:
                _state[plugin.name] = "loaded"


def _add_stub(app: Any, plugin: Plugin) -> None:
    def stub() -> None:  # never runs: `pivot NAME` loads the real command first
        raise AssertionError(f"plugin stub {plugin.name!r} ran")

    app.command(plugin.name, help=f"From {plugin.dist}: see `pivot {plugin.name} --help`.")(stub)


def _warn(plugin: Plugin, why: str) -> None:
    print(
        f"warning: pivot plugin {plugin.name!r} ({plugin.value}) not loaded: {why}",
        file=sys.stderr,
    )
