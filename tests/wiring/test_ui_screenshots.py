"""What on-call sees: the Dagster UI of a running ``dagster dev``, in Debian's headless Chromium driven by
Playwright (never a downloaded browser), read from screenshots.

One stage, three windows of one database: a window whose backup is corrupt in the DR region (its restore test
failed), a window that has no backup, and a good one; and a DR drill that failed. The pages must show the
corrupt window red, the missing one not red, the check results under their window, and the failed drill as a
failed run. The screenshots are kept under the test's temporary directory.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from dagster import DagsterInstance
from dagster._core.instance.ref import InstanceRef

from assets.capacity import capacity_partitions
from assets.drills import drill_partitions
from assets.partitions import backup_partition_key, window_partitions
from ops_project.backups.layout import backup_prefix, data_name
from ops_project.clients import Clients
from ops_project.config import load_config
from ops_project.definitions import build_definitions
from tests.conftest import local_region
from tests.servers import dagster_dev

CHROMIUM = "/usr/bin/chromium"
# Chromium on a closed network: no background connections (they are refused, many at a time), no sandbox (root)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def colours(png: Path) -> dict[str, int]:
    """Pixels of each status colour in a screenshot: saturated red, saturated green, and neutral grey."""
    from PIL import Image

    counts = {"red": 0, "green": 0, "grey": 0}
    with Image.open(png) as img:
        for r, g, b in img.convert("RGB").getdata():
            if r > 150 and g < 110 and b < 110:
                counts["red"] += 1
            elif g > 150 and r < 130 and b < 170 and g - max(r, b) > 40:
                counts["green"] += 1
            elif max(r, g, b) - min(r, g, b) < 25 and 70 < r < 190:
                counts["grey"] += 1
    return counts


@pytest.fixture
def stage(tmp_path, demo_db, write_config):
    """DAGSTER_HOME with: a failed drill, then backups of the newest window (good) and of the window two before
    it (corrupt in the DR region), no backup in between, and a restore test of each of the three windows."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (scripts/test.sh installs it)", pytrace=False)
    size = demo_db.stat().st_size
    config = write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                          [local_region(tmp_path, "af-south-1"), local_region(tmp_path, "eu-west-1")],
                          pin_start=False,  # the partitions begin at the first backup, as in the shipped default
                          # 80 % of the limit about ten days ahead of the history written below
                          capacity={"limits": {"booking": {"bytes": int((size + 10 * size / 6) / 0.8)}}})
    cfg = load_config(config)
    defs = build_definitions(cfg)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    from ops_project.backups.replicate import replicate
    from ops_project.backups.take import take_backup
    from ops_project.backups.windows import make_window

    windows = window_partitions(cfg).get_partition_keys(current_time=datetime.now(UTC))
    good, missing, corrupt = windows[-1], windows[-2], windows[-3]
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        week = drill_partitions(cfg).get_partition_keys(current_time=datetime.now(UTC))[-1]
        drill = defs.resolve_job_def("dr_drill_job").execute_in_process(partition_key=week, instance=instance,
                                                                       raise_on_error=False)
        assert not drill.success  # nothing to restore yet: every scenario fails
        tw = window_partitions(cfg).time_window_for_partition_key(corrupt)
        primary, dr = Clients(cfg).store(cfg.primary), Clients(cfg).store(cfg.regions[-1])
        manifest = take_backup(cfg.databases[0], primary, cfg.backup,
                               window=make_window(corrupt, tw.start, tw.end, None),
                               now=lambda: tw.end + timedelta(minutes=1))
        replicate(primary, dr, "booking", manifest.backup_id)
        damaged = dr.root / (backup_prefix("booking", manifest.backup_id) + data_name("sqlite", False))
        data = bytearray(damaged.read_bytes())
        data[len(data) // 2] ^= 0xFF
        damaged.write_bytes(bytes(data))
        assert defs.resolve_job_def("backup_job").execute_in_process(
            partition_key=backup_partition_key("booking", good), instance=instance).success
        restore = defs.resolve_job_def("restore_verification_job")
        for window, ok in ((corrupt, False), (missing, True), (good, True)):
            run = restore.execute_in_process(partition_key=backup_partition_key("booking", window),
                                             instance=instance, raise_on_error=False)
            assert run.success is ok
        # three days of hourly sizes growing to today's: the capacity report charts the database
        from ops_project.capacity.history import store_measurement

        now = datetime.now(UTC)
        for i in range(72):
            store_measurement(primary, {"taken_at": (now - timedelta(hours=72 - i)).isoformat(), "missing": [],
                                        "samples": [{"resource": "booking/bytes", "label": "booking database file",
                                                     "kind": "database_bytes", "unit": "bytes", "limit": None,
                                                     "detail": {}, "value": size / 2 + size / 2 * i / 72}]})
        capacity_week = capacity_partitions(cfg).get_partition_keys(current_time=now)[-1]
        assert defs.resolve_job_def("capacity_report_job").execute_in_process(
            partition_key=capacity_week, instance=instance).success
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with dagster_dev(home, config, tmp_path / "dagster-dev.log") as port:
        # The first-visit newsletter dialog opens a second after a page loads on localhost and covers what the
        # screenshots are of: mark it seen for this instance, as its "Skip" button does.
        seen = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": "mutation { setNuxSeen }"}, timeout=30)
        assert seen.status_code == 200 and "errors" not in seen.json(), seen.text
        yield f"http://127.0.0.1:{port}", {"good": good, "missing": missing, "corrupt": corrupt,
                                           "capacity_week": capacity_week}, shots


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = chromium.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(60_000)
        yield page
        chromium.close()


def _open(page, url: str) -> None:
    page.goto(url)
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(1500)  # the newsletter dialog would open a second after load (marked seen above)
    assert page.get_by_text("Join the Dagster community").count() == 0


def partitions_page(stage, browser):
    """The corrupt window is red, the window without a backup is grey (missing), the good one green."""
    base, w, shots = stage
    page = browser
    _open(page, f"{base}/assets/restore_verification?view=partitions")
    page.get_by_text("Failed (1)").wait_for()
    page.get_by_text("Missing (1)").wait_for()  # the window without a backup: missing, not failed
    page.get_by_text("Materialized (1)").wait_for()
    # the range begins at the first backup's window: three windows, not every window since a fixed date
    page.get_by_text("3 Partitions Selected").wait_for()
    page.screenshot(path=shots / "partitions.png", full_page=True)
    seen = {}
    for name in ("good", "missing", "corrupt"):
        window = w[name]
        row = page.locator("[class*=VirtualizedTable_row]", has=page.locator(f'[title="{window}"]'))
        row.screenshot(path=shots / f"row-{name}.png")
        seen[name] = colours(shots / f"row-{name}.png")
    assert seen["corrupt"]["red"] > 20 and seen["corrupt"]["green"] == 0, seen
    assert seen["missing"]["red"] == 0 and seen["missing"]["green"] == 0 and seen["missing"]["grey"] > 20, seen
    assert seen["good"]["green"] > 20 and seen["good"]["red"] == 0, seen


def check_history(stage, browser):
    """Each check result sits under its window (\"Partition\"), never \"—\"."""
    base, w, shots = stage
    page = browser
    _open(page, f"{base}/assets/restore_verification?view=checks&checkDetail=stored_sha256")
    page.get_by_text("Execution history", exact=True).first.click()
    failed = page.locator("tr", has_text=f"booking|{w['corrupt']}")
    failed.first.wait_for()
    page.screenshot(path=shots / "check-history.png", full_page=True)
    assert "Failed" in failed.first.inner_text()
    failed.first.screenshot(path=shots / "check-failed-row.png")
    assert colours(shots / "check-failed-row.png")["red"] > 20
    passed = page.locator("tr", has_text=f"booking|{w['good']}").first
    assert "Passed" in passed.inner_text()


def runs_page(stage, browser):
    """A drill whose verdict is FAILED is a failed run, in red."""
    base, _w, shots = stage
    page = browser
    _open(page, f"{base}/runs")
    row = page.locator("[class*=VirtualizedTable_row]", has_text="dr_drill_job").first
    row.wait_for()
    page.screenshot(path=shots / "runs.png", full_page=True)
    assert "Failure" in row.inner_text()
    row.screenshot(path=shots / "runs-drill-row.png")
    assert colours(shots / "runs-drill-row.png")["red"] > 20


def materialize_all(stage, browser):
    """"Materialize all" offers the windows since the first backup, none chosen until on-call picks them (not a
    backfill of every window since a fixed date)."""
    base, w, shots = stage
    page = browser
    _open(page, f"{base}/asset-groups/backups")
    page.get_by_text("Materialize all").first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Partition selection").wait_for()
    dialog.get_by_text(w["good"]).first.wait_for()  # the range's labels load after the dialog opens
    page.screenshot(path=shots / "materialize-all.png", full_page=True)
    text = dialog.inner_text()
    assert w["corrupt"] in text and w["good"] in text  # the range: first backup's window .. the newest
    older = window_partitions_before(w["corrupt"])
    assert older not in text
    assert dialog.get_by_role("button", name="Launch backfill").is_disabled()  # nothing chosen for you


def capacity_chart(stage, browser):
    """The capacity report's chart is drawn in the UI (an image that decoded, not a broken link), beside the
    failed headroom check."""
    base, w, shots = stage
    page = browser
    _open(page, f"{base}/assets/capacity_report?view=events&partition={w['capacity_week']}")
    page.get_by_text("[Show Markdown]").first.click()
    image = page.locator('img[src^="data:image/png;base64,"]').first
    image.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    assert image.evaluate("img => img.naturalWidth") > 300
    page.screenshot(path=shots / "capacity-chart.png", full_page=True)
    image.screenshot(path=shots / "capacity-chart-image.png")
    drawn = colours(shots / "capacity-chart-image.png")
    assert drawn["red"] > 50  # the limit line
    assert page.get_by_text("booking database file").count() > 0


def window_partitions_before(key: str) -> str:
    """The window key four hours before ``key`` (same offset)."""
    start = datetime.strptime(key, "%Y-%m-%d-%H:%M%z") - timedelta(hours=4)
    return start.strftime("%Y-%m-%d-%H:%M%z")


def test_what_on_call_sees(stage, browser):
    """One ``dagster dev`` for the pages (each start costs about 20 s)."""
    partitions_page(stage, browser)
    check_history(stage, browser)
    runs_page(stage, browser)
    materialize_all(stage, browser)
    capacity_chart(stage, browser)
