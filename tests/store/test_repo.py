"""Repo: round trips of random files and trees through add -> checkout (every mode),
tracking, status, and hostile names and folders (contract lines 4 and 6)."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pivot_store import keys
from pivot_store.errors import ManifestError, PivotError, TrackError, UnsafeName
from pivot_store.hashing import hash_file
from pivot_store.lockfile import FingerprintParts, Lock, OutputRecord
from pivot_store.objects import ObjectStore
from pivot_store.repo import Repo
from tests.store.conftest import assert_one_error_line

MODES = ["hardlink", "symlink", "copy", "reflink"]

names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\"),
    min_size=1,
    max_size=8,
).filter(lambda s: s not in (".", ".."))
contents = st.one_of(st.just(b""), st.binary(max_size=300), st.sampled_from([b"same", b"same"]))
files = st.dictionaries(
    st.lists(names, min_size=1, max_size=3).map(tuple),
    st.tuples(contents, st.booleans()),
    max_size=8,
)
empty_dirs = st.lists(st.lists(names, min_size=1, max_size=2).map(tuple), max_size=3)


def _conflicts(paths: list[tuple[str, ...]]) -> bool:
    """A path that is also another's folder, or names that collide on disk."""
    keysets = {p for p in paths}
    for p in paths:
        for i in range(1, len(p)):
            if p[:i] in keysets:
                return True
    return len({"/".join(p) for p in paths}) != len(paths)


def _snapshot(root: Path) -> dict[str, object]:
    """Everything a checkout must reproduce: bytes, exec bit, empty folders."""
    snap: dict[str, object] = {}
    for folder, dirs, fnames in os.walk(root):
        rel = os.path.relpath(folder, root)
        if not dirs and not fnames and rel != ".":
            snap[rel] = "<empty dir>"
        for f in fnames:
            p = Path(folder) / f
            snap[os.path.relpath(p, root)] = (p.read_bytes(), bool(p.stat().st_mode & 0o100))
    return snap


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(files, empty_dirs)
def test_random_trees_round_trip_in_every_mode(files, empty_dirs) -> None:
    paths = list(files)
    dirs = [d for d in empty_dirs if not _conflicts([*paths, d]) and d not in paths]
    if _conflicts(paths) or _conflicts(paths + dirs):
        dirs = []
        if _conflicts(paths):
            return
    base = Path(tempfile.mkdtemp())
    try:
        repo = Repo.init(base / "proj")
        src = repo.root / "src"
        src.mkdir()
        for parts, (data, exe) in files.items():
            p = src.joinpath(*parts)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
            p.chmod(0o755 if exe else 0o644)
        for d in dirs:
            src.joinpath(*d).mkdir(parents=True, exist_ok=True)
        before = _snapshot(src)
        rec = repo.add_path(src)
        assert rec.kind == "dir" and rec.hash.endswith(".dir")
        for mode in MODES:
            dest = repo.root / f"out-{mode}"
            repo.checkout_output(rec, dest, mode)
            assert _snapshot(dest) == before, mode
            repo.checkout_output(rec, dest, mode)  # again, over itself
            assert _snapshot(dest) == before, mode
        # Adding the same content again gives the same id (names are hashed in order).
        assert repo.add_path(repo.root / "out-copy").hash == rec.hash
    finally:
        shutil.rmtree(base)


@settings(max_examples=25, deadline=None)
@given(st.binary(max_size=2000), st.booleans(), st.sampled_from(MODES), st.booleans())
def test_random_files_round_trip(data: bytes, exe: bool, mode: str, move: bool) -> None:
    base = Path(tempfile.mkdtemp())
    try:
        repo = Repo.init(base)
        f = base / "f.bin"
        f.write_bytes(data)
        f.chmod(0o755 if exe else 0o644)
        rec = repo.add_path(f, move=move)
        assert rec.kind == "file" and rec.size == len(data)
        dest = repo.checkout_output(rec, base / "out" / "f.bin", mode)
        assert dest.read_bytes() == data
        assert hash_file(repo.objects.path(rec.hash)) == rec.hash
    finally:
        shutil.rmtree(base)


def test_track_file_and_folder(repo: Repo) -> None:
    (repo.root / "data").mkdir()
    (repo.root / "data" / "a.csv").write_text("a")
    (repo.root / "data" / "sub").mkdir()
    (repo.root / "data" / "sub" / "b.csv").write_text("b")
    (repo.root / "model.bin").write_bytes(os.urandom(200_000))
    lock = repo.track(repo.root / "data")
    assert lock.name == "data" and lock.outputs[0].path == "data"
    assert repo.read_lock("data") == lock
    lock2 = repo.track(Path("model.bin"))  # relative to the cwd
    assert (repo.stages_dir / "model.bin.lock").exists()
    assert repo.lock_names() == ["data", "model.bin"]
    obj = repo.objects.path(lock2.outputs[0].hash)
    assert (repo.root / "model.bin").stat().st_ino == obj.stat().st_ino  # moved, not copied
    assert [r.status for r in repo.status()] == ["ok", "ok"]


def test_status_reports_each_state(repo: Repo) -> None:
    for n in "abcd":
        (repo.root / n).write_bytes(n.encode() * 100_000)
    for n in "abcd":
        repo.track(repo.root / n)
    (repo.root / "a").unlink()
    b = repo.root / "b"
    b.unlink()
    b.write_bytes(b"changed")
    c_hash = repo.read_lock("c").outputs[0].hash
    (repo.root / "c").unlink()
    repo.objects.remove(c_hash)
    rows = {r.name: r.status for r in repo.status()}
    assert rows == {
        "a": "missing from workspace",
        "b": "modified",
        "c": "missing from cache",
        "d": "ok",
    }
    repo.checkout(["a"])
    assert repo.status(["a"])[0].status == "ok"


def test_status_sees_in_place_edits_of_a_hardlinked_file(repo: Repo) -> None:
    # Root ignores 0444: an edit through the link changes the object too, and status must
    # still call it modified (the cache object is then corrupt, which verify reports).
    f = repo.root / "f.bin"
    f.write_bytes(b"x" * 100_000)
    repo.track(f)
    from tests.fixtures.parts import require

    require(os.geteuid() == 0, "root", "a non-root user cannot write the read-only hardlink")
    with open(f, "r+b") as fh:
        fh.write(b"y")
    assert repo.status()[0].status == "modified"


def test_copy_mode_project_keeps_workspace_writable(repo: Repo) -> None:
    repo.save_config(repo.config.model_copy(update={"checkout_mode": "copy"}))
    f = repo.root / "f.txt"
    f.write_text("v1")
    repo.track(f)
    obj = repo.objects.path(repo.read_lock("f.txt").outputs[0].hash)
    assert f.stat().st_ino != obj.stat().st_ino
    f.write_text("v2")  # the user edits the copy: the cache is untouched
    assert obj.read_text() == "v1"
    assert repo.status()[0].status == "modified"


# --- hostile input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["..", "../x", "/etc/passwd", "a\x00b", "a\\b", "x" * 300, "a/./b", "a//b"]
)
def test_hostile_lock_names(repo: Repo, name: str) -> None:
    with pytest.raises(UnsafeName):
        repo.lock_path(name)


def test_hostile_paths_on_the_cli(project: Path, cli, tmp_path: Path) -> None:
    cli("init")
    outside = tmp_path / "outside.txt"
    outside.write_text("x")
    (project / "data").mkdir()
    (project / "data" / "ok.txt").write_text("ok")
    (project / "data" / "leak").symlink_to(outside)
    (project / "link").symlink_to(tmp_path)
    (project / "a\\b").write_text("x")
    cases = [
        (["add", str(outside)], "outside the project"),
        (["add", "../outside.txt"], "outside the project"),
        (["add", "link/outside.txt"], "project"),
        (["add", "data"], "outside the tracked folder"),
        (["add", "a\\b"], "backslash"),
        (["add", "missing.txt"], "does not exist"),
        (["checkout", "../../etc/passwd"], "'..'"),
        (["checkout", "/etc/passwd"], "absolute"),
        (["status", "nope"], "no lock named 'nope'"),
        (["add", "."], "'.'"),
        (["add", ".pivot/config.yaml"], ".pivot"),
    ]
    for args, needle in cases:
        code, _, err = cli(*args)
        assert_one_error_line(code, err, needle)
    assert (
        not (project / ".pivot" / "stages").exists()
        or list((project / ".pivot" / "stages").rglob("*.lock")) == []
    )
    assert outside.read_text() == "x" and stat.S_IMODE(outside.stat().st_mode) != 0o444


def test_hostile_lock_and_manifest_contents(project: Path, cli) -> None:
    cli("init")
    repo = Repo(project)
    evil = repo.objects.add_bytes(
        b'{"entries":[{"path":"../../x","hash":"0123456789abcdef","size":1,"exec":false}],'
        b'"version":1}',
        suffix=".dir",
    )
    lock = Lock.build(
        "evil", FingerprintParts(), [OutputRecord(hash=evil.oid, size=1, kind="dir", path="evil")]
    )
    repo.write_lock(lock)
    code, _, err = cli("checkout", "evil")
    assert_one_error_line(code, err, evil.oid, "malformed")
    with pytest.raises(ManifestError):
        repo.manifest(evil.oid)
    assert not (project.parent.parent / "x").exists()
    lock_path = repo.lock_path("evil")
    lock_path.write_text(lock_path.read_text().replace("path: evil", "path: /etc/evil"))
    code, _, err = cli("checkout")
    assert_one_error_line(code, err, "evil.lock", "absolute")


def test_lock_output_path_through_a_symlinked_folder_is_refused(repo: Repo, tmp_path) -> None:
    (repo.root / "out").symlink_to(tmp_path)
    oid = repo.objects.add_bytes(b"x").oid
    rec = OutputRecord(name="r", path="out/x", hash=oid, size=1)
    with pytest.raises(UnsafeName, match="outside"):
        repo.checkout_output(rec)
    assert not (tmp_path / "x").exists()


def test_pivot_errors_have_a_fix() -> None:
    for exc in (UnsafeName("x", "y"), TrackError("x", "y")):
        assert isinstance(exc, PivotError) and str(exc) == "x; y"


def test_open_finds_or_creates(tmp_path: Path) -> None:
    r = Repo.open(tmp_path / "p")
    assert (tmp_path / "p" / ".pivot" / ".gitignore").exists()
    assert Repo.find(tmp_path / "p").root == r.root
    with pytest.raises(PivotError, match="pivot init"):
        Repo.open(tmp_path / "q", create=False)
    assert isinstance(r.objects, ObjectStore)
    assert keys.LOCK_SUFFIX == ".lock"


def _count_checkouts(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = Repo.checkout_output

    def counting(self, out, *a, **kw):
        calls.append(out.name)
        return real(self, out, *a, **kw)

    monkeypatch.setattr(Repo, "checkout_output", counting)
    return calls


def test_hardlink_add_that_linked_every_file_skips_the_checkout(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _count_checkouts(repo, monkeypatch)
    data = repo.root / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.bin").write_bytes(os.urandom(5000))
    (data / "sub" / "b.bin").write_bytes(os.urandom(100_000))
    (data / "empty").write_bytes(b"")
    (data / "void").mkdir()
    (repo.root / "one.bin").write_bytes(os.urandom(70_000))
    repo.track(data)
    repo.track(repo.root / "one.bin")
    assert calls == []  # the files already are the cache objects
    for lock in repo.iter_locks():
        out = lock.outputs[0]
        if out.kind == "file":
            assert (repo.root / out.path).stat().st_ino == repo.objects.path(out.hash).stat().st_ino
            continue
        for e in repo.manifest(out.hash).files():
            if e.size:
                assert (data / e.path).stat().st_ino == repo.objects.path(e.hash).stat().st_ino
    assert [r.status for r in repo.status()] == ["ok", "ok"]
    repo.track(data)  # again: already linked, still no checkout
    assert calls == []


def test_hardlink_add_of_a_file_that_could_not_be_linked_still_checks_out(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two files with the same bytes: the second is not the object (that is the first),
    so the checkout runs and links it too."""
    calls = _count_checkouts(repo, monkeypatch)
    data = repo.root / "data"
    data.mkdir()
    same = os.urandom(4096)
    (data / "x").write_bytes(same)
    (data / "y").write_bytes(same)
    lock = repo.track(data)
    assert calls == ["data"]
    oid = repo.manifest(lock.outputs[0].hash).entries[0].hash
    ino = repo.objects.path(oid).stat().st_ino
    assert (data / "x").stat().st_ino == ino == (data / "y").stat().st_ino
    assert [r.status for r in repo.status()] == ["ok"]


def test_symlink_mode_add_still_checks_out(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    repo.save_config(repo.config.model_copy(update={"checkout_mode": "symlink"}))
    calls = _count_checkouts(repo, monkeypatch)
    data = repo.root / "data"
    data.mkdir()
    (data / "a").write_bytes(os.urandom(3000))
    repo.track(data)
    assert calls == ["data"] and (data / "a").is_symlink()
    assert [r.status for r in repo.status()] == ["ok"]


# --- status/checkout read locks without pydantic -----------------------------
def test_status_and_checkout_cli_do_not_import_pydantic_typer_or_rich(repo: Repo) -> None:
    import subprocess
    import sys

    (repo.root / "data").mkdir()
    (repo.root / "data" / "a").write_bytes(b"abc")
    repo.track(repo.root / "data")
    code = (
        "import sys\n"
        "from pivot_store.cli.app import main\n"
        "codes = [main(['status']), main(['status', '--json', 'data']),\n"
        "         main(['checkout', 'data', '--checkout-mode', 'hardlink'])]\n"
        "heavy = ('pydantic', 'typer', 'rich')\n"
        "print(codes, sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=repo.root, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "[0, 0, 0] []"
