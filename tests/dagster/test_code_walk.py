"""The derived code version covers the user's code the asset reaches, transitively.

A user edits a helper between two runs of a fresh interpreter; the asset must
re-run. Closure values and argument defaults count; the stdlib and
site-packages are not walked; Dagster is handed the same version pivot uses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from dagster import asset, materialize

from pivot_dagster import PivotIOManager, cached, pivot_asset
from pivot_dagster.code_version import derive
from tests.dagster.helpers import hits, load_stored

DATA = '''
"""mylib.data: the user's helpers."""
import json

THRESH = {thresh}

def fit(x):
    return ({fit_body}) + THRESH + len(json.dumps([x]))

class Model:
    def predict(self, x):
        return x * {factor}
'''

DEFS = """
from pathlib import Path
from dagster import asset
from pivot_dagster import cached
from mylib import data
from mylib.data import Model

@asset
@cached
def model() -> int:
    with open(Path(__file__).parent / "calls.txt", "a") as f:
        f.write("model\\n")
    return data.fit(10) + Model().predict(1)
"""

RUN = """
import json, sys
from dagster import DagsterInstance, materialize
from pivot_dagster import PivotIOManager
from mylib.defs import model

instance = DagsterInstance.get()
r = materialize([model], resources={"io_manager": PivotIOManager(project_dir=sys.argv[1])},
                instance=instance)
m = instance.get_latest_materialization_event(model.key).asset_materialization
print(json.dumps({"hit": m.metadata["pivot/cache_hit"].value}))
"""


def _write_lib(root: Path, *, fit_body: str = "x * 2", thresh: int = 1, factor: int = 5) -> None:
    lib = root / "mylib"
    lib.mkdir(exist_ok=True)
    (lib / "__init__.py").write_text("")
    (lib / "data.py").write_text(DATA.format(fit_body=fit_body, thresh=thresh, factor=factor))
    (lib / "defs.py").write_text(DEFS)
    (root / "run.py").write_text(RUN)


def _run(root: Path, project: Path, home: Path) -> tuple[bool, int, int]:
    """One fresh interpreter, as a user re-running: (hit, stored value, body runs so far)."""
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(root)}
    out = subprocess.run(
        [sys.executable, str(root / "run.py"), str(project)],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    hit = json.loads(out.stdout.strip().splitlines()[-1])["hit"]
    calls = root / "mylib" / "calls.txt"
    runs = calls.read_text().count("model") if calls.exists() else 0
    return hit, load_stored(project, "model"), runs


def test_helper_constant_and_method_edits_rerun_in_a_fresh_process(
    tmp_path: Path, project: Path
) -> None:
    root, home = tmp_path / "user", tmp_path / "home"
    root.mkdir()
    home.mkdir()
    _write_lib(root)
    # fit(10) = 20 + 1 + len("[10]") = 25; Model().predict(1) = 5
    assert _run(root, project, home) == (False, 30, 1)
    assert _run(root, project, home) == (True, 30, 1)  # nothing changed: a hit
    _write_lib(root, fit_body="x  *   2")  # formatting only
    assert _run(root, project, home) == (True, 30, 1)
    before = _code(project)
    assert set(before) == {"model", "mylib.data.fit", "mylib.data.THRESH", "mylib.data.Model"}
    _write_lib(root, fit_body="x * 3")  # the helper the body calls through `data.fit`
    assert _run(root, project, home) == (False, 40, 2)
    assert _changed(before, before := _code(project)) == {"mylib.data.fit"}
    _write_lib(root, fit_body="x * 3", thresh=2)  # a module constant the helper reads
    assert _run(root, project, home) == (False, 41, 3)
    assert _changed(before, before := _code(project)) == {"mylib.data.THRESH"}
    _write_lib(root, fit_body="x * 3", thresh=2, factor=6)  # a method of a class it calls
    assert _run(root, project, home) == (False, 42, 4)
    assert _changed(before, _code(project)) == {"mylib.data.Model"}
    assert _run(root, project, home) == (True, 42, 4)


def _code(project: Path) -> dict[str, str]:
    """The lock's code map: which function, class or constant each hash covers."""
    from pivot_store.repo import Repo

    return Repo.open(project).read_lock("model").parts.code


def _changed(a: dict[str, str], b: dict[str, str]) -> set[str]:
    return {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}


# --- in one process ---------------------------------------------------------------
def bump(name: str) -> None:
    """Count body runs in a file: a module list the body read would itself be hashed
    (by its value when the asset is defined)."""
    with open("calls.txt", "a") as f:  # the project fixture's folder is the cwd
        f.write(name + "\n")


def calls() -> list[str]:
    return Path("calls.txt").read_text().split() if Path("calls.txt").exists() else []


def make_scaled(factor: int):
    """An asset factory: the closure value `factor` decides the result."""

    @asset(name="scaled")
    @cached
    def scaled() -> int:
        bump("scaled")
        return 10 * factor

    return scaled


def make_shown(factor: int):
    @pivot_asset(name="shown")
    def shown() -> int:
        return 10 * factor

    return shown


def test_closure_value_changes_the_fingerprint(project: Path, dagster_instance) -> None:
    io = {"io_manager": PivotIOManager(project_dir=str(project))}
    results = []
    for factor in (2, 3, 2, 3):
        r = materialize([make_scaled(factor)], resources=io, instance=dagster_instance)
        results.append((hits(dagster_instance, r.run_id)["scaled"], load_stored(project, "scaled")))
    assert results == [(False, 20), (False, 30), (True, 20), (True, 30)]
    assert calls() == ["scaled", "scaled"]
    two, three = (make_scaled(f).op.compute_fn.decorated_fn for f in (2, 3))
    assert two.__pivot_code_version__ != three.__pivot_code_version__
    assert two.__pivot_code__.keys() == {"make_scaled.<locals>.scaled", "bump"}
    assert two.__pivot_code__["bump"] == three.__pivot_code__["bump"]


def test_pivot_asset_hands_dagster_the_walked_version() -> None:
    a, b, a2 = make_shown(2), make_shown(3), make_shown(2)
    va, vb, va2 = (d.code_versions_by_key[d.key] for d in (a, b, a2))
    assert va != vb and va == va2 and va.startswith("src-")
    assert va == a.op.compute_fn.decorated_fn.__pivot_code_version__


HELPER_MOD = """
from pivot_dagster import pivot_asset

@pivot_asset
def uses_helper() -> int:
    return helper(2)

def helper(x):  # defined below the asset: read from the module's source
    return x * {k}
"""


def _load_module(path: Path, text: str, name: str):
    import importlib.util

    path.write_text(textwrap.dedent(text))
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_helper_edit_changes_dagster_code_version(tmp_path: Path) -> None:
    v = []
    for n, k in enumerate((2, 3, 2)):
        mod = _load_module(tmp_path / f"h{n}.py", HELPER_MOD.format(k=k), f"pivot_cw_helper_{n}")
        v.append(mod.uses_helper.code_versions_by_key[mod.uses_helper.key])
        assert "helper" in mod.uses_helper.op.compute_fn.decorated_fn.__pivot_code__
    assert v[0] != v[1] and v[0] == v[2]


def make_with_default(n: int):
    def with_default(k: int = n) -> int:
        return k

    return with_default


def make_calls_default(n: int):
    def helper(k: int = n) -> int:
        return k * 100

    @asset(name="defaulted")
    @cached
    def defaulted() -> int:
        bump("defaulted")
        return helper()

    return defaulted


def test_argument_defaults_count(project: Path, dagster_instance) -> None:
    one, two, one_again = (derive(make_with_default(n)) for n in (1, 2, 1))
    assert one.version != two.version and one.version == one_again.version
    io = {"io_manager": PivotIOManager(project_dir=str(project))}
    seen = []
    for n in (1, 2, 2):
        r = materialize([make_calls_default(n)], resources=io, instance=dagster_instance)
        seen.append(
            (hits(dagster_instance, r.run_id)["defaulted"], load_stored(project, "defaulted"))
        )
    assert seen == [(False, 100), (False, 200), (True, 200)]
    assert calls() == ["defaulted", "defaulted"]


LIB_MOD = """
import json
import pandas as pd
from dagster import AssetKey

LIMIT = 3

def ping(n):
    return pong(n - 1) if n > 0 else 0

def pong(n):
    return ping(n) + LIMIT

def body():
    frame = pd.DataFrame({"x": [ping(4)]})
    return json.dumps(frame["x"].tolist()) + AssetKey("a").to_user_string()
"""


def test_libraries_are_not_walked_and_recursion_terminates(tmp_path: Path) -> None:
    mod = _load_module(tmp_path / "lib_mod.py", LIB_MOD, "pivot_cw_lib")
    walk = derive(mod.body)
    assert walk.reason is None and walk.version.startswith("src-")
    assert set(walk.code) == {"body", "ping", "pong", "LIMIT"}
    assert walk.opaque == ()


def test_explicit_code_version_has_no_code_map(project: Path, dagster_instance) -> None:
    """An explicit version is the user's promise: nothing walked goes into the lock."""
    from pivot_store.repo import Repo

    @asset
    @cached(code_version="v1")
    def given() -> int:
        return make_with_default(1)()

    @asset(code_version="7")
    @cached
    def on_asset() -> int:
        return make_with_default(2)()

    @pivot_asset
    def walked() -> int:
        return make_with_default(3)()

    io = {"io_manager": PivotIOManager(project_dir=str(project))}
    assert materialize([given, on_asset, walked], resources=io, instance=dagster_instance).success
    repo = Repo.open(project)
    parts = {n: repo.read_lock(n).parts for n in ("given", "on_asset", "walked")}
    assert (parts["given"].code_version, parts["given"].code) == ("v1", {})
    assert (parts["on_asset"].code_version, parts["on_asset"].code) == ("7", {})
    key = "test_explicit_code_version_has_no_code_map.<locals>.walked"
    assert parts["walked"].code.keys() == {key, "make_with_default"}
    assert parts["walked"].code_version == walked.code_versions_by_key[walked.key]


OPAQUE = """
import pandas as pd

def build(n):
    return pd.DataFrame({{"a": [n, {b}]}})

LOOKUP = build({a})
THING = object()

def f():
    return THING, open, LIMIT, LOOKUP

LIMIT = 3
"""


def test_opaque_values_are_named_and_count_by_how_they_are_built(tmp_path: Path) -> None:
    """An object with no stable text counts by its type and its building statement."""
    walks = []
    for n, (a, b) in enumerate([(1, 2), (1, 2), (5, 2), (1, 9)]):
        text = OPAQUE.format(a=a, b=b)
        walks.append(derive(_load_module(tmp_path / f"o{n}.py", text, f"pivot_cw_o{n}").f))
    first = walks[0]
    assert first.version is not None and first.opaque == ("LOOKUP", "THING")
    assert set(first.code) == {"f", "THING", "LIMIT", "LOOKUP", "build"}  # not `open`
    v = [w.version for w in walks]
    assert v[0] == v[1] and len({v[0], v[2], v[3]}) == 3  # the call, then the helper, edited


def test_multiprocess_steps_derive_the_parents_version(
    project: Path, dagster_instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster import execute_job, reconstructable

    from pivot_store.repo import Repo
    from tests.dagster import code_walk_defs as defs

    monkeypatch.setenv("PIVOT_TEST_PROJECT", str(project))
    root = str(Path(__file__).resolve().parents[2])  # step processes import tests.dagster...
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [root, os.getenv("PYTHONPATH")])))
    monkeypatch.chdir(root)
    job = reconstructable(defs.job)
    for n in range(2):
        with execute_job(job, instance=dagster_instance) as result:
            assert result.success
            assert hits(dagster_instance, result.run_id) == {"base": n == 1, "top": n == 1}
    assert defs.counts() == {"base": 1, "top": 1}
    assert load_stored(project, "top") == (2 + 7) * 3 + 7
    repo = Repo.open(project)
    base_code = {"base", "helper", "OFFSET", "bump", "project"}
    top_code = {"top", "bump", "project", "Scaler", "OFFSET"}
    for asset_def, expect in ((defs.base, base_code), (defs.top, top_code)):
        fn = asset_def.op.compute_fn.decorated_fn
        parts = repo.read_lock(asset_def.key.to_user_string()).parts
        assert parts.code_version == fn.__pivot_code_version__  # the steps' == the parent's
        assert parts.code == fn.__pivot_code__ and set(parts.code) == expect
        event = dagster_instance.get_latest_materialization_event(asset_def.key)
        if asset_def is defs.base:  # pivot_asset: Dagster records the very same version
            tags = event.asset_materialization.tags or {}
            assert tags.get("dagster/code_version") == fn.__pivot_code_version__


RENAMED = """
def make():
    def inner():
        return helper()
    inner.__qualname__ = "renamed"
    return inner

def helper():
    return {k}
"""


def test_code_deps_and_renamed_functions(tmp_path: Path) -> None:
    import pandas

    @cached(code_deps=[pandas, make_with_default(4)])
    def with_deps() -> int:
        return 1

    code = with_deps.__pivot_code__
    assert code["package:pandas"] and "make_with_default.<locals>.with_default" in code
    assert with_deps.__pivot_code_version__.startswith("src-")
    # a factory that renames its function is still found (by position) and walked
    versions = []
    for k in (1, 2):
        mod = _load_module(tmp_path / f"ren{k}.py", RENAMED.format(k=k), f"pivot_cw_ren{k}")
        walk = derive(mod.make())
        assert set(walk.code) == {"renamed", "helper"}
        versions.append(walk.version)
    assert versions[0] != versions[1]


LATE_IMPORT = """
def f():
    return late_mod.VALUE

import pivot_cw_not_imported_anywhere as late_mod
"""


def test_import_below_the_asset_is_no_version(tmp_path: Path) -> None:
    path = tmp_path / "late.py"
    path.write_text(LATE_IMPORT)
    import importlib.util

    spec = importlib.util.spec_from_file_location("pivot_cw_late", path)
    mod = importlib.util.module_from_spec(spec)
    code = compile(path.read_text().split("import pivot_cw")[0], str(path), "exec")
    exec(code, mod.__dict__)  # the module as it is when `f` is decorated: import not run yet
    walk = derive(mod.f)
    assert walk.version is None and "imported below the asset" in walk.reason


TABLE = """
def step_a(x):
    return x + {k}

STEPS = {{"a": step_a, "order": [step_a]}}

def body():
    return STEPS["a"](1)
"""


def test_functions_inside_constants_are_walked(tmp_path: Path) -> None:
    """A dispatch table is plain data holding code: the functions in it count."""
    walks = []
    for k in (1, 2, 1):
        mod = _load_module(tmp_path / f"t{k}.py", TABLE.format(k=k), f"pivot_cw_t{len(walks)}")
        walks.append(derive(mod.body))
    assert set(walks[0].code) == {"body", "STEPS", "step_a"} and walks[0].opaque == ()
    assert walks[0].version != walks[1].version and walks[0].version == walks[2].version
    assert walks[0].code["STEPS"] == walks[1].code["STEPS"]  # the table itself did not change


def test_a_long_call_chain_is_walked_without_recursion(tmp_path: Path) -> None:
    n = 3000  # far past Python's recursion limit, had the walk recursed per call
    text = "".join(f"def f{i}(x):\n    return f{i + 1}(x) + 1\n" for i in range(n))
    mod = _load_module(tmp_path / "chain.py", text + f"def f{n}(x):\n    return x\n", "pivot_cw_c")
    walk = derive(mod.f0)
    assert walk.reason is None and len(walk.code) == n + 1
