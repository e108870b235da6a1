"""The handle on a submitted job: its state, output, result and cancel."""

from __future__ import annotations

import html
import time
from collections.abc import Iterator
from typing import Any

from kbatch_dask.backends import Backend
from kbatch_dask.errors import KbatchError, KbatchWarning
from kbatch_dask.records import JobRecord, JobState
from kbatch_dask.spec.units import parse_seconds


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

    def logs(self, follow: bool = False) -> Iterator[str] | str:
        """The job's output: a string, or with ``follow`` an iterator of chunks until the job ends."""
        chunks = self._backend.logs(self.id, follow=follow)
        return chunks if follow else "".join(chunks)

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
            r = self._record
            how = f"{r.state.value} ({r.reason})" if r.reason else r.state.value
            raise KbatchError(f"job {self.id} ended {how} without a result; see `kbatch logs {self.id}`")
        return unpack_result(data)

    def cancel(self) -> JobState:
        self._record = self._backend.cancel(self.id)
        return self._record.state

    def __repr__(self) -> str:
        r = self._record
        return f"<Job {r.id} {r.name!r} {r.state.value}>"

    def _repr_html_(self) -> str:
        r = self._record
        dash = r.dask.dashboard if r.dask else None
        link = f' — <a href="{html.escape(dash)}" target="_blank">dashboard</a>' if dash else ""
        return f"<b>Job {html.escape(r.id)}</b> {html.escape(r.name)}: <code>{r.state.value}</code>{link}"
