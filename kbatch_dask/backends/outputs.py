"""A job's output and error files: whether they can be written (checked at
submit where the backend can), and reading them for ``kbatch logs`` in bounded
memory, however big they grow: in chunks, ``--tail`` by seeking from the end,
``--follow`` by polling for what was appended.

Logs are bytes from the file to whoever prints them, never decoded on the way
(``kbatch logs`` writes them to stdout as they are, a byte that is not UTF-8
included); a caller that needs text decodes at its edge with :func:`decoded`.
"""

from __future__ import annotations

import codecs
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import BinaryIO, Literal

from kbatch_dask.errors import BackendError, BadInput

LogStream = Literal["output", "error", "all"]
LOG_STREAMS: tuple[LogStream, ...] = ("output", "error", "all")
CHUNK = 1 << 20  # bytes read (and printed) at a time
POLL = 0.25  # seconds between looks at a followed file


def check_writable(option: str, path: str) -> None:
    """Refuse (BadInput) an output file the job could not open for appending:
    a directory, a folder that cannot be made, no permission to write."""
    if os.path.isdir(path):
        raise BadInput(f"{option} {path}: is a directory; name a file in it, e.g. {os.path.join(path, '%x-%j.out')}")
    if os.path.exists(path):
        if not os.access(path, os.W_OK):
            raise BadInput(f"{option} {path}: no permission to write it")
        return
    # The driver makes missing folders: the nearest existing one must let it.
    folder = os.path.dirname(path)
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        raise BadInput(f"{option} {path}: {folder} is not a directory")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise BadInput(f"{option} {path}: no permission to write in {folder}")


def tail_offset(f: BinaryIO, lines: int) -> int:
    """Where the last ``lines`` lines of ``f`` start, found by reading backwards
    from its end one chunk at a time (a final newline ends the last line)."""
    end = f.seek(0, os.SEEK_END)
    if lines <= 0:
        return end
    pos = end
    while pos > 0:
        size = min(CHUNK, pos)
        pos -= size
        f.seek(pos)
        block = f.read(size)
        if pos + size == end and block.endswith(b"\n"):
            block = block[:-1]
        i = len(block)
        while (i := block.rfind(b"\n", 0, i)) >= 0:
            lines -= 1
            if lines == 0:
                return pos + i + 1
    return 0


class _Source:
    """One file being read: where the next read starts."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.offset: int | None = None  # None until the file was first opened

    def read_new(self, tail: int | None) -> Iterator[bytes]:
        """What was appended since the last read, in chunks (from the last ``tail``
        lines on the first read); nothing while the file does not exist."""
        try:
            with open(self.path, "rb", buffering=0) as f:  # reads of CHUNK need no buffer of their own
                if self.offset is None:
                    self.offset = tail_offset(f, tail) if tail is not None else 0
                f.seek(self.offset)
                while chunk := f.read(CHUNK):
                    self.offset += len(chunk)
                    yield chunk
        except FileNotFoundError:
            return  # not written yet
        except OSError as exc:  # a directory, no permission: say so, not an unexpected error
            raise BackendError(f"cannot read {self.path}: {exc.strerror}") from None


def read_whole(path: str | None) -> bytes | None:
    """The file's content; None without a path or a file (a function that never returned)."""
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def read_files(
    paths: Sequence[str],
    *,
    tail: int | None = None,
    follow: bool = False,
    ended: Callable[[], bool] = lambda: True,
    poll: float = POLL,
) -> Iterator[bytes]:
    """The contents of ``paths``, in chunks; several are labelled as ``tail`` labels
    them (``==> path <==``), again whenever the output switches files. With
    ``follow``, what is appended is read until ``ended()`` says the job has ended
    (everything written before that is read)."""
    sources = [_Source(p) for p in paths]
    current: _Source | None = None
    while True:
        done = ended() if follow else True
        for source in sources:
            for chunk in source.read_new(tail):
                if len(sources) > 1 and source is not current:
                    yield label(source.path, first=current is None)
                    current = source
                yield chunk
        if done:
            return
        time.sleep(poll)


def label(path: str, *, first: bool) -> bytes:
    """The line naming ``path`` above its part of several files' output, as ``tail`` prints it."""
    return (b"" if first else b"\n") + b"==> " + os.fsencode(path) + b" <==\n"


def decoded(chunks: Iterable[bytes]) -> Iterator[str]:
    """Log chunks as text, for a caller that needs text: UTF-8, a character split across
    chunks decoded whole, a byte that is not UTF-8 as U+FFFD."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for chunk in chunks:
        if text := decoder.decode(chunk):
            yield text
    if rest := decoder.decode(b"", final=True):
        yield rest


def log_files(job_id: str, output: str | None, error: str | None, stream: LogStream) -> list[str]:
    """The files ``stream`` of a job reads: its output, its error file, or both.
    A job without an error file of its own has its stderr in its output."""
    separate = error if error and error != output else None
    if stream == "error":
        if separate is None:
            raise BadInput(f"job {job_id} has no error file (-e): its stderr is in its output")
        return [separate]
    return [p for p in (output, separate if stream == "all" else None) if p]
