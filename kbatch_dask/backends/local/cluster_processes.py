"""The processes of the embedded gateway's clusters, found without the gateway.

The embedded gateway runs each cluster's scheduler and workers as local
processes, each in the cluster's own folder ``<home>/gateway/clusters/<name>``
(their working directory). A gateway killed outright leaves them running with
nobody to ask about them; ``kbatch gc`` finds them by that folder and ends them.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable
from typing import Any


def find(clusters_dir: str) -> dict[str, list[Any]]:
    """The live processes (``psutil.Process``) working in a folder under
    ``clusters_dir``, by cluster name (the folder's name)."""
    import psutil

    root = os.path.realpath(clusters_dir)
    found: dict[str, list[Any]] = {}
    for proc in psutil.process_iter():
        try:
            cwd = proc.cwd()
        except (psutil.Error, OSError):  # gone, a zombie, or another user's
            continue
        where = os.path.relpath(cwd, root) if cwd else ".."  # psutil says "" when it cannot tell
        if where != "." and not where.startswith(".."):
            found.setdefault(where.split(os.sep)[0], []).append(proc)
    return found


def end(processes: Iterable[Any], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL what still runs after ``timeout`` seconds (a scheduler
    closes its workers on SIGTERM). psutil refuses to signal a pid reused since."""
    import psutil

    procs = list(processes)
    for method, wait in (("terminate", timeout), ("kill", 5.0)):
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                getattr(proc, method)()
        deadline = time.monotonic() + wait
        while (procs := [p for p in procs if _running(p)]) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not procs:
            return


def _running(proc: Any) -> bool:
    """Running, and not a zombie: an exited process nobody reaped (its parent, the
    killed gateway, is gone) has ended."""
    import psutil

    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False
