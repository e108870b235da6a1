"""The dashboard link of a running job opens a real Dask dashboard (not the
scheduler's "Dask needs bokeh" placeholder, which it also serves with HTTP 200),
and ``kbatch doctor`` tells one from the other."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from conftest import (
    assert_cluster_stopped_by_its_job,
    gateway_client,
    kbatch,
    kqueue_json,
    show_json,
    wait_for,
    write_script,
)

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


def doctor_dashboard_check(env: dict[str, str] | None = None) -> dict:
    report = json.loads(kbatch("doctor", "-o", "json", env=env).stdout)
    [check] = [c for c in report["checks"] if c["name"] == "dashboard"]
    return dict(check)


def test_dashboard_link_shows_the_bokeh_status_page_and_doctor_says_it_renders(home: Path, tmp_path: Path) -> None:
    release, out = tmp_path / "release", tmp_path / "d.out"
    script = write_script(tmp_path / "held.py", HELD.format(release=str(release)))
    job_id = kbatch("-o", str(out), "--parsable", str(script), "--dask-workers", "1", check=True).stdout.strip()
    try:
        wait_for(lambda: out.exists() and "workers ready" in out.read_text(), what="the job's workers")
        row = next(r for r in kqueue_json() if r["id"] == job_id)
        link = row["dask"]["dashboard"]
        assert link and link == show_json(job_id)["dask"]["dashboard"], row
        page = read_page(link)
        doctor = doctor_dashboard_check()
    finally:
        release.touch()
        job = wait_for(
            lambda: (r := show_json(job_id))["state"] not in ("PENDING", "RUNNING") and r, what=f"job {job_id} to end"
        )
    assert "needs bokeh" not in page, page
    # The Bokeh server's page: distributed's template around BokehJS, which then draws the plots.
    assert "<title>Dask Diagnostic UI</title>" in page, page[:2000]
    assert 'src="static/js/bokeh.min.js' in page and "Bokeh.set_log_level" in page, page[:2000]
    assert doctor["status"] == "ok" and "renders the Dask dashboard" in doctor["message"], doctor
    assert job["state"] == "SUCCEEDED", job
    assert_cluster_stopped_by_its_job(home, job["dask"]["cluster"])


def test_doctor_fails_on_a_scheduler_without_bokeh_and_names_the_fix(
    own_gateway_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A bokeh that cannot be imported, ahead of the real one on the path the gateway
    # passes to its schedulers: the scheduler then serves the placeholder.
    hidden = tmp_path / "no-bokeh" / "bokeh"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('bokeh hidden by the test')\n")
    monkeypatch.setenv("PYTHONPATH", str(hidden.parent))
    kbatch("gateway", "start", check=True)
    monkeypatch.delenv("PYTHONPATH")
    with gateway_client(own_gateway_home) as client:
        name = client.create_cluster({})
        try:
            client.wait_running(name, timeout=60)
            check = doctor_dashboard_check()
        finally:
            client.stop_cluster(name)
    assert check["status"] == "fail" and "placeholder" in check["message"], check
    assert check["fix"].startswith('pip install "bokeh>=3.1.0" in the image of the gateway\'s schedulers'), check
