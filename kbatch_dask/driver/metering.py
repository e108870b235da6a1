"""The driver's end of the job's report: it arms the :mod:`.meter` on the job's
cluster through the dead-man's switch's client (connected for the job's whole
life), and before the cluster stops — whether the script succeeded, failed or
was cancelled — fetches, in one request, the meter's summary and the data of
Dask's own performance report: the one step on the way to the cluster's stop.
Once the stop has been asked for, the summary is written to
``kbatch-%j.report.json`` and the page, ``kbatch-%j.report.html``, rendered
(:mod:`.page`), before the job is recorded as ended; both files are beside
the job's output file (:func:`kbatch_dask.report.report_paths`).

Nothing here may fail the job: each step that goes wrong is one line in the
driver's log, and the job ends as it would have without a report.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import threading
from collections.abc import Callable
from typing import Any

from kbatch_dask.files import write_atomic
from kbatch_dask.report import report_paths
from kbatch_dask.settings import Report

MAX_CODE_CHARS = 20_000  # of the script, shown in the HTML report's "Calling code"


class Metering:
    """What the switch arms on the cluster, what it collects at the end, and what it writes."""

    def __init__(
        self,
        job_id: str,
        report: str,
        html: str | None,
        script: str,
        log: Callable[[str], None],
        timeout: float = 30.0,
    ) -> None:
        self.job_id = job_id
        self.report = report  # the JSON file
        self.html = html  # Dask's performance report; None: not written
        self.script = script
        self.log = log
        self.timeout = timeout  # seconds each step may take: a lost cluster does not hold the job's end
        self.armed = False
        self._registering: concurrent.futures.Future[Any] | None = None
        self._summary: dict[str, Any] | None = None  # collected for the JSON report, not yet written
        self._page: dict[str, Any] | None = None  # collected for the HTML report, not yet rendered
        self._preparing: threading.Thread | None = None  # the page's imports, while the cluster stops

    def arm(self, client: Any) -> None:
        """Send the meter to the scheduler (by value: the scheduler needs no kbatch-dask), with
        the task stream for the HTML report; :meth:`wait_armed` waits for the answer, so that
        the switch's registration can be on its way meanwhile."""
        from distributed.protocol.pickle import dumps

        from kbatch_dask.driver import meter
        from kbatch_dask.driver.deadman import by_value

        with by_value(meter):
            plugin = dumps(meter.JobMeter(task_stream=bool(self.html)))  # type: ignore[no-untyped-call]
        call = client.scheduler.register_scheduler_plugin(plugin=plugin, name=meter.JobMeter.name, idempotent=False)
        self._registering = asyncio.run_coroutine_threadsafe(call, client.loop.asyncio_loop)

    def wait_armed(self) -> None:
        """Wait for the scheduler's answer to :meth:`arm` (its error raised)."""
        if self._registering is not None:
            registering, self._registering = self._registering, None
            registering.result(self.timeout)
            self.armed = True

    def collect(self, client: Any) -> None:
        """Collect the summary, and what the HTML report needs, in one round trip: the one step
        before the cluster's stop. :meth:`write` writes them once the stop is asked for."""
        if not self.armed:
            return
        collected = self._fetch(client)
        if collected is None:
            return
        self._summary = collected["report"]
        self._page = collected.get("page")

    def prepare_page(self) -> None:
        """Start the page's imports in a thread of their own, once the cluster's stop has been
        asked for: bokeh's imports hold the GIL, and would slow the fetch and the stop request."""
        if self.html and self._page is not None and self._preparing is None:
            from kbatch_dask.driver.page import prepare

            self._preparing = threading.Thread(
                target=_yielding, args=(prepare,), name="report-page-imports", daemon=True
            )
            self._preparing.start()

    def write(self) -> None:
        """Write the summary :meth:`collect` collected, then Dask's performance report."""
        summary, self._summary = self._summary, None
        if summary is not None:
            try:
                data = json.dumps({"job": self.job_id, **summary}, indent=1).encode()
                write_atomic(self.report, data + b"\n")
                self.log(f"job report written to {self.report}")
            except OSError as exc:
                self.log(f"could not write the job report {self.report} ({exc})")
        self._write_page()

    def _fetch(self, client: Any) -> dict[str, Any] | None:
        from kbatch_dask.driver import meter
        from kbatch_dask.driver.deadman import by_value

        try:
            with by_value(meter):
                collected: dict[str, Any] | None = client.sync(
                    client._run_on_scheduler, meter.collect, page=bool(self.html), callback_timeout=self.timeout
                )
        except Exception as exc:
            self.log(f"could not collect the job report from the scheduler ({type(exc).__name__}: {exc})")
            return None
        return collected

    def _write_page(self) -> None:
        """Render Dask's performance report from what :meth:`collect` collected and write it,
        within ``timeout`` seconds: a page that takes longer is not waited for (the job's end is)."""
        data, self._page = self._page, None
        preparing, self._preparing = self._preparing, None
        if data is None or self.html is None:
            return
        rendering = threading.Thread(
            target=_yielding, args=(self._render, data, preparing), name="report-page", daemon=True
        )
        rendering.start()
        rendering.join(self.timeout)
        if rendering.is_alive():
            self.log(f"could not write the Dask performance report {self.html} (not rendered in {self.timeout:g} s)")

    def _render(self, data: dict[str, Any], preparing: threading.Thread | None) -> None:
        assert self.html is not None
        try:
            from kbatch_dask.driver.page import render

            if preparing is not None:
                preparing.join()
            write_atomic(self.html, render(data, self._code()).encode())
            self.log(f"Dask performance report written to {self.html}")
        except Exception as exc:  # a Dask whose report reads what the snapshot lacks, a file that cannot be written
            self.log(f"could not write the Dask performance report {self.html} ({type(exc).__name__}: {exc})")

    def _code(self) -> str:
        if not self.script:
            return f"# kbatch job {self.job_id}"
        try:
            with open(self.script, encoding="utf-8", errors="replace") as f:
                code = f.read(MAX_CODE_CHARS)
        except OSError:
            code = ""
        return f"# kbatch job {self.job_id}: {self.script}\n{code}"


def _yielding(work: Callable[..., None], *args: Any) -> None:
    """Do ``work`` in this thread at a lower CPU priority (a Linux thread has its own): the
    page's seconds of CPU would otherwise slow the cluster's stop, which runs meanwhile on
    the same few cores; alone on them, it takes as long as before."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux, or not allowed: at the same priority
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0) + 10)
    work(*args)


def for_job(
    job_id: str, output: str | None, kind: str, script: str, config: Report, log: Callable[[str], None]
) -> Metering | None:
    """The job's metering as the settings (``kbatch.report``) say; None when off or
    when the job has no output file to write its report beside."""
    paths = report_paths(output, job_id)
    if not config.enabled or paths is None:
        return None
    code = script if kind in ("python", "notebook", "executable") else ""  # a function's payload is no text
    return Metering(job_id, paths[0], paths[1] if config.html else None, code, log)
