"""``kbatch ui`` in a real headless Chromium: the local page shows a running
job with its dashboard link, follows its log, cancels it (after asking) and
shows CANCELLED without a reload, then its Dask report, resubmits it (after
asking) and lands on the new job's page; a job waiting on it links it with its
state; a job's name and log that hold HTML render as text; without the link's
token the page is closed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chromium import fresh, no_alert_ran, text, until
from conftest import wait_for, write_script

from kbatch_dask import JobState, get_job, submit

pytestmark = pytest.mark.gateway

XSS_NAME = "<img src=x onerror=alert(1)>"
LOUD = """\
import os, sys, time
print("<b>bold</b><script>alert(2)</script>", flush=True)
n = 0
while not os.path.exists(sys.argv[1]):
    n += 1
    print(f"tick {n}", flush=True)
    time.sleep(0.3)
"""


@pytest.fixture
def ui(home: Path) -> Iterator[str]:
    """A running ``kbatch ui``; its link (with the token)."""
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "kbatch"), "ui", "--no-browser"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy(),
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        lines = []
        while not (found := re.search(r"http://127\.0\.0\.1:\d+/\?token=\S+", "".join(lines))):
            line = proc.stderr.readline()
            assert line, f"kbatch ui ended: {''.join(lines)}"
            lines.append(line)
        url = found.group(0)
        printed = subprocess.run(
            [str(Path(sys.executable).parent / "kbatch"), "ui", "--url"], capture_output=True, text=True, timeout=60
        )
        assert printed.stdout.strip() == url, printed
        yield url
    finally:
        proc.terminate()
        proc.wait(20)


def test_the_local_page_follows_a_job_and_cancels_it(ui: str, chromium: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    browser = fresh(chromium)
    gate = tmp_path / "gate"
    job = submit(str(write_script(tmp_path / "loud.py", LOUD)), str(gate), dask_workers=1, name=XSS_NAME)
    try:
        wait_for(lambda: get_job(job.id).state is JobState.RUNNING, timeout=120, what="the job running")
        browser.get(ui)
        row = f'tr[data-id="{job.id}"]'
        until(lambda: browser.find_elements(By.CSS_SELECTOR, row), "the job in the queue")
        assert text(browser, f"{row} .name") == XSS_NAME  # the name as text, not an <img>
        assert not browser.find_elements(By.CSS_SELECTOR, "img")
        link = until(lambda: browser.find_elements(By.CSS_SELECTOR, f"{row} .dashboard a"), "the dashboard link, live")[
            0
        ].get_attribute("href")
        assert link.startswith("http://127.0.0.1:") and "/status" in link, link
        assert "RUNNING" in text(browser, f"{row} .state")

        browser.find_element(By.CSS_SELECTOR, f"{row} a").click()
        until(lambda: "tick 2" in text(browser, "#log"), "the log, followed")
        assert "<b>bold</b><script>alert(2)</script>" in text(browser, "#log")  # the log's HTML as text
        no_alert_ran(browser)

        job_page = browser.current_url
        # A job waiting on it: its page links the running job, with its state.
        then = submit(str(write_script(tmp_path / "then.py", "print('then')\n")), dependency=f"afterok:{job.id}")
        browser.get(job_page.replace(f"/jobs/{job.id}", f"/jobs/{then.id}"))
        assert "--dependency afterok:" in text(browser, "#dependency")
        assert text(browser, f'#dependency a[href$="/jobs/{job.id}"]') == job.id
        assert text(browser, "#dependency .state") == "RUNNING"
        browser.get(job_page)

        browser.find_element(By.CSS_SELECTOR, "#cancel button").click()
        until(lambda: browser.switch_to.alert, "the confirmation").accept()
        until(lambda: text(browser, "#job-state") == "CANCELLED", "CANCELLED, without a reload")
        assert not browser.find_element(By.ID, "cancel").is_displayed()
        no_alert_ran(browser)
        # Its cluster's report, saved as it was cancelled, on the page once reloaded.
        until(lambda: browser.refresh() or browser.find_elements(By.ID, "report-line"), "the job's report")
        assert text(browser, "#report-line").endswith(f"worker-seconds (kbatch report {job.id})")
        assert "CPU efficiency" in text(browser, "table.report")

        browser.find_element(By.CSS_SELECTOR, "#resubmit button").click()
        until(lambda: browser.switch_to.alert, "the resubmit's confirmation").accept()
        # The URL, not the element: it may be the old page's, gone in the middle of a call.
        until(lambda: not browser.current_url.endswith(f"/jobs/{job.id}"), "the new job's page")
        again = browser.current_url.rsplit("/", 1)[1]
        until(lambda: browser.find_elements(By.CSS_SELECTOR, f'#job[data-id="{again}"]'), "the new job's page, loaded")
        assert browser.current_url.endswith(f"/jobs/{again}") and text(browser, "#job h1 .name") == XSS_NAME
        assert get_job(again).record.args == (str(gate),)
        get_job(again).cancel()
    finally:
        gate.touch()
    assert get_job(job.id).state is JobState.CANCELLED


def test_the_local_page_needs_the_token(ui: str) -> None:
    base = ui.split("?")[0]
    for path in ("", "?format=json", "jobs/abcde"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + path, timeout=10)
        assert refused.value.code == 403, path
        assert "default-src 'none'" in refused.value.headers["Content-Security-Policy"]
