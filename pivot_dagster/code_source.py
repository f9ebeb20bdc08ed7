"""Source of the user's code, parsed once per module per process.

The code walk (`code_version`) needs, for each function or class it reaches,
the AST node that defines it, a normalized dump of that node, and the names the
node reads. Parsing a 1,000-line module costs several milliseconds, so each
file is parsed once (keyed by path, mtime and size) and every node's dump and
references are cached beside it: the walk of a second asset in the same module
costs dictionary lookups.

"User code" is decided by where a module's file lives: the standard library,
site-packages (of `sys.prefix` and `sys.base_prefix`, and the user site) and
pivot and Dagster themselves are not walked.
"""

from __future__ import annotations

import ast
import contextlib
import linecache
import os
import site
import sys
import sysconfig
import types
from dataclasses import dataclass, field
from typing import Any

from pivot_store.hashing import hash_bytes

# Top-level packages never walked, wherever they are installed (pivot is often
# installed editable, from a folder that looks like user code).
_FRAMEWORK = frozenset({"dagster", "pivot_dagster", "pivot_store"})
_FUNC = ast.FunctionDef | ast.AsyncFunctionDef
Refs = frozenset[tuple[str, ...]]


def _library_roots() -> tuple[str, ...]:
    roots: set[str] = set()
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}:
        for key in ("stdlib", "platstdlib", "purelib", "platlib"):
            try:
                path = sysconfig.get_path(key, vars={"base": prefix, "platbase": prefix})
            except KeyError:
                continue
            if path:
                roots.add(os.path.realpath(path))
    with contextlib.suppress(AttributeError):  # some virtualenv builds lack it
        roots.update(os.path.realpath(p) for p in site.getsitepackages())
    user_site = getattr(site, "USER_SITE", None)
    if user_site:
        roots.add(os.path.realpath(user_site))
    return tuple(sorted(r.rstrip(os.sep) + os.sep for r in roots))


_ROOTS = _library_roots()
_user_file_cache: dict[str, bool] = {}


def is_user_file(filename: str | None) -> bool:
    """True for a source file outside the stdlib and every site-packages folder."""
    if not filename or (filename.startswith("<") and not linecache.getlines(filename)):
        return False
    known = _user_file_cache.get(filename)
    if known is None:
        real = os.path.realpath(filename) if not filename.startswith("<") else filename
        parts = real.split(os.sep)
        known = not (
            real.startswith(_ROOTS) or "site-packages" in parts or "dist-packages" in parts
        )
        _user_file_cache[filename] = known
    return known


def is_user_module_name(name: str | None) -> bool:
    return bool(name) and name.partition(".")[0] not in _FRAMEWORK


def is_user_module(mod: types.ModuleType) -> bool:
    return is_user_module_name(mod.__name__) and is_user_file(getattr(mod, "__file__", None))


@dataclass
class ModuleSource:
    """One parsed file: its definitions by qualified name and top-level bindings by name."""

    tree: ast.Module
    by_qualname: dict[str, list[ast.AST]] = field(default_factory=dict)
    by_line: dict[int, list[ast.AST]] = field(default_factory=dict)  # first line, decorators incl.
    bindings: dict[str, list[ast.stmt]] = field(default_factory=dict)
    dumped: dict[tuple[int, bool], tuple[str, Refs]] = field(default_factory=dict)
    whole: str | None = None

    def node_info(self, node: ast.AST, strip_decorators: bool = False) -> tuple[str, Refs]:
        """(xxh64 of the normalized dump, names read) of a node of this tree, cached."""
        key = (id(node), strip_decorators)
        hit = self.dumped.get(key)
        if hit is None:
            if strip_decorators:
                node = _without_decorators(node)
            hit = (hash_bytes(normalized_dump(node).encode()), references(node))
            self.dumped[key] = hit
        return hit

    def whole_hash(self) -> str:
        if self.whole is None:
            self.whole = hash_bytes(normalized_dump(self.tree).encode())
        return self.whole


_modules: dict[str, tuple[tuple[int, int] | None, ModuleSource | None]] = {}


def module_source(filename: str) -> ModuleSource | None:
    """The parsed file, or None when its source cannot be read or parsed."""
    try:
        st = os.stat(filename)
        stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = None  # a notebook cell or an exec'd string: linecache may hold it
    cached = _modules.get(filename)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    text = _read(filename, stamp is not None)
    src = None
    if text is not None:
        try:
            src = _index(ast.parse(text, filename))
        except (SyntaxError, ValueError):
            src = None
    _modules[filename] = (stamp, src)
    return src


def _read(filename: str, on_disk: bool) -> str | None:
    if on_disk:
        try:
            with open(filename, "rb") as f:
                data = f.read()
        except OSError:
            return None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return None
    lines = linecache.getlines(filename)
    return "".join(lines) if lines else None


def _index(tree: ast.Module) -> ModuleSource:
    """Index definitions by qualified name and drop docstrings, visiting statements only
    (definitions live in statement bodies; expressions are never entered)."""
    src = ModuleSource(tree)
    _drop_docstring(tree)
    stack: list[tuple[list[ast.stmt], str]] = [(tree.body, "")]
    while stack:
        body, prefix = stack.pop()
        for stmt in body:
            if isinstance(stmt, _FUNC | ast.ClassDef):
                _drop_docstring(stmt)
                qn = prefix + stmt.name
                src.by_qualname.setdefault(qn, []).append(stmt)
                src.by_line.setdefault(_first_line(stmt), []).append(stmt)
                inner = ".<locals>." if isinstance(stmt, _FUNC) else "."
                stack.append((stmt.body, qn + inner))
                continue
            for where in ("body", "orelse", "finalbody"):
                sub = getattr(stmt, where, None)
                if sub:
                    stack.append((sub, prefix))
            for holder in (*getattr(stmt, "handlers", ()), *getattr(stmt, "cases", ())):
                stack.append((holder.body, prefix))
    _top_bindings(tree.body, src.bindings)
    return src


def _top_bindings(body: list[ast.stmt], out: dict[str, list[ast.stmt]]) -> None:
    """Names the module binds at its top level (also inside top-level if/try/with)."""
    for stmt in body:
        names: list[str] = []
        if isinstance(stmt, _FUNC | ast.ClassDef):
            names = [stmt.name]
        elif isinstance(stmt, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for t in targets:
                names += [n.id for n in ast.walk(t) if isinstance(n, ast.Name)]
        elif isinstance(stmt, ast.Import | ast.ImportFrom):
            for alias in stmt.names:
                names.append(alias.asname or alias.name.partition(".")[0])
        elif isinstance(stmt, ast.If | ast.Try | ast.With):
            for sub in ("body", "orelse", "finalbody", "handlers"):
                inner = getattr(stmt, sub, [])
                if sub == "handlers":
                    inner = [s for h in inner for s in h.body]
                _top_bindings(inner, out)
        for name in names:
            out.setdefault(name, []).append(stmt)


def function_nodes(fn: types.FunctionType) -> list[ast.AST]:
    """The nodes defining `fn` (matched by qualified name and first line), or []."""
    code = fn.__code__
    src = module_source(code.co_filename)
    if src is None:
        return []
    if code.co_name == "<lambda>":
        return [
            n
            for n in ast.walk(src.tree)
            if isinstance(n, ast.Lambda) and n.lineno == code.co_firstlineno
        ]
    nodes = src.by_qualname.get(fn.__qualname__, [])
    if len(nodes) > 1:
        exact = [n for n in nodes if _first_line(n) == code.co_firstlineno]
        nodes = exact or nodes
    if not nodes:  # a factory renamed it (`fn.__qualname__ = ...`): find it by position
        at = src.by_line.get(code.co_firstlineno, [])
        nodes = [n for n in at if isinstance(n, _FUNC) and n.name == code.co_name]
    return nodes


def class_nodes(cls: type) -> tuple[ModuleSource | None, list[ast.AST]]:
    mod = sys.modules.get(cls.__module__)
    filename = getattr(mod, "__file__", None)
    src = module_source(filename) if filename else None
    return src, (src.by_qualname.get(cls.__qualname__, []) if src else [])


def _first_line(node: Any) -> int:
    return min([d.lineno for d in node.decorator_list] + [node.lineno])


def _drop_docstring(
    node: ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef,
) -> None:
    """Docstrings never count: removed from the cached tree, in place (pivot owns it)."""
    body = node.body
    if (
        body
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    ):
        node.body = body[1:] or [ast.Pass()]


def _without_decorators(node: ast.AST) -> ast.AST:
    """The asset function's own decorators (`@asset(...)`, `@cached`) are not its logic."""
    if not isinstance(node, _FUNC | ast.ClassDef):
        return node
    copy = type(node)(**{f: getattr(node, f, None) for f in node._fields})
    copy.decorator_list = []
    return copy


def normalized_dump(node: ast.AST) -> str:
    """The AST without positions, comments or docstrings: formatting does not count,
    logic does."""
    return ast.dump(node, annotate_fields=False, include_attributes=False)


def references(node: ast.AST) -> Refs:
    """Every name chain the node reads: `fit` -> ("fit",), `data.fit(x)` -> ("data", "fit")."""
    out: set[tuple[str, ...]] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, ast.Attribute):
            chain: list[str] = []
            cur: ast.AST = n
            while isinstance(cur, ast.Attribute):
                chain.append(cur.attr)
                cur = cur.value
            if isinstance(cur, ast.Name):
                out.add((cur.id, *reversed(chain)))
            else:
                stack.append(cur)
            continue
        if isinstance(n, ast.Name):
            if not isinstance(n.ctx, ast.Store):
                out.add((n.id,))
            continue
        stack.extend(ast.iter_child_nodes(n))
    return frozenset(out)
