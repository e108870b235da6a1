"""The web page's first paint for a queue of many jobs: the server's answer
(the page's tornado handler rendering the list, over HTTP on 127.0.0.1) and
the browser's (Debian's headless Chromium: navigation start to first
contentful paint, the script and stylesheet loaded). The jobs come from a
stub source, so that only the page is measured, not a backend."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
import urllib.request
from datetime import timedelta
from typing import Any

from kbatch_dask.records import DaskInfo, JobRecord, JobState, now
from kbatch_dask.web.handlers import PageHandler, page_routes
from kbatch_dask.web.source import JobList

from .context import Context
from .measure import Row

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def jobs(n: int) -> list[dict[str, Any]]:
    """``n`` jobs as the CLI's JSON: a few running with a cluster, the rest ended."""
    start = now() - timedelta(hours=2)
    states = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)
    return [
        JobRecord(
            f"j{i:04d}", f"train-{i}", "alice", "local", JobState.RUNNING if i < 10 else states[i % 3], start,
            "train.py", started=start, finished=None if i < 10 else start + timedelta(minutes=i % 90),
            output=f"/home/alice/kbatch-j{i:04d}.out", dask=DaskInfo("2:8", cluster=f"c{i}", live_workers=2,
            dashboard=f"http://127.0.0.1/clusters/c{i}/status"),
        ).to_dict()
        for i in range(n)
    ]  # fmt: skip


class Stub:
    user = "alice"
    admin = False

    def __init__(self, listing: JobList) -> None:
        self._listing = listing

    def listing(self, *, everyone: bool, user: str | None) -> JobList:
        return self._listing

    def job(self, job_id: str, user: str | None) -> dict[str, Any]:
        return next(j for j in self._listing.jobs() if j["id"] == job_id)

    def logs(self, job_id: str, user: str | None, *, follow: bool) -> Any:
        return iter([f"epoch {i}: loss {1 / (i + 1):.4f}\n" for i in range(12)])


class StubPage(PageHandler):
    stub: Stub

    def initialize(self, base: str, host: str, stub: Stub) -> None:  # type: ignore[override]
        super().initialize(base, host)
        self.stub = stub

    def source(self) -> Any:
        return self.stub


def serve(listing: JobList) -> tuple[str, asyncio.AbstractEventLoop]:
    from tornado import httpserver, netutil, web

    ready: list[Any] = []

    def run() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        sockets = netutil.bind_sockets(0, "127.0.0.1")
        app = web.Application(page_routes("/", StubPage, "local", {"stub": Stub(listing)}))
        httpserver.HTTPServer(app).add_sockets(sockets)
        ready.append((f"http://127.0.0.1:{sockets[0].getsockname()[1]}/", loop))
        loop.run_forever()

    threading.Thread(target=run, daemon=True).start()
    while not ready:
        time.sleep(0.01)
    return ready[0]  # type: ignore[no-any-return]


def web_page(ctx: Context) -> list[Row]:
    n = ctx.sizes.web_jobs
    url, loop = serve(JobList.of(jobs(n)))
    try:
        server = []
        for _ in range(ctx.sizes.repeat_fast):
            t0 = time.perf_counter()
            with urllib.request.urlopen(url, timeout=60) as answer:
                assert answer.read().count(b"<tr data-id=") == n
            server.append(time.perf_counter() - t0)
        rows = [Row(f"web page, {n} jobs: server's answer (render + HTTP)", server, note="GET / over 127.0.0.1")]
        if shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER):
            rows.append(Row(f"web page, {n} jobs: browser, to first contentful paint", _paints(url, ctx)))
        return rows
    finally:
        loop.call_soon_threadsafe(loop.stop)


def _paints(url: str, ctx: Context) -> list[float]:
    import os

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 f"--user-data-dir={ctx.scratch / 'chromium-profile'}"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_script_timeout(30)
    try:
        samples = []
        for _ in range(ctx.sizes.repeat_fast):
            driver.get("about:blank")
            driver.get(url)
            # The paint's entry comes once the browser has painted, which may be after the load event.
            paint = driver.execute_async_script(
                "const done = arguments[arguments.length - 1];"
                "new PerformanceObserver((list) => {"
                "  const p = list.getEntriesByName('first-contentful-paint')[0]; if (p) done(p.startTime);"
                "}).observe({type: 'paint', buffered: true});"
            )
            samples.append(float(paint) / 1000)
        return samples
    finally:
        driver.quit()
