"""The script a job runs, as submit reads it: a regular file of UTF-8 text, bounded.

A FIFO would block submit and ``/dev/zero`` would fill its memory, so anything
but a regular file of at most :data:`MAX_SCRIPT_BYTES` is refused, with a
:class:`~kbatch_dask.errors.BadInput` saying why.
"""

from __future__ import annotations

import os
import stat

from kbatch_dask.errors import BadInput

# Far above any script or notebook (a Kubernetes job's must fit a 1 MiB ConfigMap
# anyway): the bound on what submit reads, should the "script" be data.
MAX_SCRIPT_BYTES = 64 * 2**20
_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def read_script(path: str) -> str:
    """The text of a script to submit, or a BadInput saying why it cannot be one."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer before it is refused.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise BadInput(f"script {path!r}: no such file") from None
    except OSError as exc:
        raise BadInput(f"script {path!r}: cannot be read ({exc.strerror})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = next((what for is_kind, what in _FILE_KINDS if is_kind(mode)), "not a regular file")
        raise BadInput(f"script {path!r}: is {kind}, expected a regular file")
    with os.fdopen(fd, "rb") as f:
        try:
            data = f.read(MAX_SCRIPT_BYTES + 1)  # bounded even where st_size says 0 (/proc)
        except OSError as exc:
            raise BadInput(f"script {path!r}: cannot be read ({exc.strerror})") from None
    if len(data) > MAX_SCRIPT_BYTES:
        raise BadInput(f"script {path!r}: a script may be at most {MAX_SCRIPT_BYTES // 2**20} MiB; is it data?")
    if not data.strip():
        raise BadInput(f"script {path!r}: is empty")
    if b"\0" in data[:8192]:
        raise BadInput(f"script {path!r}: is a binary file, expected a script")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(f"script {path!r}: is not UTF-8 text") from None
