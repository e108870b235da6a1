"""The notebook display of a Job, against a real job on the embedded gateway."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import wait_for, write_script

from kbatch_dask import JobState, get_job, submit

pytestmark = pytest.mark.gateway

GATED = """\
import os, sys, time
while not os.path.exists(sys.argv[1]):
    time.sleep(0.1)
print("released")
"""


def test_display_follows_the_job_to_its_end(home: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "gated.py", GATED)
    gate = tmp_path / "gate"
    output = tmp_path / "gated.out"
    job = submit(str(script), str(gate), dask_workers=1, name="gated-run", output=str(output))
    try:
        dashboard = wait_for(lambda: job.dashboard_link, timeout=120, what="the job's dashboard")
        running = job._repr_html_()
        assert "RUNNING" in running and f'<a href="{dashboard}" target="_blank">' in running
        assert "/1</td>" in running  # live/requested workers
    finally:
        gate.touch()  # the job ends whatever the assertions found
    assert get_job(job.id).wait(timeout=120) is JobState.SUCCEEDED  # another handle sees it end
    shown = job._repr_html_()  # this one was last fetched while the job ran
    assert "SUCCEEDED" in shown and "RUNNING" not in shown
    for field in (job.id, "gated-run", str(output), "Elapsed", "/1</td>"):
        assert field in shown, field
    assert "released" in output.read_text()
