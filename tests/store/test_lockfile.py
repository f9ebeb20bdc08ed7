"""Lock files: deterministic YAML, atomic replace, and a LockError naming the file for
anything malformed, truncated, newer, or with a fingerprint that does not match."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pivot_store import lockfile
from pivot_store.errors import LockError
from pivot_store.lockfile import FingerprintParts, Lock, OutputRecord, read_lock, write_lock

H1, H2 = "0123456789abcdef", "fedcba9876543210"


def _lock(params: dict | None = None, deps: dict | None = None) -> Lock:
    parts = FingerprintParts(
        code_version="v1", params=params or {"b": 2, "a": 1.5}, deps=deps or {"up": H2}
    )
    outs = [
        OutputRecord(name="result", path="data/out.csv", hash=H1, size=10, format="csv"),
        OutputRecord(name="extra", hash=H2 + ".dir", size=0, kind="dir"),
    ]
    return Lock.build("group/asset", parts, outs)


def test_same_lock_same_bytes_sorted_keys(tmp_path: Path) -> None:
    a = _lock(params={"b": 2, "a": 1.5, "z": [1, "x"]}, deps={"y": H1, "x": H2})
    b = _lock(params={"z": [1, "x"], "a": 1.5, "b": 2}, deps={"x": H2, "y": H1})
    assert a.to_yaml() == b.to_yaml()
    assert a.fingerprint == b.fingerprint
    top = [line.split(":")[0] for line in a.to_yaml().decode().splitlines() if line[0].isalpha()]
    assert top == sorted(top) == ["fingerprint", "name", "outputs", "parts", "schema_version"]
    p1, p2 = tmp_path / "a.lock", tmp_path / "b.lock"
    write_lock(p1, a)
    write_lock(p2, b)
    assert p1.read_bytes() == p2.read_bytes()
    assert read_lock(p1) == a


@settings(max_examples=30, deadline=None)
@given(
    st.dictionaries(
        st.text(max_size=8),
        st.one_of(
            st.integers(),
            st.text(max_size=8),
            st.booleans(),
            st.none(),
            st.floats(allow_nan=False, allow_infinity=False),
        ),
        max_size=5,
    )
)
def test_round_trip_through_yaml(params: dict) -> None:
    lock = _lock(params=params or {"k": 1})
    again = lockfile.parse_lock(yaml.safe_load(lock.to_yaml()), "x.lock")
    assert again == lock and again.to_yaml() == lock.to_yaml()


def test_write_is_an_atomic_replace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "stages" / "a.lock"
    old = _lock()
    write_lock(path, old)
    ino = path.stat().st_ino
    new = _lock(params={"a": 2})
    write_lock(path, new)
    assert path.stat().st_ino != ino  # replaced, not rewritten in place
    assert read_lock(path) == new

    # A crash at the rename leaves the old lock whole and no temp behind.
    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_lock(path, old)
    monkeypatch.undo()
    assert read_lock(path) == new
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.lock"]


@pytest.mark.parametrize(
    "text, needle",
    [
        (b"outputs: [\n", "not valid YAML"),
        (b"a: b\n\xc3\x28 bad utf-8", "not valid YAML"),
        (b"", "not a lock"),
        (b"- just\n- a list\n", "not a lock"),
        (b"name: x\n", "no schema_version"),
    ],
)
def test_malformed_yaml_names_the_file(tmp_path: Path, text: bytes, needle: str) -> None:
    path = tmp_path / "bad.lock"
    path.write_bytes(text)
    with pytest.raises(LockError, match=needle) as e:
        read_lock(path)
    assert str(path) in str(e.value) and e.value.fix


def test_every_truncation_is_refused(tmp_path: Path) -> None:
    # "never silently treated as valid": a lock cut anywhere must not parse.
    data = _lock().to_yaml()
    path = tmp_path / "t.lock"
    for cut in range(len(data.rstrip())):
        path.write_bytes(data[:cut])
        with pytest.raises(LockError, match=re.escape(str(path))):
            read_lock(path)


def _data() -> dict:
    return _lock().to_data()


def _mutate(fn):
    d = _data()
    fn(d)
    return d


@pytest.mark.parametrize(
    "data, needle",
    [
        (_mutate(lambda d: d["outputs"][0].update(hash="zz")), "not an object id"),
        (_mutate(lambda d: d["outputs"][0].update(hash="../../etc/passwd")), "not an object id"),
        (_mutate(lambda d: d["outputs"][0].update(path="../../x")), "'..'"),
        (_mutate(lambda d: d["outputs"][0].update(path="/etc/passwd")), "absolute"),
        (_mutate(lambda d: d["outputs"][0].update(size=-1)), "size"),
        (_mutate(lambda d: d["outputs"][0].update(kind="socket")), "kind"),
        (_mutate(lambda d: d.update(surprise=1)), "surprise"),
        (_mutate(lambda d: d.pop("outputs")), "outputs"),
        (_mutate(lambda d: d.update(name="../../x")), "'..'"),
        (_mutate(lambda d: d.update(schema_version="1")), "schema_version"),
        (_mutate(lambda d: d.update(schema_version=0)), "schema_version"),
        (_mutate(lambda d: d.update(fingerprint="0000000000000000")), "fingerprint does not match"),
        (_mutate(lambda d: d["parts"].update(code_version="v2")), "fingerprint does not match"),
    ],
)
def test_invalid_fields_raise_lock_error(tmp_path: Path, data: dict, needle: str) -> None:
    path = tmp_path / "x.lock"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(LockError, match=needle) as e:
        read_lock(path)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("version", [2, 99, "2"])
def test_newer_schema_is_refused(tmp_path: Path, version) -> None:
    path = tmp_path / "new.lock"
    path.write_text(yaml.safe_dump({**_data(), "schema_version": version}))
    with pytest.raises(LockError, match="schema_version") as e:
        read_lock(path)
    assert str(path) in str(e.value)


def test_missing_and_unreadable_locks(tmp_path: Path) -> None:
    with pytest.raises(LockError, match="does not exist"):
        read_lock(tmp_path / "nope.lock")
    (tmp_path / "dir.lock").mkdir()
    with pytest.raises(LockError, match=r"dir\.lock"):
        read_lock(tmp_path / "dir.lock")


def test_fingerprint_covers_name_and_every_part() -> None:
    base = FingerprintParts(code_version="1", params={"a": 1}, deps={"u": H1}, partition="p")
    fps = {
        base.digest("x"),
        base.digest("y"),
        base.model_copy(update={"code_version": "2"}).digest("x"),
        base.model_copy(update={"params": {"a": 2}}).digest("x"),
        base.model_copy(update={"deps": {"u": H2}}).digest("x"),
        base.model_copy(update={"partition": "q"}).digest("x"),
    }
    assert len(fps) == 6


def test_output_lookup() -> None:
    lock = _lock()
    assert lock.output("extra").kind == "dir"
    with pytest.raises(LockError, match="no output 'nope'"):
        lock.output("nope")
