"""The reporter of a job the kbatch-dask service runs: its pod holds no
Kubernetes credentials, so the driver tells the service instead of patching
its own Job.

The service puts two variables in the job's Secret (:data:`SERVICE_URL_VAR`,
its URL as the pods reach it, and :data:`CREDENTIAL_VAR`, a random credential
of this job alone). Each report is one request (docs/service.md)::

    POST {url}api/v1/jobs/{id}/events      Authorization: Bearer <credential>
    {"event": "started"}
    {"event": "cluster", "name": "...", "dashboard": "...", "worker_limit": 2}
    {"event": "owned", "clusters": ["..."]}
    {"event": "finished", "state": "FAILED", "exit_code": 1, "reason": "..."}
    -> 204; 401 for a wrong credential or a job the service no longer has

and what the driver asks, one request too::

    GET {url}api/v1/jobs/{id}/pod-status?pod=NAME
    -> {"cancel_requested": false, "disrupted": null}

Before it reports the end, it uploads what the service serves of an ended job
(:mod:`.uploads`), each retried a few times within :attr:`ServiceReporter.upload_for`
seconds, each failure said in its log::

    PUT {url}api/v1/jobs/{id}/result                 the pickled result (function jobs)
    PUT {url}api/v1/jobs/{id}/logs?stream=error      the error file (-e), its tail
    PUT {url}api/v1/jobs/{id}/logs?stream=output     the output file, its tail
    PUT {url}api/v1/jobs/{id}/report                 the job report's summary (kbatch-%j.report.json)
    -> 204; 413 over the service's limit

A service that does not answer costs the job nothing: the driver says so once
in its log and runs on (the service reads the job's end from the Job itself).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from kbatch_dask.backends.hub.protocol import MAX_REPORT_BYTES
from kbatch_dask.backends.outputs import read_whole
from kbatch_dask.driver.uploads import Uploads, capped_tail
from kbatch_dask.records import JobState
from kbatch_dask.spec.units import format_size
from kbatch_dask.versions import user_agent

UPLOAD_ATTEMPTS = 3


class Unanswered(Exception):
    """The service did not take a report: ``status`` its HTTP status (None: unreachable)."""

    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(message)
        self.status = status


class ServiceReporter:
    """Reports the job's progress to the service that runs it (see the module)."""

    def __init__(
        self,
        url: str,
        job_id: str,
        credential: str,
        say: Callable[[str], None],
        pod_name: str | None = None,
        timeout: float = 10.0,
        finish_for: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        uploads: Uploads | None = None,
        upload_for: float = 20.0,
    ) -> None:
        self.url = url.rstrip("/") + "/"
        self.job_id = job_id
        self._credential = credential
        self.say = say
        self.pod_name = pod_name
        self.timeout = timeout
        self.finish_for = finish_for  # seconds the end is retried while the service restarts
        self.sleep = sleep
        self.uploads = uploads  # what the job leaves for the service to serve once it ends
        self.upload_for = upload_for  # seconds all uploads may take: the end is still reported in time
        self.warned = False

    def _request(self, method: str, path: str, body: Any = None, data: bytes | None = None) -> Any:
        quoted = urllib.parse.quote(self.job_id, safe="")
        headers = {
            "Authorization": f"Bearer {self._credential}",
            "User-Agent": user_agent(),
        }
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        elif data is not None:
            headers["Content-Type"] = "application/octet-stream"
        request = urllib.request.Request(
            f"{self.url}api/v1/jobs/{quoted}/{path}", data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                raw = answer.read()
        except urllib.error.HTTPError as exc:
            raise Unanswered(f"the kbatch-dask service answered HTTP {exc.code}{_said(exc)}", exc.code) from None
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise Unanswered(f"the kbatch-dask service at {self.url} cannot be reached: {reason}", None) from None
        return json.loads(raw) if raw.strip() else None

    def _report(self, event: Mapping[str, Any]) -> None:
        try:
            self._request("POST", "events", dict(event))
        except Unanswered as exc:
            self._warn(f"cannot report the job's progress ({exc}); the job runs on regardless")

    def _warn(self, message: str) -> None:
        if not self.warned:
            self.warned = True
            self.say(message)

    def started(self) -> None:
        self._report({"event": "started"})

    def cluster(self, name: str, dashboard: str | None, worker_limit: int | None) -> None:
        self._report({"event": "cluster", "name": name, "dashboard": dashboard, "worker_limit": worker_limit})

    def owned(self, clusters: tuple[str, ...]) -> None:
        self._report({"event": "owned", "clusters": list(clusters)})

    def finished(self, state: JobState, exit_code: int | None, reason: str | None) -> None:
        """The job's end; retried for ``finish_for`` seconds while the service cannot
        be reached or fails (it restarts), since the service revokes the job's hub
        token when it hears of it."""
        if self.uploads is not None:
            self._upload(self.uploads)
        body = {"event": "finished", "state": state.value, "exit_code": exit_code, "reason": reason}
        deadline = time.monotonic() + self.finish_for
        delay = 1.0
        while True:
            try:
                self._request("POST", "events", body)
                return
            except Unanswered as exc:
                retry = exc.status is None or exc.status >= 500
                if not retry or time.monotonic() + delay > deadline:
                    self.say(f"cannot report the job's end ({state.value}): {exc}")
                    return
            self.sleep(delay)
            delay = min(delay * 2, 10.0)

    def _upload(self, uploads: Uploads) -> None:
        """The result, then the error file, then the output, then the report's summary,
        within :attr:`upload_for` seconds; what was not uploaded is said in the log,
        and (the result) in the last of the job's files uploaded (its error file, else its output)."""
        deadline = time.monotonic() + self.upload_for
        notes = []
        result = read_whole(uploads.result)
        if result is not None and len(result) > uploads.max_result_bytes:
            notes.append(
                f"kbatch: the job's result ({format_size(len(result))}) was not uploaded: it is over the service's "
                f"limit kbatch.service.archive.max-result-bytes ({format_size(uploads.max_result_bytes)})"
            )
            self.say(notes[-1])
        elif result is not None and not self._put("result", "result", result, deadline):
            notes.append("kbatch: the job's result was not uploaded to the service (the driver's log says why)")
        noted = "".join(f"{n}\n" for n in notes).encode()
        last = "error" if uploads.error else "output"
        for stream in ("error", "output"):
            extra = noted if stream == last else b""
            limit = uploads.max_log_bytes - len(extra)
            data = (
                capped_tail(uploads.error, limit, uploads.max_log_bytes)
                if stream == "error"
                else uploads.output_tail(limit)
            )
            if data is not None:
                self._put(f"{stream} file", f"logs?stream={stream}", data + extra, deadline)
        report = read_whole(uploads.report)  # the metering wrote it whole before the cluster stopped
        if report is not None and len(report) > MAX_REPORT_BYTES:
            self.say(f"the job's report ({format_size(len(report))}) was not uploaded: it is over the service's limit")
        elif report is not None:
            self._put("report", "report", report, deadline)

    def _put(self, what: str, path: str, data: bytes, deadline: float) -> bool:
        """One upload, retried while the service cannot be reached or fails; whether it was taken."""
        delay = 1.0
        for attempt in range(1, UPLOAD_ATTEMPTS + 1):
            try:
                self._request("PUT", path, data=data)
                return True
            except Unanswered as exc:
                retry = (exc.status is None or exc.status >= 500) and attempt < UPLOAD_ATTEMPTS
                if not retry or time.monotonic() + delay > deadline:
                    self.say(f"the job's {what} was not uploaded to the service ({exc}); the job ends regardless")
                    return False
                self.say(f"uploading the job's {what} failed ({exc}); retrying in {delay:g} s")
            self.sleep(delay)
            delay *= 2
        return False

    def _pod_status(self) -> Mapping[str, Any] | None:
        """What the service says of this job and pod; None when it does not answer.
        A 401 means the service no longer has the job (deleted, e.g. cancelled)."""
        query = f"?pod={urllib.parse.quote(self.pod_name)}" if self.pod_name else ""
        try:
            answer = self._request("GET", f"pod-status{query}")
        except Unanswered as exc:
            if exc.status == 401:
                return {"cancel_requested": True, "disrupted": None}
            self._warn(f"cannot ask the kbatch-dask service about the job ({exc})")
            return None
        return answer if isinstance(answer, dict) else None

    def cancel_requested(self) -> bool:
        """True once the service says the Job is deleted or being deleted (``kbatch cancel``)."""
        status = self._pod_status()
        return bool(status and status.get("cancel_requested"))

    def failure_requested(self) -> str | None:
        """Never: a pod's gateway is not stopped by kbatch."""
        return None

    def disrupted(self) -> str | None:
        """Why the service sees this pod being replaced (its ``DisruptionTarget``), or None."""
        if not self.pod_name:
            return None
        status = self._pod_status()
        disrupted = (status or {}).get("disrupted")
        return str(disrupted) if disrupted else None


def _said(exc: urllib.error.HTTPError) -> str:
    """``: <the service's one line>`` of an error answer, if it has one."""
    try:
        return f": {json.loads(exc.read())['error']}"
    except (ValueError, KeyError, TypeError, OSError):
        return ""
