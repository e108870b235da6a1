"""File helpers shared by the local state, the embedded gateway and the runner:
crash-safe writes and exclusive locks between processes."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator


def write_atomic(path: str, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` so readers see either the old or the new file, never half of
    one (temp file in the same directory, fsync, rename); ``mode`` for a new file."""
    tmp = f"{path}.{os.getpid()}.{os.urandom(3).hex()}.tmp"  # not secrets: it imports hmac, OpenSSL
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def locked(path: str) -> Iterator[None]:
    """Hold an exclusive lock on the lock file ``path`` (created if missing)."""
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
