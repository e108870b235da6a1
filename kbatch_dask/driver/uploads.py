"""What a service job's driver uploads before it reports the end: the function
job's pickled result, and the job's output and error files, each within the
service's limits (the job's Secret holds them:
:data:`~kbatch_dask.backends.hub.protocol.MAX_LOG_BYTES_VAR` and
:data:`~kbatch_dask.backends.hub.protocol.MAX_RESULT_BYTES_VAR`). The service
serves an ended job's result and logs from these alone: it sees no user's volume.

A file over the limit is uploaded as its tail, whole lines, under a line that
says how many bytes of its head were cut.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from kbatch_dask.backends.hub.protocol import MAX_LOG_BYTES_VAR, MAX_RESULT_BYTES_VAR
from kbatch_dask.settings import ServiceArchive

CUT = "kbatch: the first {cut} bytes were cut (kbatch.service.archive.max-log-bytes {limit})\n"


@dataclass(frozen=True)
class Uploads:
    """The job's files to upload (None: it has none) and the service's limits."""

    output: str | None
    error: str | None  # only an error file of its own (-e), not the output's
    result: str | None  # a function job's
    max_log_bytes: int
    max_result_bytes: int

    @classmethod
    def of(
        cls,
        output: str | None,
        error: str | None,
        result: str | None,
        environ: Mapping[str, str],
        defaults: ServiceArchive,
    ) -> Uploads:
        """The job's files, with the limits the service put in the job's environment
        (``defaults``, this image's settings, for a service that did not)."""
        return cls(
            output=output,
            error=error if error != output else None,
            result=result,
            max_log_bytes=int(environ.get(MAX_LOG_BYTES_VAR) or defaults.max_log_bytes),
            max_result_bytes=int(environ.get(MAX_RESULT_BYTES_VAR) or defaults.max_result_bytes),
        )


def read_whole(path: str | None) -> bytes | None:
    """The file's content; None without a path or a file (a function that never returned)."""
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def capped_tail(path: str | None, limit: int, shown_limit: int | None = None) -> bytes | None:
    """The file, or, when it is over ``limit`` bytes, its tail from the first whole
    line on, under the line :data:`CUT` (the whole at most ``limit`` bytes); None
    without a path or a file. ``shown_limit``: the limit the line names.

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile(delete=False) as f:
    ...     _ = f.write(b"".join(b"line %03d\\n" % i for i in range(100)))
    >>> capped_tail(f.name, 120).decode().splitlines()[:2]
    ['kbatch: the first 864 bytes were cut (kbatch.service.archive.max-log-bytes 120)', 'line 096']
    """
    if not path:
        return None
    shown = limit if shown_limit is None else shown_limit
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            if size <= limit:
                f.seek(0)
                return f.read()
            keep = max(0, limit - len(CUT.format(cut=size, limit=shown)))  # the line is never longer than this
            f.seek(size - keep)
            data = f.read(keep)
    except FileNotFoundError:
        return None
    newline = data.find(b"\n")
    if 0 <= newline < len(data) - 1:  # start at a line, where the tail holds more than one
        data = data[newline + 1 :]
    return CUT.format(cut=size - len(data), limit=shown).encode() + data
