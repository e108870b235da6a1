"""Turning job records into text: tables (slurm-style), JSON and YAML. Pure."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from kbatch_dask.formats import format_duration, format_size
from kbatch_dask.records import JobRecord

TABLE_COLUMNS = ("JOBID", "NAME", "STATE", "TIME", "WORKERS", "DASHBOARD")
WIDE_COLUMNS = (
    "JOBID", "NAME", "USER", "STATE", "SUBMITTED", "TIME", "TIME_LIMIT", "WORKERS",
    "REASON/EXIT", "CLUSTER", "DASHBOARD", "OUTPUT",
)  # fmt: skip
HISTORY_COLUMNS = (
    "JOBID", "NAME", "STATE", "SUBMITTED", "START", "END", "ELAPSED", "EXIT", "CPUS", "MEMORY", "GPUS", "WORKERS",
)  # fmt: skip
MAX_NAME = 24


def workers_cell(record: JobRecord) -> str:
    """``live/requested``: ``2/2``, ``3/2-20``; ``?`` when the live count is unknown;
    what the gateway allows when it capped the request: ``8/8 (capped from 20)``.

    >>> from kbatch_dask.records import DaskInfo, JobState, now
    >>> r = JobRecord("a", "n", "u", "local", JobState.RUNNING, now(), "s", dask=DaskInfo("2:20", live_workers=3))
    >>> workers_cell(r), workers_cell(r.replace(dask=DaskInfo("2:20", live_workers=3, worker_limit=8)))
    ('3/2-20', '3/2-8 (capped from 2-20)')
    """
    d = record.dask
    if d is None:
        return "-"
    requested = d.workers.replace(":", "-")
    if d.worker_limit is not None:
        granted = "-".join(str(min(int(n), d.worker_limit)) for n in d.workers.split(":"))
        requested = f"{granted} (capped from {requested})"
    if record.state.is_terminal() or (d.cluster_status is not None and not d.cluster_status.is_active()):
        live = "0" if d.cluster_status else "-"
    elif d.live_workers is None:
        live = "?"
    else:
        live = str(d.live_workers)
    return f"{live}/{requested}"


def time_limit_cell(seconds: int | None) -> str:
    """A time limit as slurm shows it: ``45:00``, ``UNLIMITED`` without one.

    >>> time_limit_cell(2700), time_limit_cell(None)
    ('45:00', 'UNLIMITED')
    """
    return format_duration(seconds) if seconds else "UNLIMITED"


def _reason(record: JobRecord) -> str:
    if record.reason:
        return record.reason
    if record.exit_code is not None:
        return f"exit code {record.exit_code}"
    return ""


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _row(record: JobRecord, wide: bool, at: datetime | None) -> list[str]:
    d = record.dask
    dashboard = (d.dashboard or "") if d and record.state.value in ("RUNNING", "PENDING") else ""
    if wide:
        return [
            record.id,
            record.name,
            record.user,
            record.state.value,
            record.submitted.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
            format_duration(record.elapsed(at)),
            time_limit_cell(record.time_limit),
            workers_cell(record),
            _reason(record),
            (d.cluster or "") if d else "",
            (d.dashboard or "") if d else "",
            record.output or "",
        ]
    return [
        record.id,
        _short(record.name, MAX_NAME),
        record.state.value,
        format_duration(record.elapsed(at)),
        workers_cell(record),
        dashboard,
    ]


def table(records: Sequence[JobRecord], wide: bool = False, at: datetime | None = None) -> str:
    """Aligned columns, header first; the last column is not padded."""
    header = list(WIDE_COLUMNS if wide else TABLE_COLUMNS)
    return _aligned([header] + [_row(r, wide, at) for r in records])


def _when(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%dT%H:%M:%S") if value else "-"


def history_table(records: Sequence[JobRecord], at: datetime | None = None) -> str:
    """``kbatch history``'s columns (sacct's, with the Dask workers), lined up as the queue's."""
    rows = [list(HISTORY_COLUMNS)]
    for r in records:
        rows.append(
            [
                r.id,
                _short(r.name, MAX_NAME),
                r.state.value,
                _when(r.submitted),
                _when(r.started),
                _when(r.finished),
                format_duration(r.elapsed(at)) or "-",
                "-" if r.exit_code is None else str(r.exit_code),
                "-" if r.cpus is None else f"{r.cpus:g}",
                "-" if r.memory is None else format_size(r.memory),
                "-" if r.gpus is None else str(r.gpus),
                workers_cell(r).split("/", 1)[-1],
            ]
        )
    return _aligned(rows)


def _aligned(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=False)] + [row[-1]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def show(record: JobRecord, report: str | None = None) -> str:
    """One job, one field per line (the JSON's fields; the time limit and the
    workers' memory in the units they are given in); ``report``: the job report's line."""
    data = record.to_dict()
    data["time_limit"] = time_limit_cell(record.time_limit)
    dask = data.pop("dask") or {}
    if dask.get("worker_memory"):
        dask["worker_memory"] = format_size(dask["worker_memory"])
    lines = [(k, v) for k, v in data.items()]
    lines += [(f"dask.{k}", v) for k, v in dask.items()]
    lines += [("report", report)] if report else []
    width = max(len(k) for k, _ in lines)
    return "\n".join(f"{k.ljust(width)}  {_plain(v)}" for k, v in lines)


def _plain(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return " ".join(str(v) for v in value) or "-"
    return str(value)


def to_json(data: object) -> str:
    return json.dumps(data, indent=2)


def to_yaml(data: object) -> str:
    import yaml

    return str(yaml.safe_dump(data, sort_keys=False, default_flow_style=False)).rstrip("\n")
