"""The dashboard link of a running job opens a real Dask dashboard (not the
scheduler's "Dask needs bokeh" placeholder, which it also serves with HTTP 200)."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
from conftest import assert_cluster_stopped_by_its_job, kbatch, kqueue_json, show_json, wait_for, write_script

pytestmark = pytest.mark.gateway

# Runs until the test creates the release file, so the dashboard is read while the cluster surely runs.
HELD = """\
import os, time
from dask.distributed import get_client
get_client().wait_for_workers(1, timeout=60)
print("workers ready", flush=True)
while not os.path.exists({release!r}):
    time.sleep(0.1)
"""


def read_page(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return str(resp.read().decode("utf-8", "replace"))


def test_dashboard_link_shows_the_bokeh_status_page(home: Path, tmp_path: Path) -> None:
    release, out = tmp_path / "release", tmp_path / "d.out"
    script = write_script(tmp_path / "held.py", HELD.format(release=str(release)))
    job_id = kbatch(str(script), "--dask-workers", "1", "-o", str(out), "--parsable", check=True).stdout.strip()
    try:
        wait_for(lambda: out.exists() and "workers ready" in out.read_text(), what="the job's workers")
        row = next(r for r in kqueue_json() if r["id"] == job_id)
        link = row["dask"]["dashboard"]
        assert link and link == show_json(job_id)["dask"]["dashboard"], row
        page = read_page(link)
    finally:
        release.touch()
        job = wait_for(
            lambda: (r := show_json(job_id))["state"] not in ("PENDING", "RUNNING") and r, what=f"job {job_id} to end"
        )
    assert "needs bokeh" not in page, page
    # The Bokeh server's page: distributed's template around BokehJS, which then draws the plots.
    assert "<title>Dask Diagnostic UI</title>" in page, page[:2000]
    assert 'src="static/js/bokeh.min.js' in page and "Bokeh.set_log_level" in page, page[:2000]
    assert job["state"] == "SUCCEEDED", job
    assert_cluster_stopped_by_its_job(home, job["dask"]["cluster"])
