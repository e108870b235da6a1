"""Small process helpers shared by the local backend, the embedded gateway and the driver."""

from __future__ import annotations

import contextlib
import os

# ``python -m MODULE``, less the directory it starts in at the head of sys.path (what
# ``python -P`` does, on every Python): the runner and a Kubernetes job's driver start
# in the job's working directory, where a user's copy.py or json.py would be what their
# own imports import. (A user's script gets its own directory first, as it would alone.)
_RUN_MODULE = (
    "import sys\n"
    "if not getattr(sys.flags, 'safe_path', False): del sys.path[0]\n"
    "import runpy; runpy.run_module({module!r}, run_name='__main__', alter_sys=True)"
)


def python_m(python: str, module: str) -> list[str]:
    """The command that runs ``module`` as ``python -m`` does (its arguments to follow), but
    without the directory it starts in on ``sys.path``.

    >>> python_m("python", "kbatch_dask.driver")[:2]
    ['python', '-c']
    """
    return [python, "-c", _RUN_MODULE.format(module=module)]


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
