"""``%%kalam --live`` in a real JupyterLab, driven by headless Chromium: a live table follows
the INSERTs of other cells, never shows another user's rows, and Stop ends it.

A notebook is written into a temporary root directory and opened in a JupyterLab server on a
free port (every JUPYTER_* / IPython directory temporary too, so nothing leaks). Cell by cell:
the live table renders with its row count; alice's INSERT in a later cell appears in it (the
widgets are updated from the view's background thread); bob's never does; the ``-o`` frame
follows; after its Stop button, a second live table still gets alice's next row and the
stopped one does not. Needs Debian's chromium at /usr/bin/chromium (``make browser``); skipped
without. On failure a screenshot and the server log are kept under the test's tmp dir.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lab_support import CHROME_ARGS, CHROMIUM, free_port, wait_ready

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = "live.ipynb"
STARTUP_S = 90  # server start, page load, kernel start: generous for a loaded machine
STEP_MS = 30_000  # one cell's effect reaching the page

# The cells, in order; their indexes are used below.
SETUP, LIVE, ALICE_INSERT, BOB_INSERT, ALICE_AFTER_BOB, FRAME, SECOND_LIVE, AFTER_STOP = range(8)
CELLS = [
    "%load_ext kalam_jupyter\n"
    "%kalam --connect :memory:\n"
    "%kalam CREATE NAMESPACE app\n"
    "%kalam CREATE USER TABLE app.m (id BIGINT PRIMARY KEY, body TEXT)\n"
    "%kalam --user alice INSERT INTO app.m (id, body) VALUES (1, 'alice-one')\n"
    "%kalam --user bob INSERT INTO app.m (id, body) VALUES (2, 'bob-one')",
    "%%kalam --live --user alice -o msgs\nSELECT id, body FROM app.m",
    "%kalam --user alice INSERT INTO app.m (id, body) VALUES (3, 'alice-two')",
    "%kalam --user bob INSERT INTO app.m (id, body) VALUES (4, 'bob-two')",
    "%kalam --user alice INSERT INTO app.m (id, body) VALUES (5, 'alice-three')",
    "print('frame:', ','.join(msgs['body']))",
    "%%kalam --live --user alice\nSELECT id, body FROM app.m",
    "%kalam --user alice INSERT INTO app.m (id, body) VALUES (6, 'alice-after-stop')",
]


def _notebook() -> dict[str, Any]:
    cells = [{"cell_type": "code", "execution_count": None, "id": f"cell-{i}", "metadata": {},
              "outputs": [], "source": src} for i, src in enumerate(CELLS)]
    return {"cells": cells, "nbformat": 4, "nbformat_minor": 5, "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"}}}




def _write_settings(settings: Path) -> None:
    """Lab settings: every cell rendered (no virtual scrolling), no news or update checks."""
    for plugin, name, values in (
        ("notebook-extension", "tracker", {"windowingMode": "none"}),
        ("apputils-extension", "notification", {"fetchNews": "false",
                                                "checkForUpdates": False}),
    ):
        folder = settings / "@jupyterlab" / plugin
        folder.mkdir(parents=True)
        (folder / f"{name}.jupyterlab-settings").write_text(json.dumps(values))


@dataclass
class Lab:
    url: str
    log: Path
    tmp: Path


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """A JupyterLab on a free port serving the notebook, with its own temporary directories."""
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium (make browser)")
    pytest.importorskip("playwright")
    root = tmp_path / "root"
    root.mkdir()
    (root / NOTEBOOK).write_text(json.dumps(_notebook()))
    _write_settings(tmp_path / "settings")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env["JUPYTERLAB_SETTINGS_DIR"] = str(tmp_path / "settings")
    for var, sub in (("JUPYTERLAB_WORKSPACES_DIR", "workspaces"),
                     ("JUPYTER_RUNTIME_DIR", "runtime"), ("JUPYTER_CONFIG_DIR", "config"),
                     ("JUPYTER_DATA_DIR", "data"), ("IPYTHONDIR", "ipython"),
                     ("KALAM_DATA_DIR", "kalam")):
        env[var] = str(tmp_path / sub)
    port, token = free_port(), secrets.token_hex(16)
    log_path = tmp_path / "lab.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
             "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
             "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
             f"--ServerApp.root_dir={root}", "--LabApp.news_url="],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(f"{base}/api/status?token={token}", proc, timeout=STARTUP_S)
            yield Lab(f"{base}/lab/tree/{NOTEBOOK}?token={token}", log_path, tmp_path)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


class Notebook:
    """The open notebook page: run a cell, find its output."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.cells = page.locator(".jp-Notebook .jp-Cell")

    def open(self, url: str) -> None:
        from playwright.sync_api import expect

        self.page.goto(url, timeout=STARTUP_S * 1000)
        expect(self.cells).to_have_count(len(CELLS), timeout=STARTUP_S * 1000)
        # the execution indicator says "idle" before a kernel is attached (and a cell run
        # then is dropped); the status bar names the kernel once it is connected
        expect(self.page.locator("#jp-main-statusbar")).to_contain_text(
            re.compile(r"\(ipykernel\) \| Idle"), timeout=STARTUP_S * 1000)

    def prompt(self, index: int) -> Any:
        return self.cells.nth(index).locator(".jp-InputArea-prompt")

    def run(self, index: int) -> None:
        """Run one cell (Ctrl+Enter in its editor) and wait until it has finished. On a busy
        machine the first keypress can come before the kernel is attached: press again while
        the cell has not started (a started cell shows [*] or its number, so none runs twice)."""
        from playwright.sync_api import expect

        prompt = self.prompt(index)
        started = re.compile(r"^\[(\*|\d+)\]:$")
        for _ in range(4):
            self.cells.nth(index).locator(".jp-InputArea-editor").click()
            self.page.keyboard.press("Control+Enter")
            try:
                expect(prompt).to_have_text(started, timeout=15_000)
                break
            except AssertionError:
                continue
        else:
            raise AssertionError(f"cell {index} never started running")
        expect(prompt).to_have_text(re.compile(r"^\[\d+\]:$"), timeout=STARTUP_S * 1000)
        errors = self.cells.nth(index).locator(".jp-OutputArea-output[data-mime-type="
                                                "'application/vnd.jupyter.stderr']")
        if errors.count():
            raise AssertionError(f"cell {index} failed:\n{errors.first.inner_text()}")

    def output(self, index: int) -> Any:
        return self.cells.nth(index).locator(".jp-OutputArea-output")

    def live(self, index: int) -> Any:
        return self.output(index).locator(".kalam-live")


def _check(step: str, lab: Lab, page: Any, action: Callable[[], None]) -> None:
    """Run one step; on failure keep a screenshot and say which step and what the server said."""
    started = time.monotonic()
    try:
        action()
        print(f"{step}: {time.monotonic() - started:.1f} s")  # shown with pytest -s
    except Exception as exc:
        shot = lab.tmp / "lab-live-failure.png"
        try:
            page.screenshot(path=str(shot), full_page=True)
        except Exception as shot_exc:  # the page itself may be gone
            shot = Path(f"(no screenshot: {shot_exc})")
        log = lab.log.read_text(errors="replace")[-3000:]
        raise AssertionError(f"step '{step}' failed: {exc}\nscreenshot: {shot}\n"
                             f"jupyter lab log (tail):\n{log}") from exc


@pytest.mark.slow
def test_live_table_follows_other_cells_in_jupyterlab(lab: Lab) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROME_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1400})
            _drive(Notebook(page), lab)
        finally:
            browser.close()


def _drive(nb: Notebook, lab: Lab) -> None:
    from playwright.sync_api import expect

    live = nb.live(LIVE)
    status = live.locator(".kalam-live-status")
    rows = live.locator(".kalam-live-rows")

    def step(name: str, action: Callable[[], None]) -> None:
        _check(name, lab, nb.page, action)

    def shows_alice_snapshot() -> None:
        nb.run(SETUP)
        nb.run(LIVE)
        expect(rows.locator("table.kalam-live-table")).to_be_visible(timeout=STEP_MS)
        expect(rows.locator("tbody tr")).to_have_count(1)
        expect(rows).to_contain_text("alice-one")
        expect(status).to_contain_text(re.compile(r"^1 row · no change yet"))
        expect(status).to_contain_text("as alice · active")
        assert "bob-one" not in rows.inner_text()

    def follows_alice_insert() -> None:
        nb.run(ALICE_INSERT)
        expect(rows).to_contain_text("alice-two", timeout=STEP_MS)
        expect(status).to_contain_text(re.compile(r"^2 rows · last change \d\d:\d\d:\d\d"),
                                       timeout=STEP_MS)
        expect(status).to_contain_text("1 change event")

    def never_shows_bob() -> None:
        nb.run(BOB_INSERT)
        nb.run(ALICE_AFTER_BOB)  # applied after bob's row would have been: a bound to wait on
        expect(rows).to_contain_text("alice-three", timeout=STEP_MS)
        expect(status).to_contain_text(re.compile(r"^3 rows · "), timeout=STEP_MS)
        expect(rows.locator("tbody tr")).to_have_count(3)
        text = rows.inner_text()
        assert "bob-one" not in text and "bob-two" not in text, text

    def frame_follows() -> None:
        nb.run(FRAME)
        expect(nb.output(FRAME)).to_have_text(re.compile(
            r"frame: alice-one,alice-two,alice-three\s*$"))

    def stop_ends_it() -> None:
        nb.run(SECOND_LIVE)  # a second view of the same rows: it shows what the first misses
        other = nb.live(SECOND_LIVE).locator(".kalam-live-rows")
        expect(other.locator("tbody tr")).to_have_count(3, timeout=STEP_MS)
        stop = live.locator("button.kalam-live-stop")
        stop.click()
        expect(status).to_contain_text(re.compile(r"· stopped$"), timeout=STEP_MS)
        expect(stop).to_be_disabled(timeout=STEP_MS)
        nb.run(AFTER_STOP)
        expect(other).to_contain_text("alice-after-stop", timeout=STEP_MS)
        expect(nb.live(SECOND_LIVE).locator(".kalam-live-status")).to_contain_text(
            re.compile(r"^4 rows · .*· active$"), timeout=STEP_MS)
        assert "alice-after-stop" not in rows.inner_text()
        expect(rows.locator("tbody tr")).to_have_count(3)
        expect(status).to_contain_text(re.compile(r"^3 rows · "))

    step("open the notebook, kernel idle", lambda: nb.open(lab.url))
    step("live table shows alice's snapshot and row count", shows_alice_snapshot)
    step("alice's INSERT in another cell appears", follows_alice_insert)
    step("bob's INSERTs never show in alice's table", never_shows_bob)
    step("the -o frame follows the changes", frame_follows)
    step("Stop ends the live table", stop_ends_it)
    body = nb.page.locator(".jp-Notebook").inner_text()
    assert "Traceback" not in body and "UsageError" not in body, body
