"""The job report (issue 17), end to end on the local backend with the real
embedded gateway: a known workload's figures, and a report for a job that raised."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from conftest import ended, kbatch, submit, write_script

# 40 tasks of 0.5 s of CPU (a busy loop on the clock: no sleep) on 2 one-thread workers.
WORKLOAD = """\
import time
import dask

def burn(i):
    end = time.perf_counter() + 0.5
    while time.perf_counter() < end:
        pass
    return i

print(sum(dask.compute(*[dask.delayed(burn)(i) for i in range(40)])))
"""


def test_a_known_workload_reports_its_compute_seconds_efficiency_and_task_stream(home: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "burn.py", WORKLOAD)
    job_id = submit("-o", str(tmp_path / "burn-%j.out"), "--dask-workers", "2", "--worker-cores", "1", str(script))
    record = ended(job_id)
    assert record["state"] == "SUCCEEDED", record
    proc = kbatch("report", job_id, "-o", "json", check=True)
    report = json.loads(proc.stdout)

    assert abs(report["tasks"]["compute_seconds"] - 20.0) <= 0.15 * 20.0, report["tasks"]
    assert report["tasks"]["count"] == 40 and report["tasks"]["prefixes"][0]["prefix"] == "burn"
    assert report["workers"]["peak"] == 2 and report["workers"]["threads_peak"] == 2
    # Consistent with the wall time: two threads held for no longer than the job ran, and
    # at least as long as 20 s of compute on two of them takes.
    thread_seconds = report["workers"]["thread_seconds"]
    assert 2 * 10.0 <= thread_seconds <= 2 * report["wall_seconds"], report
    assert report["cpu_efficiency"] == report["tasks"]["compute_seconds"] / thread_seconds
    assert report["memory"]["peak_bytes"] > 0 and report["memory"]["limit_bytes"] > 0

    assert json.loads(kbatch("show", job_id, "-o", "json", check=True).stdout)["report"] == report
    page = Path(report["html"]).read_text()
    assert "Task Stream" in page
    assert ["burn"] * 40 in list(_name_columns(page)), "the task stream holds no rectangle for each of the 40 tasks"


def _name_columns(page: str) -> Iterator[list[Any]]:
    """The ``name`` columns of the data sources in the bokeh document the page embeds
    (the task stream's: one task prefix per rectangle)."""
    found = re.search(r'<script type="application/json"[^>]*>(.*?)</script>', page, re.S)
    assert found, "the page embeds no bokeh document"
    todo: list[Any] = [json.loads(found.group(1))]
    while todo:
        item = todo.pop()
        if isinstance(item, list) and len(item) == 2 and item[0] == "name" and isinstance(item[1], list):
            yield item[1]
        todo += item.values() if isinstance(item, dict) else item if isinstance(item, list) else []


def test_a_job_that_raises_still_has_its_report(home: Path, tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "fails.py",
        "import dask\nprint(dask.delayed(sum)([1, 2]).compute())\nraise SystemExit('it broke')\n",
    )
    job_id = submit("-o", str(tmp_path / "fails-%j.out"), "--dask-workers", "1", str(script))
    assert ended(job_id)["state"] == "FAILED"
    proc = kbatch("report", job_id, check=True)
    assert "Tasks" in proc.stdout and "1 (0 erred)" in proc.stdout, proc.stdout


def test_a_job_without_the_dead_mans_switch_still_has_its_report(home: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "small.py", "import dask\nprint(dask.delayed(sum)([1, 2]).compute())\n")
    no_switch = {"DASK_KBATCH__DRIVER__DEAD_MANS_SWITCH_GRACE": "0"}
    job_id = submit("-o", str(tmp_path / "small-%j.out"), "--dask-workers", "1", str(script), env=no_switch)
    assert ended(job_id)["state"] == "SUCCEEDED"
    report = json.loads(kbatch("report", job_id, "-o", "json", check=True).stdout)
    assert report["tasks"]["count"] == 1, report
    assert "Task Stream" in Path(report["html"]).read_text()
