"""What ``kbatch show`` shows of a job, on the terminal and on the page of
``kbatch ui``: its record joined with its cluster's live state, and its report
where its backend keeps it (beside the output, or in the kbatch-dask service)."""

from __future__ import annotations

from typing import Any

from kbatch_dask import api, settings
from kbatch_dask.backends import get_backend
from kbatch_dask.records import JobRecord
from kbatch_dask.report import JobReport, find


def shown(job_id: str, backend: str | None = None) -> tuple[JobRecord, JobReport | None]:
    """The job's record and its report (None when it has none, yet)."""
    config = settings.load()
    record = api.show_record(job_id, backend)
    saved = get_backend(backend or config.backend, config).report(record)
    return record, find(record, saved, config.report)


def shown_json(record: JobRecord, found: JobReport | None) -> dict[str, Any]:
    """``kbatch show -o json``: the record's JSON and a ``report`` field, the object
    ``kbatch report -o json`` prints (None without a report)."""
    return {**record.to_dict(), "report": found.to_dict() if found else None}
