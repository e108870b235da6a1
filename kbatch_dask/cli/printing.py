"""A job's output printed by ``kbatch logs``: its bytes to stdout as the backend
reads them, never decoded (a byte that is not UTF-8 is printed as it is), each
chunk flushed as it comes (``-f``). Where stdout is not a terminal, colour codes
are dropped, as ``click.echo`` drops them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import BinaryIO

# click's own pattern (click._compat._ansi_re), over bytes.
_COLOUR = re.compile(rb"\x1b\[[;?0-9]*[a-zA-Z]")
_UNFINISHED = re.compile(rb"\x1b(\[[;?0-9]*)?\Z")  # a code the next chunk may finish


def print_chunks(chunks: Iterable[bytes], out: BinaryIO) -> None:
    """Write ``chunks`` to ``out``, flushing each; without colour codes unless ``out`` is a terminal."""
    strip = not out.isatty()
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
