"""kbatch-dask: batch jobs with their own Dask-Gateway cluster, for JupyterHub users.

>>> from kbatch_dask import submit
>>> job = submit("train.py", dask_workers=4)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kbatch_dask.api import get_job, jobs, submit, submit_with_cluster
    from kbatch_dask.driver.session import get_client, get_cluster
    from kbatch_dask.errors import BadInput, JobNotFound, KbatchError
    from kbatch_dask.job import Job
    from kbatch_dask.records import JobRecord, JobState

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
    "Job": "job",
    "get_job": "api",
    "jobs": "api",
    "submit": "api",
    "submit_with_cluster": "api",
    "get_client": "driver.session",
    "get_cluster": "driver.session",
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
