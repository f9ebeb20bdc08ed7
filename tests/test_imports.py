"""Import rules (issue 11 items 5 and 6): pivot_store never imports dagster, no cycles.

Both rules are checked on the source (`ast`, every import statement wherever it
is: module level, inside functions, under TYPE_CHECKING) and the first also by
importing every pivot_store module in a fresh interpreter. The graph code is
scripts/import_graph.py, which prints the same cycles for a human.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def _import_graph() -> ModuleType:
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts/import_graph.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("import_graph", mod)
    spec.loader.exec_module(mod)
    return mod


graph = _import_graph()
FRAMEWORK = ("dagster", "pivot_dagster")


def _is_framework(name: str) -> bool:
    top = name.split(".")[0]
    return top in FRAMEWORK or top.startswith("dagster_")


_IMPORT_ALL = """
import json, pkgutil, sys
import pivot_store

names = ["pivot_store"]
def fail(name):
    raise SystemExit(f"cannot import {name}")
for info in pkgutil.walk_packages(pivot_store.__path__, "pivot_store.", onerror=fail):
    __import__(info.name)
    names.append(info.name)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("dagster", "pivot_dagster"))
print(json.dumps({"imported": names, "framework": loaded}))
"""


def test_importing_every_pivot_store_module_loads_no_dagster() -> None:
    r = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    expected = {m for m in graph.modules() if m.split(".")[0] == "pivot_store"}
    assert set(out["imported"]) == expected  # the walk really imported every module
    assert out["framework"] == [], f"importing pivot_store loaded {out['framework']}"


def test_pivot_store_source_never_imports_dagster() -> None:
    """Stronger than importing: a function-level import (run only by one command) counts."""
    found = [
        f"{path.relative_to(ROOT)}:{line}: imports {target}"
        for mod, path in graph.modules().items()
        if mod.split(".")[0] == "pivot_store"
        for target, line in graph.imports(mod, path)
        if _is_framework(target)
    ]
    assert found == [], "pivot_store must not import dagster:\n" + "\n".join(found)


def test_no_import_cycles() -> None:
    found = graph.cycles(graph.build())
    assert found == [], graph.format_cycles(found)


# --- the graph code itself: it sees the imports the rules are about ---------------
def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_the_graph_sees_hidden_and_resolved_imports(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": '_EXPORTS = {"Thing": "pkg.thing"}\n',
            "pkg/a.py": "def f():\n    from pkg import b\n",  # function level, a submodule
            "pkg/b.py": "import typing\nif typing.TYPE_CHECKING:\n    from . import a\n",
            "pkg/thing.py": "import json\nfrom pkg.sub.deep import x\n",
            "pkg/sub/__init__.py": "",
            "pkg/sub/deep.py": "from pkg import Thing\n",  # lazy export: an edge to pkg.thing
            "pkg/leaf.py": "from pkg.a import f\nimport pkg.sub\n",
        },
    )
    g = graph.build(tmp_path, ["pkg"])
    assert g["pkg.a"] == {"pkg.b"}
    assert g["pkg.b"] == {"pkg.a"}
    assert g["pkg.thing"] == {"pkg.sub.deep"}
    assert g["pkg.sub.deep"] == {"pkg", "pkg.thing"}
    assert g["pkg.leaf"] == {"pkg.a", "pkg.sub"}
    found = graph.cycles(g)
    assert found == [
        ["pkg.a", "pkg.b", "pkg.a"],
        ["pkg.sub.deep", "pkg.thing", "pkg.sub.deep"],
    ]
    assert "pkg.a -> pkg.b -> pkg.a" in graph.format_cycles(found)
    assert graph.format_cycles([]) == "no cycles"


def test_the_graph_finds_a_long_cycle_once(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "p/__init__.py": "",
            "p/x.py": "import p.y\n",
            "p/y.py": "import p.z\n",
            "p/z.py": "def later():\n    import p.x\n",
        },
    )
    assert graph.cycles(graph.build(tmp_path, ["p"])) == [["p.x", "p.y", "p.z", "p.x"]]


def test_the_script_prints_the_cycles() -> None:
    r = subprocess.run(
        [sys.executable, "scripts/import_graph.py"], cwd=ROOT, capture_output=True, text=True
    )
    found = graph.cycles(graph.build())
    assert r.stdout.strip() == graph.format_cycles(found)
    assert r.returncode == (1 if found else 0)
