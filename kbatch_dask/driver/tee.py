"""The job's output files: opened for appending, with kbatch's own notes, and a
file that copies what is written to it to two places, like ``tee``.

In a pod, a job's output goes to the pod's log (what ``kubectl logs`` and
``kbatch logs`` read) and, when its output file lies on a volume, also to that
file. The runner process gets the :class:`Tee` as its stdout; a thread copies
the pipe behind it.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
from typing import IO

JOIN_TIMEOUT = 5.0  # a process the script left behind may hold the pipe open


class Tee(io.FileIO):
    """The writing end of a pipe; everything written to it, by this process
    or by a child that has it as stdout, is copied to ``file`` (if any) and
    ``echo``. Closing it waits for the copy and closes ``file``.

    >>> import io as _io
    >>> echo = _io.BytesIO()
    >>> with Tee(None, echo) as tee:
    ...     _ = tee.write(b"hello\\n")
    >>> echo.getvalue()
    b'hello\\n'
    """

    def __init__(self, file: IO[bytes] | None, echo: IO[bytes]) -> None:
        read_fd, write_fd = os.pipe()
        super().__init__(write_fd, "wb", closefd=True)
        self._file = file
        self._targets = [t for t in (file, echo) if t is not None]
        self._thread = threading.Thread(target=self._copy, args=(read_fd,), name="kbatch-tee", daemon=True)
        self._thread.start()

    def _copy(self, read_fd: int) -> None:
        with open(read_fd, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                for target in self._targets:
                    with contextlib.suppress(OSError, ValueError):
                        target.write(chunk)
                        target.flush()

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        self._thread.join(JOIN_TIMEOUT)
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()


class OutputUnwritable(Exception):
    """The job's output or error file cannot be opened: the job fails, saying why."""


def open_append(path: str | None, what: str) -> IO[bytes] | None:
    """The job's output (or error) file opened for appending; OutputUnwritable if it cannot be."""
    if not path:
        return None
    try:
        try:
            return open(path, "ab", buffering=0)
        except FileNotFoundError:  # a missing folder is made (where slurm would fail the job)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            return open(path, "ab", buffering=0)
    except OSError as exc:
        raise OutputUnwritable(f"cannot write the {what} file {path}: {exc.strerror or exc}") from None


def note(f: IO[bytes] | None, line: str) -> None:
    """A line from kbatch itself in the job's output, like slurmstepd's."""
    if f is None:
        return
    with contextlib.suppress(OSError, ValueError):
        f.write(f"{line}\n".encode())


def open_outputs(
    output: str | None, error: str | None, echo: IO[bytes] | None
) -> tuple[IO[bytes] | None, IO[bytes] | None]:
    """A job's output and error files, opened for appending (OutputUnwritable if one cannot be),
    each also written to ``echo`` when given."""
    out = open_append(output, "output")
    try:
        err = open_append(error, "error") if error and error != output else None
    except OutputUnwritable:
        if out is not None:
            out.close()
        raise
    if echo is not None:
        out, err = Tee(out, echo), Tee(err, echo) if err else None
    return out, err
