"""kbatch-dask: batch jobs with their own Dask-Gateway cluster, for JupyterHub users.

>>> from kbatch_dask import submit
>>> job = submit("train.py", dask_workers=4)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import Job, get_job, jobs, submit, submit_with_cluster
    from .errors import BadInput, JobNotFound, KbatchError
    from .records import JobRecord, JobState
    from .session import get_client, get_cluster

__all__ = [
    "BadInput",
    "Job",
    "JobNotFound",
    "JobRecord",
    "JobState",
    "KbatchError",
    "get_client",
    "get_cluster",
    "get_job",
    "jobs",
    "submit",
    "submit_with_cluster",
]

_LAZY = {
    "Job": "api",
    "get_job": "api",
    "jobs": "api",
    "submit": "api",
    "submit_with_cluster": "api",
    "get_client": "session",
    "get_cluster": "session",
    "BadInput": "errors",
    "JobNotFound": "errors",
    "KbatchError": "errors",
    "JobRecord": "records",
    "JobState": "records",
}


def __getattr__(name: str) -> Any:
    # Imported on first use, so `import kbatch_dask` (and the CLI) stays fast.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
