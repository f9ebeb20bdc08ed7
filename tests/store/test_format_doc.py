"""docs/format.md's examples are what the code writes (issue 11 item 11).

The page is the specification other tools follow by hand (tests/fixtures/attacker.py
does), so an example that drifts from the code misleads them: its lock example
once said `format: parquet` while the code wrote `pandas.parquet`. Each example is
read out of the page here and compared byte for byte with what pivot_store writes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from pivot_store.hashing import hash_json
from pivot_store.lockfile import FingerprintParts, Lock, parse_lock
from pivot_store.manifest import Manifest

DOC = Path(__file__).resolve().parents[2] / "docs" / "format.md"


def _section(title: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    assert f"\n## {title}" in text, f"docs/format.md has no section {title!r}"
    return text.split(f"\n## {title}", 1)[1].split("\n## ", 1)[0]


def _block(section: str, lang: str) -> str:
    found = re.search(rf"```{lang}\n(.*?)```", section, re.S)
    assert found, f"no ```{lang} block"
    return found.group(1)


def test_the_lock_example_is_a_lock_as_lockfile_writes_it() -> None:
    block = _block(_section("Lock file"), "yaml")
    written = "".join(re.sub(r"\s+#.*$", "", line) + "\n" for line in block.splitlines())
    lock = parse_lock(yaml.safe_load(written), "docs/format.md")  # its fingerprint verifies
    assert lock.to_yaml().decode() == written
    assert lock.outputs[0].format == "pandas.parquet"


def test_the_hashed_json_the_lock_section_spells_is_the_fingerprint() -> None:
    section = _section("Lock file")
    found = re.search(r'`(\{"code_version":null,[^`]*)`', section.replace("\n", ""))
    assert found, "the lock section no longer spells the hashed JSON"
    spelled = found.group(1)
    assert hash_json(json.loads(spelled)) == FingerprintParts().digest("a/b")
    assert Lock.build("a/b", FingerprintParts(), []).fingerprint == hash_json(json.loads(spelled))


def test_the_manifest_example_is_canonical() -> None:
    block = _block(_section("Directory manifest"), "json")
    raw = "".join(line.strip() for line in block.splitlines()).encode()
    manifest = Manifest.from_bytes(raw, "docs/format.md")
    assert manifest.to_bytes() == raw
