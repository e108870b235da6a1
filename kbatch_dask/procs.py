"""Small process helpers shared by the local backend, the embedded gateway and the driver."""

from __future__ import annotations

import contextlib
import os


def pid_alive(pid: int) -> bool:
    """True if ``pid`` runs and is not a zombie (exited, but not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def killpg(pid: int, sig: int) -> None:
    """Signal the process group led by ``pid``; a group that is gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
