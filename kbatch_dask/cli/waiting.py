"""``kbatch wait`` and ``kbatch --wait``: block until the job ends, showing how it
goes on a terminal, and exit with the job's exit code.

On a terminal, one line is redrawn in place (state, workers live/requested,
elapsed) and the end is printed (``Job k3x9q SUCCEEDED in 0:42``). On a pipe
nothing is drawn, so that a script's captured output holds only what it asked for.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import Any, NoReturn, TextIO

import click

from kbatch_dask.records import JobRecord, JobState
from kbatch_dask.spec.units import format_duration

REDRAW_EVERY = 1.0  # seconds; the elapsed time on the line moves by whole seconds


def status_line(record: JobRecord) -> str:
    """What the waiting line says about a job.

    >>> from datetime import timedelta
    >>> from kbatch_dask.records import DaskInfo, now
    >>> t = now()
    >>> r = JobRecord("k3x9q", "train", "me", "local", JobState.RUNNING, t - timedelta(seconds=50), "t.py",
    ...               started=t - timedelta(seconds=42), dask=DaskInfo("20", cluster="c", live_workers=18))
    >>> status_line(r)
    'Job k3x9q RUNNING  workers 18/20  0:42'
    """
    from kbatch_dask.render import workers_cell

    parts = [f"Job {record.id} {record.state.value}"]
    if record.reason:
        parts[0] += f" ({record.reason})"
    if record.dask is not None:
        parts.append(f"workers {workers_cell(record)}")
    seconds = record.elapsed()
    if seconds is None:  # not started yet: how long it has waited
        seconds = (time.time() - record.submitted.timestamp()) if not record.state.is_terminal() else None
    if seconds is not None:
        parts.append(format_duration(seconds))
    return "  ".join(parts)


def end_line(record: JobRecord) -> str:
    """``Job k3x9q SUCCEEDED in 0:42``, with the reason of any other end."""
    seconds = record.elapsed()
    text = f"Job {record.id} {record.state.value}"
    if seconds is not None:
        text += f" in {format_duration(seconds)}"
    if record.state is not JobState.SUCCEEDED:
        code = record.exit_code if record.exit_code is not None else 1
        text += f": {record.reason or f'exit code {code}'}"
    return text


class _Line:
    """One line of a terminal, redrawn in place and cut to the terminal's width."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def draw(self, text: str) -> None:
        width = shutil.get_terminal_size().columns
        # \r and erase-to-end-of-line: a shorter text leaves nothing of the longer one.
        self.stream.write("\r" + text[: max(1, width - 1)] + "\033[K")
        self.stream.flush()

    def clear(self) -> None:
        self.stream.write("\r\033[K")
        self.stream.flush()


def _wait_drawing(job: Any, timeout: float | None, line: _Line) -> JobRecord:
    from kbatch_dask import api

    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        # show_record, not job.refresh: the line shows the live worker count.
        record: JobRecord = api.show_record(job.id, job.record.backend)
        if record.state.is_terminal():
            return record
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"job {job.id} still {record.state.value} after {timeout} s")
        line.draw(status_line(record))
        pause = REDRAW_EVERY if deadline is None else min(REDRAW_EVERY, max(0.0, deadline - time.monotonic()))
        time.sleep(pause)


def exit_with_job(job: Any, timeout: float | None = None) -> NoReturn:
    """Wait for ``job`` to end and exit with its exit code; 130 on Ctrl-C, saying
    that the job keeps running and how to wait for it again."""
    terminal = sys.stderr.isatty()
    line = _Line(sys.stderr)
    try:
        if terminal:
            try:
                record = _wait_drawing(job, timeout, line)
            finally:
                line.clear()
        else:
            job.wait(timeout=timeout)
            record = job.record
    except KeyboardInterrupt:
        click.echo(
            f"Interrupted: job {job.id} keeps running. Wait again with `kbatch wait {job.id}`, "
            f"stop it with `kbatch cancel {job.id}`.",
            err=True,
        )
        sys.exit(130)
    succeeded = record.state is JobState.SUCCEEDED
    if terminal or not succeeded:  # on a pipe, a success goes without saying
        click.echo(end_line(record), err=True)
    code = record.exit_code if record.exit_code is not None else 1
    sys.exit(code if succeeded else (code or 1))
