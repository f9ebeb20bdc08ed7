"""The project's .gitignore: tracked workspace paths are listed so git never commits data.

`pivot add` of 1,000 files appends 1,000 lines; reading the whole file again
for each one made adds quadratic. The lines already there are read once per
file state (inode, size, mtime_ns, ctime_ns) and kept for the process.
"""

from __future__ import annotations

import os
from pathlib import Path

# .gitignore path -> (its (inode, size, mtime_ns, ctime_ns) when read, its lines)
_SEEN: dict[str, tuple[tuple[int, int, int, int], set[str]]] = {}


def _stamp(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def add(root: Path, rel: str) -> None:
    """List `/rel` in `root/.gitignore` unless it is there."""
    gi = root / ".gitignore"
    key = os.fspath(gi)
    line = "/" + rel
    try:
        st = os.stat(gi)
    except FileNotFoundError:
        st = None
    seen = _SEEN.get(key)
    if st is None:
        lines, ends_nl = set(), True
    elif seen is not None and seen[0] == _stamp(st):
        lines, ends_nl = seen[1], True  # this process wrote the last line, with its newline
    else:
        text = gi.read_text()
        lines, ends_nl = set(text.splitlines()), text == "" or text.endswith("\n")
    if line in lines:
        if st is not None:
            _SEEN[key] = (_stamp(st), lines)
        return
    with open(gi, "a") as f:
        f.write(("" if ends_nl else "\n") + line + "\n")
    lines.add(line)
    _SEEN[key] = (_stamp(os.stat(gi)), lines)
