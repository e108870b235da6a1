"""What a service job's driver uploads before it reports the end: the function
job's pickled result, the job's output and error files, and its report's
summary (``kbatch-%j.report.json``, :mod:`.metering`), each within the
service's limits (the job's Secret holds them:
:data:`~kbatch_dask.backends.hub.protocol.MAX_LOG_BYTES_VAR` and
:data:`~kbatch_dask.backends.hub.protocol.MAX_RESULT_BYTES_VAR`). The service
serves an ended job's result and logs from these alone: it sees no user's volume.

A file over the limit is uploaded as its tail, whole lines, under a line that
says how many bytes of its head were cut. A job whose output file is not on a
volume (the pod writes none) uploads the tail of what it echoed to its pod's
log instead (:class:`KeptTail`): pods and their logs go, the archive stays.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from kbatch_dask.backends.hub.protocol import MAX_LOG_BYTES_VAR, MAX_RESULT_BYTES_VAR
from kbatch_dask.settings import ServiceArchive

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

CUT = "kbatch: the first {cut} bytes were cut (kbatch.service.archive.max-log-bytes {limit})\n"


@dataclass(frozen=True)
class Uploads:
    """The job's files to upload (None: it has none) and the service's limits."""

    output: str | None
    error: str | None  # only an error file of its own (-e), not the output's
    result: str | None  # a function job's
    max_log_bytes: int
    max_result_bytes: int
    echoed: KeptTail | None = None  # the pod log's tail: the output of a job without an output file
    report: str | None = None  # the job report's summary, once the driver wrote it (None: not metered)

    @classmethod
    def of(
        cls,
        output: str | None,
        error: str | None,
        result: str | None,
        environ: Mapping[str, str],
        defaults: ServiceArchive,
        echoed: KeptTail | None = None,
    ) -> Uploads:
        """The job's files, with the limits the service put in the job's environment
        (``defaults``, this image's settings, for a service that did not)."""
        return cls(
            output=output,
            error=error if error != output else None,
            result=result,
            max_log_bytes=int(environ.get(MAX_LOG_BYTES_VAR) or defaults.max_log_bytes),
            max_result_bytes=int(environ.get(MAX_RESULT_BYTES_VAR) or defaults.max_result_bytes),
            echoed=None if output else echoed,
        )

    def output_tail(self, limit: int) -> bytes | None:
        """The output to upload: its file's tail, else what the job echoed to its pod log."""
        if self.output or self.echoed is None:
            return capped_tail(self.output, limit, self.max_log_bytes)
        return self.echoed.capped(limit, self.max_log_bytes)


class KeptTail(io.BytesIO):
    """A writable stream that passes everything on to ``echo`` (the pod's log) and
    keeps the last ``limit`` bytes or more of it; the job's two output streams
    write to it from a thread each.

    >>> import io as _io
    >>> kept = KeptTail(_io.BytesIO(), 100)
    >>> for i in range(50):
    ...     _ = kept.write(b"line %02d\\n" % i)
    >>> kept.capped(100, 100).decode().splitlines()[:2]
    ['kbatch: the first 384 bytes were cut (kbatch.service.archive.max-log-bytes 100)', 'line 48']
    """

    def __init__(self, echo: IO[bytes], limit: int) -> None:
        super().__init__()
        self._echo = echo
        self._limit = limit
        self._kept = bytearray()
        self._total = 0
        self._lock = threading.Lock()

    def write(self, data: ReadableBuffer) -> int:
        written = self._echo.write(data)
        with self._lock:
            self._kept += data
            self._total += len(memoryview(data))
            if len(self._kept) > 2 * self._limit:  # trimmed now and then, not at every write
                del self._kept[: len(self._kept) - self._limit]
        return written

    def flush(self) -> None:
        self._echo.flush()

    def capped(self, limit: int, shown_limit: int) -> bytes:
        """What was written, within ``limit`` bytes as :func:`capped_tail` cuts a file."""
        with self._lock:
            kept, total = bytes(self._kept), self._total
        return kept if total <= limit else _cut(kept, total, limit, shown_limit)


def capped_tail(path: str | None, limit: int, shown_limit: int | None = None) -> bytes | None:
    """The file, or, when it is over ``limit`` bytes, its tail from the first whole
    line on, under the line :data:`CUT` (the whole at most ``limit`` bytes); None
    without a path or a file. ``shown_limit``: the limit the line names.

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile(delete=False) as f:
    ...     _ = f.write(b"".join(b"line %03d\\n" % i for i in range(100)))
    >>> capped_tail(f.name, 120).decode().splitlines()[:2]
    ['kbatch: the first 864 bytes were cut (kbatch.service.archive.max-log-bytes 120)', 'line 096']
    >>> os.unlink(f.name)
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
            f.seek(max(0, size - limit))
            data = f.read(limit)
    except FileNotFoundError:
        return None
    return _cut(data, size, limit, shown)


def _cut(tail: bytes, total: int, limit: int, shown: int) -> bytes:
    """The end of ``tail`` (the last bytes of ``total``), from its first whole line on,
    under the line :data:`CUT`: at most ``limit`` bytes in all."""
    keep = max(0, limit - len(CUT.format(cut=total, limit=shown)))  # the line is never longer than this
    data = tail[len(tail) - keep :] if keep else b""
    newline = data.find(b"\n")
    if 0 <= newline < len(data) - 1:  # start at a line, where the tail holds more than one
        data = data[newline + 1 :]
    return CUT.format(cut=total - len(data), limit=shown).encode() + data
