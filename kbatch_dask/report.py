"""What did my job cost? The job's report (Slurm's ``seff``), built from its
scheduler's own view.

The job's driver writes ``kbatch-%j.report.json`` beside the job's output file
as the job ends (:mod:`kbatch_dask.driver.metering`, from the
:mod:`kbatch_dask.driver.meter` plugin on the scheduler); a job of the
kbatch-dask service also uploads it to the service (``PUT /jobs/{id}/report``),
which serves it from its archive. Each backend finds what was saved
(:class:`Saved`, ``Backend.report``); this module reads it with the job's
record and derives what a user asks: the wall time, how long
the cluster took to get its first worker, the worker-seconds, the CPU
efficiency (task compute-seconds / worker thread-seconds), the memory
efficiency (a worker's peak memory / its limit), spill, the task prefixes that
took the time, a cost estimate when the admin set prices (``kbatch.report``)
and a hint when the job asked for more than it used::

    >>> r = JobReport(job="k3x9q", state="SUCCEEDED", wall_seconds=60.0, cluster_wait_seconds=5.0,
    ...     workers={"peak": 20, "mean": 20.0, "seconds": 1100.0, "threads_peak": 20, "thread_seconds": 1100.0,
    ...              "memory_limit_byte_seconds": 0.0},
    ...     tasks={"count": 400, "erred": 0, "compute_seconds": 170.0, "prefixes": []},
    ...     memory={"peak_bytes": 2**29, "limit_bytes": 2**30, "spill_written_bytes": 0}, transfer_bytes=0,
    ...     metered_seconds=55.0)
    >>> r.hints()
    ['mean 3.1 of 20 workers busy: try --dask-workers 3:20']
"""

from __future__ import annotations

import html
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

from kbatch_dask.errors import BadInput, KbatchError
from kbatch_dask.formats import format_duration
from kbatch_dask.records import JobRecord
from kbatch_dask.settings import Report as Prices

LOW_CPU_EFFICIENCY = 0.5  # below it, the hint suggests fewer (or adaptive) workers
LOW_MEMORY_EFFICIENCY = 0.25  # below it, the hint suggests less memory per worker
GIB = 2**30
# What of the meter's summary is read as a number (summary_of checks an upload for them).
SUMMARY_NUMBERS = (
    "collected",
    "metered_from",
    "workers.peak",
    "workers.mean",
    "workers.seconds",
    "workers.threads_peak",
    "workers.thread_seconds",
    "tasks.count",
    "tasks.erred",
    "tasks.compute_seconds",
    "memory.peak_bytes",
)


def report_paths(output: str | None, job_id: str) -> tuple[str, str] | None:
    """The JSON and HTML reports of job ``job_id``, beside its output file; None without one.

    >>> report_paths("/home/a/out/train-7.log", "k3x9q")
    ('/home/a/out/kbatch-k3x9q.report.json', '/home/a/out/kbatch-k3x9q.report.html')
    """
    if not output:
        return None
    folder = os.path.dirname(output)
    return os.path.join(folder, f"kbatch-{job_id}.report.json"), os.path.join(folder, f"kbatch-{job_id}.report.html")


@dataclass(frozen=True)
class JobReport:
    job: str
    state: str
    wall_seconds: float | None
    cluster_wait_seconds: float | None
    workers: dict[str, Any]
    tasks: dict[str, Any]
    memory: dict[str, Any]
    transfer_bytes: int
    metered_seconds: float  # the scheduler's view: from the meter's start to the report
    html: str | None = None  # Dask's performance report, when written
    prices: Prices | None = field(default=None, repr=False)

    # -- derived ---------------------------------------------------------------

    @property
    def cpu_efficiency(self) -> float | None:
        threads = float(self.workers.get("thread_seconds") or 0)
        return float(self.tasks["compute_seconds"]) / threads if threads else None

    @property
    def memory_efficiency(self) -> float | None:
        limit = self.memory.get("limit_bytes")
        return int(self.memory["peak_bytes"]) / limit if limit else None

    def busy_workers(self) -> float | None:
        """Workers busy on average over the cluster's life (compute-seconds spread over it)."""
        threads, peak = self.workers.get("threads_peak") or 0, self.workers.get("peak") or 0
        if not threads or not self.metered_seconds:
            return None
        return float(self.tasks["compute_seconds"]) / self.metered_seconds * peak / threads

    def cost(self) -> dict[str, Any] | None:
        """Core-hours and GiB-hours the workers held, priced; None when no price is set."""
        prices = self.prices
        if prices is None or (prices.core_hour_price is None and prices.gb_hour_price is None):
            return None
        core_hours = float(self.workers.get("thread_seconds") or 0) / 3600
        gib_hours = float(self.workers.get("memory_limit_byte_seconds") or 0) / GIB / 3600
        total = core_hours * (prices.core_hour_price or 0) + gib_hours * (prices.gb_hour_price or 0)
        return {"core_hours": core_hours, "gib_hours": gib_hours, "total": total, "currency": prices.currency}

    def hints(self) -> list[str]:
        """What to ask for next time, when the job used much less than it asked for."""
        out = []
        busy, peak, efficiency = self.busy_workers(), int(self.workers.get("peak") or 0), self.cpu_efficiency
        if busy is not None and efficiency is not None and efficiency < LOW_CPU_EFFICIENCY and peak > 1:
            out.append(f"mean {busy:.1f} of {peak} workers busy: try --dask-workers {max(1, int(busy))}:{peak}")
        memory, limit = self.memory_efficiency, int(self.memory.get("limit_bytes") or 0)
        wanted = max(1, math.ceil(2 * int(self.memory["peak_bytes"]) / GIB))  # twice the peak, whole GiB
        if memory is not None and memory < LOW_MEMORY_EFFICIENCY and wanted * GIB < limit and self.tasks["count"]:
            out.append(f"peak worker memory {memory:.0%} of its limit: try --worker-memory {wanted}Gi")
        if self.memory.get("spill_written_bytes"):
            spilled = _bytes(self.memory["spill_written_bytes"])
            out.append(f"workers spilled {spilled} to disk: try more --worker-memory")
        return out

    def to_dict(self) -> dict[str, Any]:
        """What ``kbatch report -o json`` prints."""
        return {
            "job": self.job,
            "state": self.state,
            "wall_seconds": self.wall_seconds,
            "cluster_wait_seconds": self.cluster_wait_seconds,
            "workers": self.workers,
            "cpu_efficiency": self.cpu_efficiency,
            "memory_efficiency": self.memory_efficiency,
            "busy_workers": self.busy_workers(),
            "memory": self.memory,
            "transfer_bytes": self.transfer_bytes,
            "tasks": self.tasks,
            "cost": self.cost(),
            "hints": self.hints(),
            "html": self.html,
        }

    # -- rendered ------------------------------------------------------------------

    def rows(self) -> list[tuple[str, str]]:
        """The report as label and text, for the terminal and the notebook."""
        return rows(self.to_dict())

    def render(self) -> str:
        rows = self.rows()
        width = max(len(label) for label, _ in rows)
        return f"Job {self.job}\n" + "\n".join(f"{label.ljust(width)}  {text}" for label, text in rows)

    def line(self) -> str:
        """One line for ``kbatch show``."""
        return line(self.to_dict())

    def _repr_html_(self) -> str:
        cells = "".join(
            f'<tr><th style="text-align: left">{html.escape(label)}</th>'
            f'<td style="text-align: left">{html.escape(text)}</td></tr>'
            for label, text in self.rows()
        )
        title = f"Job {html.escape(self.job)}: report"
        return f'<div><h4 style="margin-bottom: 0.25em">{title}</h4><table>{cells}</table></div>'


def rows(data: dict[str, Any]) -> list[tuple[str, str]]:
    """The report's JSON (:meth:`JobReport.to_dict`, the ``report`` of ``kbatch show -o json``)
    as label and text: the terminal's table, the notebook's and the web page's."""
    w, t, m = data["workers"], data["tasks"], data["memory"]
    out = [("State", data["state"]), ("Wall time", _duration(data["wall_seconds"]))]
    out.append(("Cluster start wait", _duration(data["cluster_wait_seconds"])))
    out.append(
        (
            "Workers",
            f"{w['peak']} peak, {w['mean']:.1f} mean, {w['seconds']:.0f} worker-seconds "
            f"({w['threads_peak']} threads peak)",
        )
    )
    out.append(("Tasks", f"{t['count']} ({t['erred']} erred), {t['compute_seconds']:.1f} compute-seconds"))
    out.append(("CPU efficiency", f"{_percent(data['cpu_efficiency'])} (compute-seconds / worker thread-seconds)"))
    limit = f" of {_bytes(m['limit_bytes'])} per worker" if m.get("limit_bytes") else ""
    peak = f"peak {_bytes(m['peak_bytes'])}{limit}"
    out.append(("Memory efficiency", f"{_percent(data['memory_efficiency'])} ({peak})"))
    out.append(("Spill", f"{_bytes(m.get('spill_written_bytes') or 0)} written to disk"))
    out.append(("Transfer", f"{_bytes(data['transfer_bytes'])} sent by workers"))
    cost = data.get("cost")
    if cost:
        spent = f"{cost['total']:.2f} {cost['currency']}".strip()
        out.append(("Cost", f"~{spent} ({cost['core_hours']:.2f} core-hours, {cost['gib_hours']:.2f} GiB-hours)"))
    top = ", ".join(f"{p['prefix']} {p['seconds']:.1f} s ({p['count']})" for p in t["prefixes"][:5])
    out.append(("Top task prefixes", top or "-"))
    if data.get("html"):
        out.append(("Dask report", data["html"]))
    out += [("Hint", hint) for hint in data.get("hints") or ()]
    return out


def line(data: dict[str, Any]) -> str:
    """The report's JSON as one line (``kbatch show``, the web page)."""
    return (
        f"CPU {_percent(data['cpu_efficiency'])}, memory {_percent(data['memory_efficiency'])}, "
        f"{data['workers']['seconds']:.0f} worker-seconds (kbatch report {data['job']})"
    )


@dataclass(frozen=True)
class Saved:
    """What a job's driver saved of its report: the meter's summary (the JSON of
    ``kbatch-%j.report.json``) and where Dask's HTML report is, if anywhere. Each
    backend finds it where its jobs keep it (``Backend.report``): beside the output
    file, or in the kbatch-dask service's archive."""

    summary: dict[str, Any]
    html: str | None = None

    def report(self, record: JobRecord, prices: Prices | None = None) -> JobReport:
        return of(self.summary, record, prices, self.html)


def saved_beside(record: JobRecord) -> Saved | None:
    """The report the driver wrote beside the job's output file; None when it has none (yet)."""
    paths = report_paths(record.output, record.id)
    if paths is None:
        return None
    try:
        with open(paths[0], "rb") as f:
            summary = summary_of(f.read())
    except (OSError, KbatchError):
        return None
    return Saved(summary, paths[1] if os.path.exists(paths[1]) else None)


def summary_of(data: bytes) -> dict[str, Any]:
    """The meter's summary in ``data``, checked for what :func:`of` reads; BadInput says what is wrong.

    >>> summary_of(b'{"collected": 1, "metered_from": 0, "workers": {}}')
    Traceback (most recent call last):
    ...
    kbatch_dask.errors.BadInput: the report has no number workers.peak: not the summary kbatch-dask's driver saves
    """
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        raise BadInput("the report is not JSON") from None
    if not isinstance(raw, dict):
        raise BadInput("the report is not a JSON object")
    for path in SUMMARY_NUMBERS:
        value: Any = raw
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadInput(f"the report has no number {path}: not the summary kbatch-dask's driver saves")
    prefixes = raw["tasks"].get("prefixes")
    if not isinstance(prefixes, list) or not all(
        isinstance(p, dict)
        and isinstance(p.get("prefix"), str)
        and isinstance(p.get("seconds"), (int, float))
        and isinstance(p.get("count"), int)
        for p in prefixes
    ):
        raise BadInput("the report's tasks.prefixes is not a list of {prefix, seconds, count}")
    return raw


def find(record: JobRecord, saved: Saved | None, prices: Prices | None = None) -> JobReport | None:
    """The report of the job of ``record`` from what its backend found saved; None when it has none (yet)."""
    return saved.report(record, prices) if saved else None


def of(raw: dict[str, Any], record: JobRecord, prices: Prices | None, page: str | None) -> JobReport:
    """A report from the meter's summary (``raw``, the JSON file) and the job's record."""
    started = record.started.timestamp() if record.started else None
    first = raw.get("first_worker")
    return JobReport(
        job=record.id,
        state=record.state.value,
        wall_seconds=record.elapsed(),
        cluster_wait_seconds=max(0.0, first - started) if first and started else None,
        workers=raw["workers"],
        tasks=raw["tasks"],
        memory=raw["memory"],
        transfer_bytes=int(raw.get("transfer_bytes") or 0),
        metered_seconds=float(raw["collected"]) - float(raw["metered_from"]),
        html=page,
        prices=prices,
    )


def required(record: JobRecord, saved: Saved | None, prices: Prices | None = None) -> JobReport:
    """:func:`find`'s report, or a KbatchError that says why there is none."""
    found = find(record, saved, prices)
    if found is not None:
        return found
    if not record.state.is_terminal():
        raise KbatchError(f"job {record.id} is {record.state.value}: its report is written when it ends")
    if record.dask is None:
        raise KbatchError(f"job {record.id} had no Dask cluster: it has no report")
    where = report_paths(record.output, record.id)
    # A hub job's report is the one its driver uploaded to the service, not the file.
    beside = f" ({where[0]} is not there)" if where and record.backend != "hub" else ""
    raise KbatchError(f"job {record.id} has no report{beside}; kbatch.report.enabled may be off, or the job never ran")


def _duration(seconds: float | None) -> str:
    return format_duration(seconds) if seconds is not None else "-"


def _percent(value: float | None) -> str:
    return f"{value:.0%}" if value is not None else "-"


def _bytes(size: float) -> str:
    """``92.3 MiB``: a measured size, rounded.

    >>> _bytes(0), _bytes(1536), _bytes(3 * 2**30)
    ('0 B', '1.5 KiB', '3.0 GiB')
    """
    for unit, power in (("TiB", 4), ("GiB", 3), ("MiB", 2), ("KiB", 1)):
        if size >= 1024**power:
            return f"{size / 1024**power:.1f} {unit}"
    return f"{int(size)} B"
