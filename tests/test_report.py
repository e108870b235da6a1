"""The job report's derived figures, read from a meter's summary and a record (pure)."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import pytest

from kbatch_dask.backends import Backend
from kbatch_dask.errors import BadInput, KbatchError
from kbatch_dask.job import Job
from kbatch_dask.records import DaskInfo, JobRecord, JobState
from kbatch_dask.report import GIB, Saved, line, of, rows, saved_beside, summary_of
from kbatch_dask.settings import Report


class Beside:
    """The part of a local backend a job's report needs: the file beside its output."""

    def report(self, record: JobRecord) -> Saved | None:
        return saved_beside(record)


STARTED = datetime(2026, 11, 21, 21, 40, tzinfo=timezone.utc)


def _summary(compute: float, workers: int = 20) -> dict[str, Any]:
    return {
        "metered_from": STARTED.timestamp() + 5,
        "first_worker": STARTED.timestamp() + 8,
        "collected": STARTED.timestamp() + 105,
        "workers": {
            "peak": workers,
            "mean": float(workers),
            "seconds": 100.0 * workers,
            "threads_peak": workers,
            "thread_seconds": 100.0 * workers,
            "memory_limit_byte_seconds": 100.0 * workers * 4 * GIB,
        },
        "tasks": {"count": 400, "erred": 1, "compute_seconds": compute, "prefixes": []},
        "memory": {"peak_bytes": 3 * GIB, "limit_bytes": 4 * GIB, "spill_written_bytes": 0},
        "transfer_bytes": 0,
    }


def _record() -> JobRecord:
    return JobRecord(
        id="k3x9q",
        name="train",
        user="alice",
        backend="local",
        state=JobState.SUCCEEDED,
        submitted=STARTED,
        started=STARTED,
        finished=STARTED + timedelta(seconds=110),
        script="/home/alice/train.py",
        output="/home/alice/kbatch-k3x9q.out",
        dask=DaskInfo(workers="20"),
    )


def test_an_idle_cluster_gets_a_hint_to_adapt_and_a_busy_one_none() -> None:
    idle = of(_summary(compute=310.0), _record(), None, None)
    assert idle.cpu_efficiency == 310.0 / 2000.0
    assert idle.cluster_wait_seconds == 8.0 and idle.wall_seconds == 110.0
    assert idle.hints() == ["mean 3.1 of 20 workers busy: try --dask-workers 3:20"]
    assert of(_summary(compute=1900.0), _record(), None, None).hints() == []


def test_the_cost_is_the_workers_core_and_gib_hours_priced_and_absent_without_prices() -> None:
    prices = Report(enabled=True, html=True, core_hour_price=0.05, gb_hour_price=0.01, currency="EUR")
    report = of(_summary(compute=1900.0), _record(), prices, None)
    cost = report.cost()
    assert cost is not None
    hours = 2000.0 / 3600
    assert (cost["core_hours"], cost["gib_hours"]) == (hours, 4 * hours)
    assert abs(cost["total"] - (hours * 0.05 + 4 * hours * 0.01)) < 1e-9 and cost["currency"] == "EUR"
    assert "EUR" in report.render() and "Cost" in report._repr_html_()
    assert of(_summary(compute=1900.0), _record(), None, None).cost() is None


def test_job_report_reads_the_file_beside_the_output_and_shows_as_a_table(tmp_path: Path) -> None:
    record = dataclasses.replace(_record(), output=str(tmp_path / "train.out"))
    job = Job(record, cast(Backend, Beside()))  # an ended job's record is not fetched again
    with pytest.raises(KbatchError, match="has no report"):
        job.report()
    (tmp_path / "kbatch-k3x9q.report.json").write_text(json.dumps(_summary(compute=310.0)))
    page = job.report()._repr_html_()
    assert page.count("<tr>") == len(job.report().rows()) and "<th" in page and "3.1 of 20 workers" in page


def test_a_summary_is_checked_for_what_the_report_reads_and_refused_in_one_line() -> None:
    good = _summary(compute=310.0)
    assert summary_of(json.dumps(good).encode()) == good
    for bad, said in (
        (b"<html>", "not JSON"),
        (b"[1]", "not a JSON object"),
        (json.dumps({**good, "workers": {**good["workers"], "seconds": "many"}}).encode(), "workers.seconds"),
        (json.dumps({**good, "tasks": {**good["tasks"], "prefixes": [{"prefix": 1}]}}).encode(), "prefixes"),
    ):
        with pytest.raises(BadInput, match=said):
            summary_of(bad)


def test_the_reports_json_renders_as_the_same_rows_and_line_as_the_report() -> None:
    report = of(_summary(compute=310.0), _record(), Report(True, True, 0.05, None, "EUR"), None)
    data = json.loads(json.dumps(report.to_dict()))  # as `kbatch show -o json` prints it
    assert rows(data) == report.rows() and "Cost" in dict(rows(data))
    assert line(data) == report.line() == "CPU 16%, memory 75%, 2000 worker-seconds (kbatch report k3x9q)"
