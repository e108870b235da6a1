"""The handle on a submitted job: its state, output, result and cancel."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from kbatch_dask.backends import Backend
from kbatch_dask.backends.outputs import LogStream, decoded
from kbatch_dask.errors import KbatchError, KbatchWarning
from kbatch_dask.records import JobRecord, JobState
from kbatch_dask.render import workers_cell
from kbatch_dask.spec.units import format_duration, parse_seconds

if TYPE_CHECKING:  # the report's module, and html, only where they are used: not on submit's path
    from kbatch_dask.report import JobReport


class Job:
    """A handle on a submitted job."""

    def __init__(self, record: JobRecord, backend: Backend) -> None:
        self._record = record
        self._backend = backend
        self.warnings: tuple[KbatchWarning, ...] = ()  # what submitting it warned about

    @property
    def id(self) -> str:
        return self._record.id

    @property
    def record(self) -> JobRecord:
        """The job's record as last fetched (see :meth:`refresh`)."""
        return self._record

    def refresh(self) -> JobRecord:
        self._record = self._backend.get(self.id)
        return self._record

    @property
    def state(self) -> JobState:
        """The job's current state (fetched fresh unless it has ended)."""
        if not self._record.state.is_terminal():
            self.refresh()
        return self._record.state

    @property
    def cluster_name(self) -> str | None:
        d = self.refresh().dask
        return d.cluster if d else None

    @property
    def dashboard_link(self) -> str | None:
        d = self.refresh().dask
        return d.dashboard if d else None

    def wait(self, timeout: float | None = None, poll: float = 0.25, max_poll: float = 2.0) -> JobState:
        """Block until the job ends; raise TimeoutError after ``timeout`` seconds.

        Polls quickly at first, then less often (up to every ``max_poll``
        seconds), so that many waiting sessions do not load the backend's API.
        """
        if timeout is not None:
            timeout = parse_seconds(timeout, "timeout")
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.refresh().state.is_terminal():
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {self.id} still {self._record.state.value} after {timeout} s")
            pause = poll if deadline is None else min(poll, max(0.0, deadline - time.monotonic()))
            time.sleep(pause)
            poll = min(poll * 1.5, max_poll)
        return self._record.state

    def logs(self, follow: bool = False, stream: LogStream = "output", tail: int | None = None) -> Iterator[str] | str:
        """The job's output: a string, or with ``follow`` an iterator of chunks until the job ends.

        ``stream`` is ``output`` (the output file), ``error`` (the error file of
        ``error=``/``-e``) or ``all`` (both, each under a ``==> path <==`` line);
        ``tail`` keeps only the last lines of each. For big files, iterate over
        :meth:`log_chunks` instead of holding the whole text.
        """
        chunks = self.log_chunks(follow=follow, stream=stream, tail=tail)
        return chunks if follow else "".join(chunks)

    def log_chunks(self, follow: bool = False, stream: LogStream = "output", tail: int | None = None) -> Iterator[str]:
        """What :meth:`logs` returns, always as chunks: a big output is never held whole."""
        return decoded(self.log_bytes(follow=follow, stream=stream, tail=tail))

    def log_bytes(self, follow: bool = False, stream: LogStream = "output", tail: int | None = None) -> Iterator[bytes]:
        """The output as :meth:`log_chunks` gives it, but its bytes as the job wrote
        them, never decoded (``kbatch logs`` prints these): a byte that is not UTF-8
        stays as it is, where text has U+FFFD."""
        return self._backend.logs(self.id, follow=follow, stream=stream, tail=tail)

    def result(self, timeout: float | None = None) -> Any:
        """Wait for a function job and return what the function returned.

        If the function raised, the same exception type is raised here, with
        the traceback from inside the job attached as its cause. If the job
        ended without a result (cancelled, killed, lost), a
        :class:`~kbatch_dask.errors.KbatchError` says how it ended.
        """
        from kbatch_dask.driver.payload import unpack_result

        self.wait(timeout=timeout)
        data = self._backend.result(self.id)
        if data is None:
            how = _state(self._record)
            raise KbatchError(f"job {self.id} ended {how} without a result; see `kbatch logs {self.id}`")
        return unpack_result(data)

    def report(self) -> JobReport:
        """What the job's Dask cluster did (:mod:`kbatch_dask.report`): saved as the
        job ends, where its backend keeps it; a :class:`~kbatch_dask.errors.KbatchError`
        says why there is none."""
        from kbatch_dask import report, settings

        record = self._record if self._record.state.is_terminal() else self.refresh()
        return report.required(record, self._backend.report(record), settings.load().report)

    def hold(self) -> JobState:
        """Keep the pending job from starting until :meth:`release`."""
        self._record = self._backend.hold(self.id)
        return self._record.state

    def release(self) -> JobState:
        """Let the held job start (when its dependency and the quota allow)."""
        self._record = self._backend.release(self.id)
        return self._record.state

    def cancel(self) -> JobState:
        self._record = self._backend.cancel(self.id)
        return self._record.state

    def __repr__(self) -> str:
        r = self._record
        return f"<Job {r.id} {r.name!r} {r.state.value}>"

    def _repr_html_(self) -> str:
        """The notebook's view of the job, fetched afresh unless it has ended: a
        cell showing the job, run again, shows it as it is now."""
        import html

        r = self._record if self._record.state.is_terminal() else self.refresh()
        dash = r.dask.dashboard if r.dask and not r.state.is_terminal() else None  # gone once the job ends
        rows = [
            ("State", html.escape(_state(r))),
            ("Workers", html.escape(workers_cell(r)) if r.dask else None),
            ("Elapsed", html.escape(format_duration(r.elapsed())) if r.started else None),
            ("Dashboard", f'<a href="{html.escape(dash)}" target="_blank">{html.escape(dash)}</a>' if dash else None),
            ("Output", f"<code>{html.escape(r.output)}</code>" if r.output else None),
        ]
        cells = "".join(
            f'<tr><th style="text-align: left">{label}</th><td style="text-align: left">{value}</td></tr>'
            for label, value in rows
            if value is not None
        )
        title = f"Job {html.escape(r.id)}: {html.escape(r.name)}"
        return f'<div><h4 style="margin-bottom: 0.25em">{title}</h4><table>{cells}</table></div>'


def _state(record: JobRecord) -> str:
    """``FAILED (exit code 1)``: the state, with its reason when there is one."""
    return f"{record.state.value} ({record.reason})" if record.reason else record.state.value
