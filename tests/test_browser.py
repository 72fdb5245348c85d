"""The quickstart in a real JupyterLab, driven by headless Chromium: the inspector shows up live.

Needs Debian's chromium at /usr/bin/chromium (``apt-get install -y chromium``); skipped without.
A screenshot is kept in test-artifacts/.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lab_support import CHROME_ARGS, CHROMIUM, free_port, wait_ready

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"




@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """A headless JupyterLab on a free port serving a copy of the quickstart."""
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium")
    work = tmp_path / "nb"
    work.mkdir()
    shutil.copy(ROOT / "notebooks" / "quickstart.ipynb", work / "quickstart.ipynb")
    settings = tmp_path / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # render every cell (no virtual scrolling) so the inspector stays in the DOM
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    apputils = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    apputils.mkdir(parents=True)
    (apputils / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    port = free_port()
    token = secrets.token_hex(16)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env["JUPYTERLAB_SETTINGS_DIR"] = str(tmp_path / "settings")
    env["JUPYTERLAB_WORKSPACES_DIR"] = str(tmp_path / "workspaces")
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "runtime")
    env["JUPYTER_CONFIG_DIR"] = str(tmp_path / "config")
    log = (tmp_path / "lab.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={work}",
            "--LabApp.news_url=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=work,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{base}/api/status?token={token}", proc, timeout=90)
        yield base, token, tmp_path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


@pytest.mark.slow
def test_quickstart_runs_in_jupyterlab_and_shows_the_inspector(
    lab: tuple[str, str, Path],
) -> None:
    from playwright.sync_api import sync_playwright

    base, token, _tmp = lab
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROME_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            try:
                _run_quickstart(page, base, token)
            except Exception:
                page.screenshot(path=str(ARTIFACTS / "quickstart-jupyterlab-failure.png"))
                raise
        finally:
            browser.close()


def _run_quickstart(page: Any, base: str, token: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{base}/lab/tree/quickstart.ipynb?token={token}", timeout=90_000)
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
    # wait until the kernel is attached and idle: the execution indicator says "idle" before
    # a kernel is attached (a run then is dropped); the status bar names the kernel once it is
    expect(page.locator(".jp-Notebook-ExecutionIndicator")).to_have_attribute(
        "data-status", "idle", timeout=90_000
    )
    expect(page.locator("#jp-main-statusbar")).to_contain_text(
        re.compile(r"\(ipykernel\) \| Idle"), timeout=90_000
    )
    page.locator(".jp-Notebook .jp-Cell").first.click()
    _run_all_cells(page)
    done = page.locator(".jp-OutputArea-output").filter(
        has_text=re.compile(r"live providers: \d+, users: \d+")
    )
    expect(done).to_be_visible(timeout=120_000)
    wanted = re.search(r"live providers: (\d+)", done.inner_text())
    assert wanted is not None
    figure = page.locator(
        ".kalam-inspector .kalam-figure[data-key='live_providers']"
    ).first
    expect(figure).to_have_text(f"Live providers: {wanted.group(1)}", timeout=30_000)
    expect(page.locator(".kalam-inspector").first).to_be_visible()
    body = page.locator(".jp-Notebook").inner_text()
    assert "Traceback" not in body and "UsageError" not in body
    page.locator(".kalam-inspector").first.evaluate(
        "el => el.scrollIntoView({block: 'start'})"
    )
    page.screenshot(path=str(ARTIFACTS / "quickstart-jupyterlab.png"))


def _run_all_cells(page: Any) -> None:
    """Run > Run All Cells; on a busy machine the first click can come before the kernel is
    attached, so try again while no cell has started (no cell has run twice then)."""
    from playwright.sync_api import expect

    first_prompt = page.locator(".jp-CodeCell .jp-InputArea-prompt").first
    for _ in range(4):
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        try:
            expect(first_prompt).not_to_have_text(re.compile(r"^\[\s*\]:$"), timeout=15_000)
            return
        except AssertionError:
            continue
    raise AssertionError("Run All Cells never started the kernel")
