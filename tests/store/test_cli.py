"""The `pivot` CLI: commands, exit codes, one-line errors, git hygiene and a fast --help."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.store.conftest import ROOT, assert_one_error_line, pivot_subprocess


def test_help_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys\n"
        "from pivot_store.cli.app import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = {'lmdb', 'fsspec', 's3fs', 'dagster', 'pandas', 'pyarrow', 'numpy', 'pydantic'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "Usage" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_module_entry_point_has_its_commands(project: Path) -> None:
    # `python -m pivot_store.cli.app` must see the same commands as the console script.
    r = pivot_subprocess("init", cwd=project)
    assert r.returncode == 0, r.stderr
    assert (project / ".pivot" / "config.yaml").exists()
    r = pivot_subprocess("no-such-command", cwd=project)
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_usage_errors_exit_2(project: Path, cli) -> None:
    cli("init")
    code, _, err = cli("checkout", "--checkout-mode", "teleport")
    assert code == 2 and "teleport" in err and "Traceback" not in err
    code, _, err = cli("frobnicate")
    assert code == 2 and "unexpected" not in err


def test_not_a_project(project: Path, cli) -> None:
    code, _, err = cli("status")
    assert_one_error_line(code, err, ".pivot", "pivot init")


def test_init_writes_gitignore_so_git_never_stages_cache(project: Path, cli) -> None:
    from tests.fixtures.parts import require

    require(shutil.which("git") is not None, "git", "not on PATH (make test apt-installs it)")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q"], cwd=project, check=True)
    assert cli("init")[0] == 0
    (project / "data").mkdir()
    (project / "data" / "a.csv").write_text("x,y\n1,2\n")
    (project / "big.bin").write_bytes(b"\x00" * 100_000)
    assert cli("add", "data", "big.bin")[0] == 0
    subprocess.run([*git, "add", "-A"], cwd=project, check=True)
    staged = subprocess.run(
        [*git, "diff", "--cached", "--name-only"], cwd=project, capture_output=True, text=True
    ).stdout.split()
    assert ".pivot/config.yaml" in staged and ".gitignore" in staged
    assert ".pivot/stages/data.lock" in staged and ".pivot/stages/big.bin.lock" in staged
    bad = [p for p in staged if p.startswith(("data/", "big.bin", ".pivot/cache", ".pivot/state"))]
    assert bad == [], bad
    assert not any(".tmp-" in p or "gc.lock" in p for p in staged)
    gi = (project / ".gitignore").read_text().splitlines()
    assert gi.count("/data") == 1 and gi.count("/big.bin") == 1
    cli("add", "data")  # adding again does not duplicate the line
    assert (project / ".gitignore").read_text().splitlines().count("/data") == 1


def test_add_status_checkout_verify_gc_round_trip(project: Path, cli) -> None:
    cli("init")
    (project / "d").mkdir()
    (project / "d" / "f.txt").write_text("hello")
    (project / "x.bin").write_bytes(b"abc")
    code, out, err = cli("add", "d", "x.bin")
    assert code == 0, err
    code, out, _ = cli("status", "--json")
    assert code == 0
    rows = {r["name"]: r["status"] for r in json.loads(out)["locks"]}
    assert rows == {"d": "ok", "x.bin": "ok"}
    (project / "x.bin").unlink()
    code, out, _ = cli("status", "--json")
    assert code == 1 and json.loads(out)["locks"][1]["status"] == "missing from workspace"
    code, out, _ = cli("checkout", "x.bin", "--checkout-mode", "copy")
    assert code == 0 and (project / "x.bin").read_bytes() == b"abc"
    assert cli("status")[0] == 0
    code, out, _ = cli("verify", "--json")
    assert code == 0 and json.loads(out)["corrupt"] == []
    code, out, _ = cli("gc", "--grace", "0", "--json")
    assert code == 0 and json.loads(out)["removed"] == []


def test_remote_commands_round_trip(project: Path, cli) -> None:
    cli("init")
    cfg_path = project / ".pivot" / "config.yaml"
    assert cli("remote", "add", "origin", "s3://bucket/prefix", "--default")[0] == 0
    assert cli("remote", "add", "backup", "file:///tmp/backup")[0] == 0
    assert cli("remote", "modify", "origin", "endpoint_url", "http://127.0.0.1:9000")[0] == 0
    assert cli("remote", "modify", "origin", "jobs", "8")[0] == 0
    assert cli("remote", "modify", "origin", "region", "{weird")[0] == 0  # stays text
    data = yaml.safe_load(cfg_path.read_text())
    assert data["default_remote"] == "origin"
    assert data["remotes"]["origin"] == {
        "url": "s3://bucket/prefix",
        "endpoint_url": "http://127.0.0.1:9000",
        "jobs": 8,
        "region": "{weird",
    }
    _, out, _ = cli("remote", "list")
    lines = out.splitlines()
    assert lines[0].startswith("  backup") and lines[1].startswith("* origin")
    assert "endpoint_url=http://127.0.0.1:9000" in lines[1]
    assert cli("remote", "default", "backup")[0] == 0
    assert yaml.safe_load(cfg_path.read_text())["default_remote"] == "backup"
    assert cli("remote", "remove", "backup")[0] == 0
    data = yaml.safe_load(cfg_path.read_text())
    assert list(data["remotes"]) == ["origin"] and "default_remote" not in data


@pytest.mark.parametrize(
    "args, needles",
    [
        (["remote", "remove", "nope"], ["'nope'", "pivot remote add nope"]),
        (["remote", "default", "nope"], ["'nope'", "pivot remote add nope"]),
        (["remote", "modify", "nope", "jobs", "2"], ["'nope'"]),
        (["remote", "add", "x", "not a url"], ["not a URL"]),
        (["remote", "modify", "origin", "jobs", "0"], ["jobs"]),
    ],
)
def test_remote_errors_are_one_line(project: Path, cli, args: list[str], needles) -> None:
    cli("init")
    cli("remote", "add", "origin", "s3://b")
    before = (project / ".pivot" / "config.yaml").read_bytes()
    code, _, err = cli(*args)
    assert_one_error_line(code, err, *needles)
    assert (project / ".pivot" / "config.yaml").read_bytes() == before  # nothing half-written


def test_remote_add_twice_is_refused(project: Path, cli) -> None:
    cli("init")
    cli("remote", "add", "origin", "s3://b")
    code, _, err = cli("remote", "add", "origin", "s3://c")
    assert_one_error_line(code, err, "already exists", "pivot remote modify")


@pytest.mark.parametrize(
    "text, needle",
    [
        ("remotes: {a: s3://x\n", "not valid YAML"),
        ("default_remote: nope\n", "default_remote 'nope'"),
        ("remotes: [1, 2]\n", "remotes"),
    ],
)
def test_malformed_config_is_one_line_in_a_real_process(project: Path, text: str, needle: str):
    assert pivot_subprocess("init", cwd=project).returncode == 0
    (project / ".pivot" / "config.yaml").write_text(text)
    r = pivot_subprocess("remote", "list", cwd=project)
    assert_one_error_line(r.returncode, r.stderr, "config.yaml", needle)


def test_verbose_shows_the_traceback(project: Path) -> None:
    r = pivot_subprocess("--verbose", "status", cwd=project)
    assert r.returncode != 0 and "Traceback" in r.stderr and "NotAProject" in r.stderr


def test_output_to_a_pipe_is_plain_and_skips_rich(project: Path) -> None:
    """Off a terminal: one-line messages are plain prints and tables are drawn without
    rich (whose import costs more than a no-op status), in rich's own box shape."""
    (project / "data").mkdir()
    (project / "data" / "a.csv").write_text("a,b\n")
    code = (
        "import sys\n"
        "from pivot_store.cli.app import main\n"
        "for args in (['init', '.'], ['add', 'data'], ['status'], ['checkout']):\n"
        "    main(args)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'rich'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[-1] == "[]"
    assert lines[0].startswith("Initialized pivot project in ")
    assert lines[1].startswith("added data (dir, 4 B) -> ") and lines[1].endswith(".dir")
    assert lines[2:9] == [
        "status",
        "┏━━━━━━┳━━━━━━┳━━━━━━━━┓",
        "┃ lock ┃ path ┃ status ┃",
        "┡━━━━━━╇━━━━━━╇━━━━━━━━┩",
        "│ data │ data │ ok     │",
        "└──────┴──────┴────────┘",
        "checked out 1 output(s)",
    ]


def test_plain_table_matches_rich_on_a_terminal(monkeypatch, capsys) -> None:
    """Same rows either way; rich only when stdout is a terminal."""
    from pivot_store.cli import output

    rows = [["data", "data", "ok"], ["a/b.csv", "-", "missing from cache"]]
    output.table("status", ["lock", "path", "status"], rows)
    plain = capsys.readouterr().out
    monkeypatch.setattr(output, "_isatty", lambda: True)
    output.table("status", ["lock", "path", "status"], rows)
    rich = capsys.readouterr().out
    assert [line.rstrip() for line in plain.splitlines()] == [
        line.rstrip() for line in rich.splitlines()
    ]
    output.console().print("a [bold]b[/bold]")  # no markup: printed as written
    assert capsys.readouterr().out == "a [bold]b[/bold]\n"


def test_fast_commands_leave_anything_unusual_to_typer(project: Path, cli) -> None:
    """`add`/`status`/`checkout` with plain arguments skip typer; a missing argument,
    an unknown option or a bad mode still gets typer's usage error (exit 2)."""
    cli("init")
    (project / "f.txt").write_text("x")
    assert cli("add", "f.txt")[0] == 0
    assert cli("-v", "status", "f.txt")[0] == 0
    for args in (
        ("add",),
        ("add", "--frobnicate", "f.txt"),
        ("status", "--frobnicate"),
        ("checkout", "--checkout-mode"),
        ("checkout", "--checkout-mode=teleport"),
    ):
        code, _, err = cli(*args)
        assert code == 2 and "Traceback" not in err, (args, err)
    code, out, _ = cli("checkout", "f.txt", "--checkout-mode=copy")
    assert code == 0 and out == "checked out 1 output(s)\n"
    assert os.stat(project / "f.txt").st_nlink == 1  # a copy, not a link to the cache


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at module level or inside functions."""
    import ast

    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def test_command_modules_never_import_the_app() -> None:
    """`app.build()` calls each module's `register(app)`; no module imports app back."""
    for path in (ROOT / "pivot_store" / "cli").glob("*.py"):
        if path.name != "app.py":
            assert "pivot_store.cli.app" not in _imports(path), path.name


def test_fast_table_matches_the_typer_commands() -> None:
    """Each fast-path option is an option of the typer command of that name, with the
    same values allowed: the two readers of `options` cannot drift apart."""
    import typer.main

    from pivot_store.cli import app

    group = typer.main.get_command(app.build())
    for name, (_, _, options) in app.FAST.items():
        params = {p.name: p for p in group.commands[name].params}
        for opt in options:
            found = [p for p in params.values() if set(opt.flags) <= set(p.opts)]
            assert len(found) == 1, (name, opt.flags)
            assert found[0].is_flag == opt.is_flag and found[0].default == opt.default


def _with_plugins(project: Path, entry_points: str, body: str) -> subprocess.CompletedProcess:
    code = (
        "import sys\n"
        "from pivot_store.cli import app, plugins\n"
        f"plugins.discover = lambda: [plugins.Plugin(n, v, 'fake') for n, v in {entry_points}]\n"
        f"{body}\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=60
    )


def test_a_broken_plugin_is_one_warning_and_breaks_nothing_else(project: Path) -> None:
    r = _with_plugins(
        project,
        "[('broken', 'no_such_module_for_pivot:register')]",
        "print(app.main(['init', '.']), app.main(['broken']), app.main(['gc', '--json']))",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "0 2 0"  # unknown command: typer's usage error
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: pivot plugin 'broken' (no_such_module_for_pivot:register) not loaded: "
        "ModuleNotFoundError: No module named 'no_such_module_for_pivot'"
    ]
    assert "Traceback" not in r.stderr


def test_plugins_are_listed_without_being_imported_and_cannot_shadow(project: Path) -> None:
    r = _with_plugins(
        project,
        "[('later', 'no_such_module_for_pivot:register'), ('status', 'os:getcwd')]",
        "app.main(['--help'])\nprint(sorted(m for m in sys.modules if 'no_such' in m))",
    )
    assert r.returncode == 0, r.stderr
    assert "later" in r.stdout and "From fake" in r.stdout
    assert r.stdout.splitlines()[-1] == "[]"
    assert r.stderr.strip() == (
        "warning: pivot plugin 'status' (os:getcwd) not loaded: a built-in command has that name"
    )


def test_plugin_discovery_matches_importlib_metadata() -> None:
    from importlib.metadata import entry_points

    from pivot_store.cli import plugins

    expected = sorted((ep.name, ep.value) for ep in entry_points(group=plugins.GROUP))
    assert sorted((p.name, p.value) for p in plugins.discover()) == expected
    assert ("run", "pivot_dagster.cli:register") in expected


def test_no_pivot_store_module_imports_dagster() -> None:
    """Every pivot_store module, imported in a fresh interpreter, leaves dagster out:
    `pivot run` lives in pivot_dagster and reaches the CLI as a plugin."""
    code = (
        "import importlib, pkgutil, sys\n"
        "import pivot_store\n"
        "for m in pkgutil.walk_packages(pivot_store.__path__, 'pivot_store.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dagster', 'pivot_dagster')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
    for path in (ROOT / "pivot_store").rglob("*.py"):  # not even inside a function
        heavy = {m for m in _imports(path) if m.split(".")[0] in ("dagster", "pivot_dagster")}
        assert not heavy, (path, heavy)
