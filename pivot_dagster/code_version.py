"""A code version derived from the code an asset reaches, for assets that give none.

Dagster substitutes the run id for a missing code version, which would make
every run a miss. Pivot hashes the asset function's normalized AST and,
transitively, every function, class and module-level constant of the user's
own code that it reads (global names, attribute chains through the user's
modules like `data.fit`, the methods of the classes reached), plus its closure
cells and argument defaults. The stdlib, site-packages, Dagster and pivot are
not walked (`code_source.is_user_file`). Comments, formatting, docstrings and
the asset's own decorators do not count; any change to the logic does.

The walk runs once, when `cached` decorates the function (at import), so every
process that imports the code (the multiprocess executor's steps too) derives
the same version. A name the module binds only further down (a helper defined
below the asset) is not bound yet then: it is read from the module's source,
its defining statement hashed and walked. See docs/fingerprint.md (## Code).
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import importlib.util
import inspect
import sys
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pivot_dagster import code_source as cs
from pivot_dagster.code_values import Opaque, qualified_type, stable_text
from pivot_store.hashing import hash_bytes, hash_json

PREFIX = "src-"
_MISSING = object()
# Where a module lives, not what it does: reading them must not tie the version to
# a checkout's path (two deployments of the same code would never share results).
_MODULE_DUNDERS = frozenset(
    {"__file__", "__name__", "__spec__", "__loader__", "__package__", "__path__"}
    | {"__cached__", "__builtins__", "__doc__"}
)
_DESCRIPTORS = (
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    types.ClassMethodDescriptorType,
)
_CLASS_DUNDERS = frozenset({"__dict__", "__weakref__", "__doc__", "__module__", "__qualname__"})


@dataclass(frozen=True)
class DerivedCode:
    """The derived version, the per-object hashes it covers, and what it could not see."""

    version: str | None
    code: dict[str, str] = field(default_factory=dict)  # qualified name -> xxh64
    opaque: tuple[str, ...] = ()  # values with no stable text (type + building statement)
    reason: str | None = None  # why there is no version


def derive(fn: Any, code_deps: Iterable[Any] = ()) -> DerivedCode:
    """Walk what `fn` reaches; `code_deps` are more roots (modules, functions, classes).

    No version (reason given) when the function's source cannot be read, or a
    name it reads is imported only after the asset is defined.
    """
    try:
        fn = inspect.unwrap(fn)
    except ValueError:  # a wrapper loop
        return DerivedCode(None, reason=f"{fn!r} unwraps to itself")
    if not isinstance(fn, types.FunctionType):
        return DerivedCode(None, reason=f"{fn!r} is not a Python function")
    walk = _Walk(fn.__module__)
    try:
        walk.seen.add(("fn", id(fn)))
        if not walk.walk_function(fn, root=True):
            return DerivedCode(None, reason=f"no source for {fn.__qualname__}")
        for dep in code_deps:
            walk.dependency(dep)
        walk.drain()
    except RecursionError:
        return DerivedCode(None, reason="the code it reaches is nested too deep to walk")
    except Exception as e:  # user objects can raise anywhere (__getattr__, __eq__): a miss
        return DerivedCode(None, reason=f"the code walk failed: {type(e).__name__}: {e}")
    if walk.failed is not None:
        return DerivedCode(None, reason=walk.failed)
    code = {k: hash_bytes("\0".join(sorted(v)).encode()) for k, v in sorted(walk.code.items())}
    return DerivedCode(PREFIX + hash_json(code), code, tuple(sorted(set(walk.opaque))))


def source_code_version(fn: Any) -> str | None:
    """`src-<xxh64>` over what the function reaches, or None when it cannot be derived."""
    return derive(fn).version


class _Walk:
    """One walk: `code` collects the texts hashed under each qualified name."""

    def __init__(self, root_module: str) -> None:
        self.root_module = root_module
        self.code: dict[str, list[str]] = {}
        self.seen: set[Any] = set()
        self.opaque: list[str] = []
        self.failed: str | None = None
        # Objects still to walk: a worklist, not recursion, so a long call chain in the
        # user's code cannot exhaust the stack.
        self.pending: list[Callable[[], Any]] = []

    def drain(self) -> None:
        while self.pending:
            self.pending.pop()()

    def key(self, module: str | None, qualname: str) -> str:
        """Names in the asset's own module are left bare, so the version does not depend
        on the name the module was imported under (`__main__`, a test loader)."""
        return qualname if module == self.root_module else f"{module}.{qualname}"

    def _first(self, marker: Any) -> bool:
        if marker in self.seen:
            return False
        self.seen.add(marker)
        return True

    # --- objects -----------------------------------------------------------------
    def function(self, fn: types.FunctionType) -> str:
        """The key of a user function, walked later (once)."""
        if self._first(("fn", id(fn))):
            self.pending.append(lambda: self.walk_function(fn))
        return self.key(fn.__module__, fn.__qualname__)

    def walk_function(self, fn: types.FunctionType, root: bool = False) -> str:
        """Hash a user function (the asset itself always); '' when it has no source."""
        code = fn.__code__
        key = self.key(fn.__module__, fn.__qualname__)
        src = cs.module_source(code.co_filename)
        nodes = cs.function_nodes(fn)
        texts = self.code.setdefault(key, [])
        refs: set[tuple[str, ...]] = set()
        if nodes and src is not None:
            for node in nodes:
                h, r = src.node_info(node, strip_decorators=root)
                texts.append("ast:" + h)
                refs |= r
        elif root:
            return ""
        else:
            texts.append("bytecode:" + _code_hash(code))
            refs |= {(n,) for n in _code_names(code)}
        if fn.__defaults__:
            texts.append("defaults:" + self.value(fn.__defaults__, key + ".<defaults>"))
        if fn.__kwdefaults__:
            texts.append("kwdefaults:" + self.value(fn.__kwdefaults__, key + ".<defaults>"))
        for name, cell in zip(code.co_freevars, fn.__closure__ or (), strict=True):
            try:
                value = cell.cell_contents
            except ValueError:
                texts.append(f"closure:{name}=<empty>")
                continue
            texts.append(f"closure:{name}=" + self.value(value, f"{key}.{name}"))
        # The function's own arguments and locals are never globals inside it (Python's
        # scoping); closure cells were hashed above.
        local = {*code.co_freevars, *code.co_varnames, *code.co_cellvars}
        for chain in sorted(refs):
            if chain[0] not in local:
                self.resolve(chain, fn.__globals__, src)
        return key

    def klass(self, cls: type) -> str:
        """The key of a user class, walked later (once)."""
        if self._first(("cls", id(cls))):
            self.pending.append(lambda: self.walk_class(cls))
        return self.key(cls.__module__, cls.__qualname__)

    def walk_class(self, cls: type) -> None:
        key = self.key(cls.__module__, cls.__qualname__)
        src, nodes = cs.class_nodes(cls)
        texts = self.code.setdefault(key, [])
        mod = sys.modules.get(cls.__module__)
        if src is None or not nodes or mod is None:
            texts.append("nosource")  # what it defines counts instead
            for name, member in sorted(vars(cls).items(), key=lambda kv: kv[0]):
                if name not in _CLASS_DUNDERS:
                    inner = getattr(member, "__func__", member)  # static/class methods
                    texts.append(f"{name}=" + self.value(inner, f"{key}.{name}"))
            return
        for node in nodes:
            h, refs = src.node_info(node)
            texts.append("ast:" + h)
            for chain in sorted(refs):
                self.resolve(chain, vars(mod), src)

    def module(self, mod: types.ModuleType) -> str:
        """A user module used as a whole (not through `mod.name`): its whole source counts."""
        key = mod.__name__
        if self._first(("mod", key)):
            src = cs.module_source(getattr(mod, "__file__", "") or "")
            self.code.setdefault(key, []).append(
                "module:" + (src.whole_hash() if src else "nosource")
            )
        return key

    def visit(self, obj: Any, where: str) -> str | None:
        """A marker for a code object (walked when it is the user's), None for a value."""
        if isinstance(obj, types.ModuleType):
            return "mod:" + (self.module(obj) if cs.is_user_module(obj) else obj.__name__)
        if isinstance(obj, types.FunctionType):
            if _user_code(obj.__module__, obj.__code__.co_filename):
                return "fn:" + self.function(obj)
            return f"ext:{obj.__module__}.{obj.__qualname__}"
        if isinstance(obj, type):
            if _user_class(obj):
                return "cls:" + self.klass(obj)
            return f"ext:{obj.__module__}.{obj.__qualname__}"
        if isinstance(obj, types.MethodType):
            return f"method:{self.visit(obj.__func__, where)}@{self.value(obj.__self__, where)}"
        if isinstance(obj, functools.partial):
            return (
                f"partial:{self.visit(obj.func, where)}:"
                f"{self.value((obj.args, obj.keywords), where)}"
            )
        if callable(obj) and hasattr(obj, "__wrapped__"):  # functools.cache, wraps
            try:
                inner = inspect.unwrap(obj)
            except ValueError:  # an object that claims every attribute: a value
                return None
            return f"wrapped:{qualified_type(obj)}:{self.visit(inner, where)}"
        if isinstance(obj, types.BuiltinFunctionType):
            return f"ext:{getattr(obj, '__module__', None)}.{obj.__qualname__}"
        if isinstance(obj, _DESCRIPTORS):  # str.upper, dict.get
            return f"ext:{obj.__objclass__.__module__}.{obj.__qualname__}"
        return None

    def leaf(self, obj: Any, where: str) -> str | None:
        """`visit` for a value inside a constant; an instance's own class is walked too."""
        marker = self.visit(obj, where)
        if marker is None and _user_class(type(obj)):
            self.klass(type(obj))
        return marker

    def value(self, value: Any, where: str) -> str:
        """The text of a value: a code marker, its stable text, or its type (opaque)."""
        marker = self.visit(value, where)
        if marker is not None:
            return marker
        try:
            text = stable_text(value, user_class=_user_class, code=lambda v: self.leaf(v, where))
        except Opaque:
            self.opaque.append(where)
            text = "opaque:" + qualified_type(value)
        if _user_class(type(value)):  # a dataclass instance: its methods count too
            self.klass(type(value))
        return text

    # --- names -------------------------------------------------------------------
    def resolve(self, chain: tuple[str, ...], globs: Mapping[str, Any], src: Any) -> None:
        """Follow a name chain read in a module whose globals are `globs`."""
        name, holder = chain[0], globs.get("__name__")
        if name in _MODULE_DUNDERS:
            return
        obj = globs.get(name, _MISSING)
        if obj is _MISSING:
            if src is None or name not in src.bindings:
                return  # a builtin, or a local of the function
            obj = self.binding(name, globs, src)
            if obj is _MISSING:
                return
        for attr in chain[1:]:
            if not isinstance(obj, types.ModuleType):
                break
            if not cs.is_user_module(obj):
                return  # np.mean, json.dumps: not walked
            nxt = getattr(obj, attr, _MISSING)
            if nxt is _MISSING:  # not bound (yet): the module's whole source counts
                self.module(obj)
                return
            holder, name, obj = obj.__name__, attr, nxt
        key = self.key(holder, name)
        if self.visit(obj, key) is None and self._first(("const", key)):
            text = self.value(obj, key)
            self.code.setdefault(key, []).append("value:" + text)
            if text.startswith("opaque:"):
                self.built_by(holder, name, key)

    def built_by(self, holder: str | None, name: str, key: str) -> None:
        """An object with no stable value (`LOOKUP = pd.DataFrame({...})`): the module
        statements that bind it count, and what they call is walked, so editing how it
        is built is a miss even though its state cannot be hashed."""
        mod = sys.modules.get(holder or "")
        src = cs.module_source(getattr(mod, "__file__", None) or "") if mod else None
        if src is None:
            return
        globs = vars(mod)
        for stmt in src.bindings.get(name, []):
            h, refs = src.node_info(stmt)
            self.code[key].append("built:" + h)
            later = [c for c in sorted(refs) if c[0] != name]
            self.pending.append(lambda later=later: [self.resolve(c, globs, src) for c in later])

    def binding(self, name: str, globs: Mapping[str, Any], src: Any) -> Any:
        """A name the module binds below the point being imported: its source counts.

        Returns the imported object for an import statement (`_MISSING` otherwise).
        """
        key = self.key(globs.get("__name__"), name)
        if not self._first(("src", key)):
            return _MISSING
        found: Any = _MISSING
        for stmt in src.bindings[name]:
            h, refs = src.node_info(stmt)
            self.code.setdefault(key, []).append("src:" + h)
            if isinstance(stmt, ast.Import | ast.ImportFrom):
                found = _imported(stmt, name, globs)
                if found is _MISSING:
                    self.failed = (
                        f"`{name}` is imported below the asset in {globs.get('__name__')}; "
                        "import it above the asset so pivot can follow it"
                    )
                continue
            later = [c for c in sorted(refs) if c[0] != name]
            self.pending.append(lambda later=later: [self.resolve(c, globs, src) for c in later])
        return found

    def dependency(self, dep: Any) -> None:
        """A `code_deps` entry: the user's code is walked, a package counts by version."""
        if isinstance(dep, types.ModuleType) and not cs.is_user_module(dep):
            top = dep.__name__.partition(".")[0]
            version = getattr(dep, "__version__", None) or _dist_version(top)
            if version is None:
                self.failed = f"code_deps: no version found for package {dep.__name__}"
            self.code.setdefault(f"package:{dep.__name__}", []).append(f"version:{version}")
            return
        marker = self.visit(dep, "code_deps")
        if marker is None or marker.startswith("ext:"):
            mod = sys.modules.get(getattr(dep, "__module__", "") or "")
            if mod is None:
                self.failed = f"code_deps: {dep!r} is not a module, function or class"
                return
            self.dependency(mod)


def _user_code(module: str | None, filename: str | None) -> bool:
    return cs.is_user_module_name(module) and cs.is_user_file(filename)


def _user_class(cls: type) -> bool:
    mod = sys.modules.get(cls.__module__)
    return mod is not None and cs.is_user_module(mod)


def _imported(stmt: Any, name: str, globs: Mapping[str, Any]) -> Any:
    """What an import statement binds to `name`, from modules already imported."""
    for alias in stmt.names:
        if (alias.asname or alias.name.partition(".")[0]) != name:
            continue
        if isinstance(stmt, ast.Import):
            target = alias.name if alias.asname else alias.name.partition(".")[0]
            return sys.modules.get(target, _MISSING)
        base = stmt.module or ""
        if stmt.level:
            try:
                pkg = globs.get("__package__") or ""
                base = importlib.util.resolve_name("." * stmt.level + base, pkg)
            except (ImportError, ValueError):
                return _MISSING
        mod = sys.modules.get(base)
        obj = getattr(mod, alias.name, _MISSING) if mod is not None else _MISSING
        return obj if obj is not _MISSING else sys.modules.get(f"{base}.{alias.name}", _MISSING)
    return _MISSING


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _code_hash(code: types.CodeType) -> str:
    """Bytecode, for a function without source (same Python version only)."""
    parts = [code.co_code.hex(), repr(code.co_names), repr(code.co_varnames)]
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            parts.append(_code_hash(const))
        else:
            try:
                parts.append(stable_text(const))
            except Opaque:
                parts.append(qualified_type(const))
    return hash_bytes("\0".join(parts).encode())


def _code_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names
