"""keys: names -> lock paths and remote keys; every escape is refused (contract line 6)."""

from __future__ import annotations

import posixpath
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pivot_store import keys
from pivot_store.errors import PivotError, UnsafeName

texts = st.text(min_size=1, max_size=60)


@settings(max_examples=50, deadline=None)
@given(texts)
def test_encode_segment_round_trips_and_is_safe(text: str) -> None:
    try:
        seg = keys.encode_segment(text)
    except UnsafeName:  # only when the encoded segment would be too long
        assert len(quote(text, safe="-_.~")) > keys.MAX_SEGMENT_BYTES - 2
        return
    assert keys.decode_segment(seg) == text
    assert "/" not in seg and "\\" not in seg and "\x00" not in seg
    assert seg not in (".", "..")
    assert not seg.startswith(".")
    assert keys.validate_name(seg) == seg


@settings(max_examples=50, deadline=None)
@given(st.lists(texts, min_size=1, max_size=5))
def test_name_from_parts_round_trips(parts: list[str]) -> None:
    try:
        name = keys.name_from_parts(parts)
    except UnsafeName:  # only when an encoded segment or the whole name is too long
        segs = [quote(p, safe="-_.~") for p in parts]  # (+2 bytes if a leading dot is escaped)
        too_long_seg = max(len(s) for s in segs) > keys.MAX_SEGMENT_BYTES - 2
        assert too_long_seg or sum(len(s) + 1 for s in segs) > keys.MAX_NAME_BYTES - 2 * len(segs)
        return
    assert keys.parts_from_name(name) == parts
    assert name.count("/") == len(parts) - 1


@settings(max_examples=50, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab./\\\x00:é"), max_size=12))
def test_validate_name_never_lets_a_name_escape(name: str) -> None:
    try:
        keys.validate_name(name)
    except UnsafeName:
        return
    norm = posixpath.normpath(name)
    assert norm.split("/")[0] != ".." and not posixpath.isabs(name)
    assert "\x00" not in name and "\\" not in name
    assert all(part not in ("", ".", "..") for part in name.split("/"))


@pytest.mark.parametrize(
    "bad",
    [
        "",
        ".",
        "..",
        "../x",
        "a/../../x",
        "a/./b",
        "a//b",
        "a/",
        "/etc/passwd",
        "\\\\server\\share",
        "C:/x",
        "a\\..\\b",
        "a\x00b",
        "x" * 300,
        "/".join(["abc"] * 400),
    ],
)
def test_hostile_names_are_refused(bad: str) -> None:
    with pytest.raises(UnsafeName) as e:
        keys.validate_name(bad)
    assert isinstance(e.value, PivotError) and e.value.fix


def test_encode_segment_refuses_empty_and_overlong() -> None:
    with pytest.raises(UnsafeName):
        keys.encode_segment("")
    with pytest.raises(UnsafeName, match="255"):
        keys.encode_segment("é" * 200)


def test_lock_path_stays_inside_stages(tmp_path: Path) -> None:
    stages = tmp_path / "stages"
    stages.mkdir()
    p = keys.lock_path(stages, "a/b")
    assert p == stages / "a" / "b.lock"
    assert keys.name_from_lock_path(stages, p) == "a/b"
    outside = tmp_path / "outside"
    outside.mkdir()
    (stages / "evil").symlink_to(outside)
    with pytest.raises(UnsafeName, match="outside"):
        keys.lock_path(stages, "evil/x")


def test_workspace_path_refuses_symlinked_escape(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)
    assert keys.workspace_path(root, "data/x.csv") == root / "data" / "x.csv"
    for bad in ("link/x", "../x", "/tmp/x"):
        with pytest.raises(UnsafeName):
            keys.workspace_path(root, bad)


def test_run_prefix_validates_both_parts() -> None:
    assert keys.run_prefix("a/b", "0123456789abcdef") == "runs/a/b/0123456789abcdef"
    with pytest.raises(PivotError):
        keys.run_prefix("a/b", "../../x")
    with pytest.raises(UnsafeName):
        keys.run_prefix("../a", "0123456789abcdef")


def test_undecodable_names_are_unsafe_names_not_crashes() -> None:
    # A file name that is not UTF-8 arrives as lone surrogates; it must be a clear error.
    with pytest.raises(UnsafeName, match="UTF-8"):
        keys.encode_segment("\udcff")
    with pytest.raises(UnsafeName, match="UTF-8"):
        keys.validate_name("data/\udcffx.csv")


def test_drive_letters_are_refused_but_colons_are_names() -> None:
    """Only a Windows drive prefix is absolute; `0:` and `a:b.csv` are POSIX names."""
    from pivot_store.errors import UnsafeName
    from pivot_store.keys import validate_name

    for ok in ("0:", "a:b.csv", "x/C:/y"):
        assert validate_name(ok) == ok
    for bad in ("C:", "C:/x", "z:/"):
        with pytest.raises(UnsafeName, match="absolute"):
            validate_name(bad)


def test_run_dir_is_run_prefix_under_the_local_runs_folder(tmp_path: Path) -> None:
    runs = tmp_path / ".pivot" / "runs"
    fp = "0123456789abcdef"
    assert keys.run_dir(runs, "a/@2024", fp) == runs / "a" / "@2024" / fp
    with pytest.raises(PivotError):
        keys.run_dir(runs, "a", "../../x")
    with pytest.raises(UnsafeName):
        keys.run_dir(runs, "../a", fp)


def test_run_dir_refuses_a_symlink_out_of_the_runs_folder(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (runs / "a").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UnsafeName, match="resolves outside"):
        keys.run_dir(runs, "a", "0123456789abcdef")


def test_latest_prefix_validates_the_name() -> None:
    assert keys.latest_prefix("days/@a") == "latest/days/@a"
    with pytest.raises(UnsafeName):
        keys.latest_prefix("../x")


def test_pointer_name_round_trips_and_sorts_by_time() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    t = datetime(2026, 11, 23, 19, 30, 0, 123456, tzinfo=UTC)
    name = keys.pointer_name(t, "0123456789abcdef")
    assert name == "20261123T193000.123456Z-0123456789abcdef.json"  # the format on the remote
    assert keys.parse_pointer_name(name) == "0123456789abcdef"
    # Any timezone is written as UTC, so names from two machines still sort by time.
    later = (t + timedelta(microseconds=1)).astimezone(timezone(timedelta(hours=-5)))
    assert sorted([keys.pointer_name(later, "f" * 16), name]) == [
        name,
        keys.pointer_name(later, "f" * 16),
    ]
    with pytest.raises(PivotError):
        keys.pointer_name(t, "../x")


@pytest.mark.parametrize(
    "bad",
    [
        "20261123T193000.123456Z-0123456789abcdef.json.tmp",
        "20261123T193000Z-0123456789abcdef.json",
        "20261123T193000.123456Z-0123456789ABCDEF.json",
        "20261123T193000.123456Z-0123456789abcde.json",
        "../20261123T193000.123456Z-0123456789abcdef.json",
        "notes.txt",
    ],
)
def test_parse_pointer_name_ignores_anything_else(bad: str) -> None:
    assert keys.parse_pointer_name(bad) is None


@pytest.mark.parametrize(
    "bad",
    [".git", ".git/hooks/pre-commit", "a/.git/config", ".GIT/x", ".pivot", ".pivot/config.yaml",
     "data/.pivot/cache", "../x", "/etc/x"],
)  # fmt: skip
def test_remote_checkout_names_never_enter_git_or_the_store(bad: str) -> None:
    """Issue 12 item 2: remote data is never checked out into .git or .pivot."""
    with pytest.raises(UnsafeName):
        keys.remote_checkout_name(bad)


@pytest.mark.parametrize("ok", ["reports", "data/.gitignore", ".github/x", "a/.pivotal", "x.git"])
def test_remote_checkout_names_allow_look_alikes(ok: str) -> None:
    assert keys.remote_checkout_name(ok) == ok
