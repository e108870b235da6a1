"""The driver's end of the job's report: it arms the :mod:`.meter` on the job's
cluster through the dead-man's switch's client (connected for the job's whole
life), and before the cluster stops — whether the script succeeded, failed or
was cancelled — fetches the meter's summary into ``kbatch-%j.report.json`` and
Dask's own performance report into ``kbatch-%j.report.html``, beside the
job's output file (:func:`kbatch_dask.report.report_paths`).

Nothing here may fail the job: each step that goes wrong is one line in the
driver's log, and the job ends as it would have without a report.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from kbatch_dask.files import write_atomic
from kbatch_dask.report import report_paths
from kbatch_dask.settings import Report

MAX_CODE_CHARS = 20_000  # of the script, shown in the HTML report's "Calling code"


class Metering:
    """What the switch arms on the cluster and what it saves at the end."""

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
        self.timeout = timeout  # seconds each fetch may take: a lost cluster does not hold the job's end
        self.armed = False

    def arm(self, client: Any) -> None:
        """Register the meter (shipped by value: the scheduler needs no kbatch-dask) and,
        for the HTML report, the scheduler's task stream."""
        import cloudpickle

        from kbatch_dask.driver import meter

        module = sys.modules[meter.__name__]
        cloudpickle.register_pickle_by_value(module)
        try:
            client.register_plugin(meter.JobMeter(), name=meter.JobMeter.name)
        finally:
            cloudpickle.unregister_pickle_by_value(module)
        if self.html:
            client.get_task_stream(start=0, stop=0)  # registers the scheduler's task stream plugin
        self.armed = True

    def save(self, client: Any) -> None:
        """Fetch the summary and the performance report and write them; each failure logged."""
        if not self.armed:
            return
        collected = self._fetch(client)
        if collected is None:
            return
        try:
            data = json.dumps({"job": self.job_id, **collected["report"]}, indent=1).encode()
            write_atomic(self.report, data + b"\n")
            self.log(f"job report written to {self.report}")
        except OSError as exc:
            self.log(f"could not write the job report {self.report} ({exc})")
        if self.html:
            self._save_html(client, collected)

    def _fetch(self, client: Any) -> dict[str, Any] | None:
        import cloudpickle

        from kbatch_dask.driver import meter

        module = sys.modules[meter.__name__]
        cloudpickle.register_pickle_by_value(module)
        try:
            collected: dict[str, Any] | None = client.sync(
                client._run_on_scheduler, meter.collect, callback_timeout=self.timeout
            )
        except Exception as exc:
            self.log(f"could not collect the job report from the scheduler ({type(exc).__name__}: {exc})")
            return None
        finally:
            cloudpickle.unregister_pickle_by_value(module)
        return collected

    def _save_html(self, client: Any, collected: dict[str, Any]) -> None:
        assert self.html is not None
        try:
            page = client.sync(
                client.scheduler.performance_report,
                start=collected["report"]["metered_from"],
                last_count=collected["monitor_count"],
                code=self._code(),
                mode=None,
                callback_timeout=self.timeout,
            )
            write_atomic(self.html, str(page).encode())
            self.log(f"Dask performance report written to {self.html}")
        except Exception as exc:  # no bokeh on the scheduler, say, or a file that cannot be written
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
