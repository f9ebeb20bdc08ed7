"""Print the import cycles of pivot_store and pivot_dagster (or "no cycles").

    python scripts/import_graph.py            # cycles, exit 1 if any
    python scripts/import_graph.py --edges    # the whole graph, one edge a line

The graph is read from the source with `ast`, never by importing: every
`import`/`from ... import` counts, at module level, inside functions and under
`if TYPE_CHECKING:` alike, since a function-level import between two modules
that import each other is still a cycle, only a hidden one. `from pkg import
name` is an edge to `pkg.name` when that is a module, else to `pkg` (and, when
`pkg/__init__.py` re-exports `name` lazily through an `_EXPORTS` dict, to the
module it names). tests/test_imports.py uses the same functions.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pivot_store", "pivot_dagster")

Graph = dict[str, set[str]]


def modules(root: Path = ROOT, packages: Iterable[str] = PACKAGES) -> dict[str, Path]:
    """Every module of the packages: dotted name -> source file."""
    found: dict[str, Path] = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _lazy_exports(tree: ast.Module) -> dict[str, str]:
    """A package's PEP 562 `_EXPORTS = {"Name": "pkg.module", ...}`, if it has one."""
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        value = getattr(node, "value", None)
        if any(getattr(t, "id", None) == "_EXPORTS" for t in targets) and isinstance(
            value, ast.Dict
        ):
            return {
                k.value: v.value
                for k, v in zip(value.keys, value.values, strict=True)
                if isinstance(k, ast.Constant) and isinstance(v, ast.Constant)
            }
    return {}


def imports(name: str, path: Path) -> list[tuple[str, int]]:
    """(imported dotted name, line) for every import statement anywhere in the file."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = name.split(".")
                drop = node.level - 1 if is_pkg else node.level
                base_parts = base_parts[: len(base_parts) - drop] if drop else base_parts
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
    return found


def build(root: Path = ROOT, packages: Iterable[str] = PACKAGES) -> Graph:
    """module -> the modules of the packages it imports (external imports dropped)."""
    mods = modules(root, packages)
    exports = {
        m: _lazy_exports(ast.parse(p.read_text()))
        for m, p in mods.items()
        if p.name == "__init__.py"
    }
    graph: Graph = {m: set() for m in mods}
    for mod, path in mods.items():
        for target, _ in imports(mod, path):
            if target in mods:
                graph[mod].add(target)
                continue
            pkg, _, attr = target.rpartition(".")
            if pkg in mods:  # `from pkg import attr`, attr not a module
                graph[mod].add(pkg)
                lazy = exports.get(pkg, {}).get(attr)
                if lazy in mods:
                    graph[mod].add(lazy)
        graph[mod].discard(mod)
    return graph


def _components(graph: Graph) -> list[list[str]]:
    """Strongly connected components (Tarjan), iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        n = stack.pop()
                        on_stack.discard(n)
                        comp.append(n)
                        if n == node:
                            break
                    out.append(sorted(comp))
    return out


def _shortest_cycle(graph: Graph, start: str, members: set[str]) -> list[str]:
    """The shortest path start -> ... -> start inside one component (BFS)."""
    prev: dict[str, str] = {}
    frontier = [start]
    seen = {start}
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(graph[node] & members):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return [*reversed(path), start]
                if child not in seen:
                    seen.add(child)
                    prev[child] = node
                    nxt.append(child)
        frontier = nxt
    return []


def cycles(graph: Graph) -> list[list[str]]:
    """One shortest cycle through each module that is on a cycle, duplicates dropped.

    Each cycle is listed from its smallest name, ending where it starts.
    """
    found: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()
    for comp in _components(graph):
        if len(comp) < 2:
            continue
        for node in comp:
            cyc = _shortest_cycle(graph, node, set(comp))[:-1]
            i = cyc.index(min(cyc))
            key = tuple(cyc[i:] + cyc[:i])
            if key not in seen:
                seen.add(key)
                found.append([*key, key[0]])
    return sorted(found, key=lambda c: (len(c), c))


def format_cycles(found: list[list[str]]) -> str:
    if not found:
        return "no cycles"
    lines = [f"{len(found)} import cycle(s):"]
    lines += ["  " + " -> ".join(c) for c in found]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    graph = build()
    if "--edges" in argv:
        for mod in sorted(graph):
            for target in sorted(graph[mod]):
                print(f"{mod} -> {target}")
        return 0
    found = cycles(graph)
    print(format_cycles(found))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
