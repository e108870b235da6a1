"""A job's output printed by ``kbatch logs``: its bytes to stdout as the backend
reads them, never decoded (a byte that is not UTF-8 is printed as it is), each
chunk flushed as it comes (``-f``). Where stdout is not a terminal, colour codes
are dropped, as ``click.echo`` drops them. A pipe gets a buffer of a chunk's size
(:func:`widen_pipe`).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from typing import BinaryIO

from kbatch_dask.backends.outputs import CHUNK

# click's own pattern (click._compat._ansi_re), over bytes.
_COLOUR = re.compile(rb"\x1b\[[;?0-9]*[a-zA-Z]")
_UNFINISHED = re.compile(rb"\x1b(\[[;?0-9]*)?\Z")  # a code the next chunk may finish


def print_chunks(chunks: Iterable[bytes], out: BinaryIO) -> None:
    """Write ``chunks`` to ``out``, flushing each; without colour codes unless ``out`` is a terminal."""
    strip = not out.isatty()
    widen_pipe(out)
    held = b""  # the start of a colour code cut by the end of the last chunk
    for chunk in chunks:
        if strip and (held or b"\x1b" in chunk):
            chunk = held + chunk
            cut = _UNFINISHED.search(chunk)
            held, chunk = (chunk[cut.start() :], chunk[: cut.start()]) if cut else (b"", chunk)
            chunk = _COLOUR.sub(b"", chunk)
        out.write(chunk)
        out.flush()
    if held:
        out.write(held)
        out.flush()


def widen_pipe(out: BinaryIO, size: int = CHUNK) -> None:
    """Give ``out``, if it is a pipe, a buffer of ``size`` bytes (Linux; 1 MiB is the most an
    unprivileged process may have, by default) instead of 64 KiB: a big output then passes
    in a sixteenth of the writes and the reader's wake-ups (about twice the rate here).
    A pipe's bigger buffer is kept; nothing happens anywhere else, or where the system refuses."""
    try:
        import fcntl

        fd = out.fileno()
        if stat.S_ISFIFO(os.fstat(fd).st_mode) and fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ) < size:
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)
    except (AttributeError, ImportError, OSError, ValueError):
        return  # not a file (io.UnsupportedOperation is an OSError), not Linux, or over the user's limit
