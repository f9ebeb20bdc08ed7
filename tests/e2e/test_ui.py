"""The example in the Dagster UI: `dagster dev` + a real headless Chromium.

The run is launched through the webserver's GraphQL API (what the UI's
"Materialize" button calls), then the asset's page is opened in Chromium and
the pivot metadata must be on screen: first a computed result, then, after a
second run, a cache hit.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.fixtures.parts import require

pytestmark = [pytest.mark.ui, pytest.mark.slow, pytest.mark.xdist_group("ui")]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
DOWNSTREAM = ["sales", "features", "demand_model", "evaluation", "report"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gql(port: int, query: str, variables: dict | None = None) -> dict:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        body = json.loads(resp.read())
    assert "errors" not in body, body
    return body["data"]


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except OSError as e:  # server not up yet
            last = e
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


@pytest.fixture(scope="module")
def dagster_ui(tmp_path_factory: pytest.TempPathFactory):
    require(
        os.path.exists(CHROMIUM),
        "chromium",
        f"{CHROMIUM} is not installed (make test apt-installs Debian's chromium as root)",
    )
    tmp = tmp_path_factory.mktemp("ui")
    home, project = tmp / "dagster_home", tmp / "project"
    home.mkdir()
    project.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(home), "PIVOT_PROJECT_DIR": str(project)}
    # The daily source partitions are materialized first, in-process: launching
    # eight partition runs through the webserver would only test Dagster.
    seed = (
        "from dagster import DagsterInstance, materialize\n"
        "from example_project.assets import DAYS\n"
        "from example_project.definitions import ALL_ASSETS, defs\n"
        "inst = DagsterInstance.get()\n"
        "for pk in DAYS.get_partition_keys():\n"
        "    assert materialize([ALL_ASSETS[0]], partition_key=pk, instance=inst,\n"
        "                       resources=defs.resources).success\n"
    )
    subprocess.run(
        [sys.executable, "-c", seed],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    port = _free_port()
    dagster = shutil.which("dagster", path=str(Path(sys.executable).parent)) or "dagster"
    log = open(tmp / "dagster_dev.log", "wb")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(
        [dagster, "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        _wait(
            lambda: (
                urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5).status
                == 200
            ),
            180,
            "dagster dev to answer",
        )
        _wait(lambda: _location(port), 180, "the code location to load")
        yield port, tmp
    finally:
        with_group = os.getpgid(proc.pid)
        os.killpg(with_group, signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(with_group, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


def _location(port: int) -> str | None:
    data = _gql(
        port,
        "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
        "locationOrLoadError { __typename } } } } }",
    )
    for entry in data["workspaceOrError"]["locationEntries"]:
        if (
            entry["loadStatus"] == "LOADED"
            and entry["locationOrLoadError"]["__typename"] == "RepositoryLocation"
        ):
            return entry["name"]
    return None


def _launch_and_wait(port: int) -> dict:
    location = _location(port)
    launched = _gql(
        port,
        "mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename "
        "... on LaunchRunSuccess { run { runId } } ... on PythonError { message } "
        "... on InvalidSubsetError { message } } }",
        {
            "p": {
                "selector": {
                    "repositoryLocationName": location,
                    "repositoryName": "__repository__",
                    "jobName": "__ASSET_JOB",
                    "assetSelection": [{"path": [k]} for k in DOWNSTREAM],
                },
                "runConfigData": {},
            }
        },
    )["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    query = (
        "query($id: ID!) { runOrError(runId: $id) { ... on Run { status "
        "assetMaterializations { assetKey { path } metadataEntries { label "
        "... on BoolMetadataEntry { boolValue } ... on TextMetadataEntry { text } } } } } }"
    )

    def done() -> dict | None:
        run = _gql(port, query, {"id": run_id})["runOrError"]
        return run if run["status"] in ("SUCCESS", "FAILURE", "CANCELED") else None

    run = _wait(done, 300, f"run {run_id}")
    assert run["status"] == "SUCCESS", run
    return run


def _hits(run: dict) -> dict[str, bool]:
    out = {}
    for m in run["assetMaterializations"]:
        entries = {e["label"]: e for e in m["metadataEntries"]}
        out[m["assetKey"]["path"][-1]] = entries["pivot/cache_hit"]["boolValue"]
    return out


def _cache_hit_row(port: int, asset: str, shot: Path) -> str:
    """The text of the `pivot/cache_hit` row of the asset page's metadata table."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/assets/{asset}", wait_until="domcontentloaded")
            page.get_by_text("pivot/hash").first.wait_for(timeout=60_000)
            assert page.get_by_text("pivot/hash").first.is_visible()
            row = page.locator("tr", has_text="pivot/cache_hit").first
            row.scroll_into_view_if_needed()
            page.screenshot(path=str(shot), full_page=True)
            return " ".join(row.inner_text().split())
        finally:
            browser.close()


def test_materialize_in_ui_then_cache_hits(dagster_ui) -> None:
    port, tmp = dagster_ui
    first = _launch_and_wait(port)
    assert _hits(first) == dict.fromkeys(DOWNSTREAM, False)
    row = _cache_hit_row(port, "demand_model", tmp / "first_run.png")
    assert row.startswith("pivot/cache_hit") and row.endswith("false"), row

    second = _launch_and_wait(port)
    assert _hits(second) == dict.fromkeys(DOWNSTREAM, True)
    row = _cache_hit_row(port, "demand_model", tmp / "second_run.png")
    assert row.startswith("pivot/cache_hit") and row.endswith("true"), row
    assert (tmp / "second_run.png").stat().st_size > 10_000
