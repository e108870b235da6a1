"""Processes the user's code leaves behind end with the job, as under Slurm.

The supervisor becomes a child subreaper (Linux ``PR_SET_CHILD_SUBREAPER``)
before it starts the runner, so a process the script starts — a plain child at
a normal end, a ``setsid`` daemon, a grandchild whose parent exited — is
re-parented to the supervisor instead of init, and stays findable as one of its
descendants. When the job ends, every descendant that was not there before the
runner started (the embedded gateway a driver may have started is) gets
SIGTERM, then SIGKILL after a grace, and the supervisor reaps them.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import Callable

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Make orphaned descendants this process's children; False where the OS cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return bool(ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def children_by_parent() -> dict[int, list[int]]:
    """Every process's children, from /proc."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name (in parentheses) may hold spaces: the fields after it are fixed.
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields[0] != "Z":  # a zombie is dead already: reaping it is enough
            tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def descendants(pid: int) -> set[int]:
    tree = children_by_parent()
    found: set[int] = set()
    todo = list(tree.get(pid, []))
    while todo:
        child = todo.pop()
        if child not in found:
            found.add(child)
            todo += tree.get(child, [])
    return found


def resident_memory(pid: int) -> int:
    """Bytes of memory resident for ``pid`` and its descendants (the runner's tree:
    what ``--memory`` limits); pages the processes share count once for each."""
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for each in {pid} | descendants(pid):
        try:
            with open(f"/proc/{each}/statm") as f:
                total += int(f.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue  # it ended meanwhile
    return total


class Leftovers:
    """The supervisor's watch over what the user's code starts."""

    def __init__(self, grace: float = 5.0) -> None:
        self.grace = grace
        self.spared: set[int] = set()
        self.active = False

    def watch(self) -> None:
        """Before the runner starts: become a subreaper, and spare what runs already
        (with all it started)."""
        self.active = become_subreaper()
        self.spared = descendants(os.getpid())

    def _left(self) -> set[int]:
        me = os.getpid()
        tree = children_by_parent()
        spared = set(self.spared)
        todo = [p for p in self.spared]
        while todo:  # what a spared process started is spared too
            for child in tree.get(todo.pop(), []):
                if child not in spared:
                    spared.add(child)
                    todo.append(child)
        return descendants(me) - spared

    def only(self, pid: int) -> bool:
        """Nothing the job started runs but the process ``pid`` itself."""
        return self._left() <= {pid}

    def end(self, log: Callable[[str], None]) -> int:
        """SIGTERM what the job left running, SIGKILL it after the grace; how many there were."""
        if not self.active:
            return 0
        left = self._left()
        if not left:
            return 0
        log(f"stopping {len(left)} process(es) the job left running: {', '.join(map(str, sorted(left)))}")
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        while time.monotonic() < deadline:
            _reap()
            if not (left & self._left()):
                return len(left)
            time.sleep(0.05)
        for pid in left & self._left():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
        _reap()
        return len(left)


def _reap() -> None:
    """Collect exited children (the orphans re-parented here), so none stays a zombie."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
