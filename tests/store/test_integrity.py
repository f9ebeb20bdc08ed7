"""verify: a corrupted object is named (exit 1); --repair deletes it so it can be fetched
again (contract line 1: an object's name is the hash of its bytes)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pivot_store.integrity import verify
from pivot_store.repo import Repo
from tests.store.conftest import pivot_subprocess


def _corrupt(path: Path) -> None:
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        b = f.read(1)
        f.seek(0)
        f.write(bytes([b[0] ^ 0xFF]))
    os.chmod(path, 0o444)


def test_verify_names_a_corrupt_object_and_repair_deletes_it(project: Path, cli) -> None:
    cli("init")
    repo = Repo(project)
    good = repo.objects.add_bytes(b"good object").oid
    bad = repo.objects.add_bytes(b"soon to be corrupt").oid
    assert cli("verify")[0] == 0
    _corrupt(repo.objects.path(bad))
    code, out, _ = cli("verify")
    assert code == 1 and f"corrupt: {bad}" in out and good not in out
    code, out, _ = cli("verify", "--json")
    assert code == 1 and json.loads(out)["corrupt"] == [bad]
    assert repo.objects.exists(bad)  # reporting changes nothing
    code, out, _ = cli("verify", "--repair", "--json")
    assert code == 1 and json.loads(out)["repaired"] == [bad]
    assert not repo.objects.exists(bad) and repo.objects.exists(good)
    assert cli("verify")[0] == 0
    # The object can come back: adding the right bytes again publishes it.
    assert repo.objects.add_bytes(b"soon to be corrupt").new


def test_verify_exit_code_in_a_real_process(project: Path) -> None:
    assert pivot_subprocess("init", cwd=project).returncode == 0
    repo = Repo(project)
    oid = repo.objects.add_bytes(b"x" * 1000).oid
    _corrupt(repo.objects.path(oid))
    r = pivot_subprocess("verify", cwd=project)
    assert r.returncode == 1 and oid in r.stdout and "Traceback" not in r.stderr


def test_a_truncated_object_and_a_bad_manifest_are_corrupt(repo: Repo) -> None:
    big = repo.objects.add_bytes(os.urandom(3 << 20)).oid
    p = repo.objects.path(big)
    os.chmod(p, 0o644)
    os.truncate(p, 1 << 20)
    # A `.dir` object whose bytes hash right but do not parse as a manifest.
    junk = repo.objects.add_bytes(b"not json", suffix=".dir").oid
    ok = repo.objects.add_bytes(b"fine").oid
    res = verify(repo.objects)
    assert res.checked == 3 and sorted(res.corrupt) == sorted([big, junk])
    assert ok not in res.corrupt


def test_temp_files_are_not_objects(repo: Repo) -> None:
    repo.objects.add_bytes(b"a")
    shard = next(repo.objects.root.iterdir())
    (shard / ".tmp-123-abc").write_bytes(b"partial")
    repo.objects.tmp_dir.mkdir(parents=True, exist_ok=True)
    (repo.objects.tmp_dir / ".tmp-1-x").write_bytes(b"partial")
    res = verify(repo.objects)
    assert res.checked == 1 and res.corrupt == []
