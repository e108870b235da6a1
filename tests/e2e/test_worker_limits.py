"""Worker counts end to end: limits said at submit in the user's units, a gateway's
cap reported honestly, and the script's first line run on a cluster with workers."""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import BIN, gateway_client, job_dirs, kbatch, show_json, wait_for, write_script

from kbatch_dask import settings
from kbatch_dask.backends.local import embedded_gateway as embedded
from kbatch_dask.spec import current_user

pytestmark = pytest.mark.gateway

# What the script's first line sees: the workers the cluster has.
COUNT_WORKERS = """\
from dask.distributed import get_client
print("workers at start:", len(get_client().scheduler_info()["workers"]), flush=True)
"""

# Keeps running (so the queue can be looked at) until the test creates `release`.
HOLD = f"""\
{COUNT_WORKERS}import os, time
while not os.path.exists({{release!r}}):
    time.sleep(0.2)
"""


def run(tmp_path: Path, *args: str, script: str = COUNT_WORKERS) -> tuple[dict, str]:
    path = write_script(tmp_path / "count.py", script)
    out = tmp_path / "count.out"
    proc = kbatch("-o", str(out), "--wait", str(path), *args, timeout=240)
    job = show_json(proc.stdout.split()[2])
    return job, out.read_text()


@pytest.fixture
def capped_gateway(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A configured gateway (a dask-gateway-server of its own) whose clusters may
    have 1 worker, a limit kbatch cannot know at submit: the gateway's options API
    does not declare it."""
    gwhome = tmp_path / "capped-gateway"
    limits = dataclasses.replace(settings.load().embedded_gateway, cluster_max_workers=1)
    server = embedded.start(str(gwhome), current_user(), limits)
    for key, value in server.dask_config_env().items():
        monkeypatch.setenv(key, value)
    yield gwhome
    embedded.stop(str(gwhome))


@pytest.fixture
def workerless_gateway(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A configured gateway whose workers exit as they start (their interpreter's
    sitecustomize ends them), so no cluster of it ever gets a worker."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import sys\nif sys.orig_argv[1:4] == ['-m', 'dask', 'worker']:\n    sys.exit('no workers here')\n"
    )
    gwhome = tmp_path / "workerless-gateway"
    with monkeypatch.context() as m:
        m.setenv("PYTHONPATH", str(site))  # the gateway passes it on to its workers
        server = embedded.start(str(gwhome), current_user(), settings.load().embedded_gateway)
    for key, value in server.dask_config_env().items():
        monkeypatch.setenv(key, value)
    yield gwhome
    embedded.stop(str(gwhome))


# -- item 5: limits --------------------------------------------------------------


@pytest.mark.parametrize("workers", ["9", "2:20"])
def test_more_workers_than_the_embedded_gateway_allows_is_refused_at_submit(
    home: Path, tmp_path: Path, workers: str
) -> None:
    script = write_script(tmp_path / "s.py", "print('ran')\n")
    proc = kbatch(str(script), "--dask-workers", workers)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == f"Error: --dask-workers {workers}: at most 8 (the gateway's limit)"
    assert job_dirs(home) == []


def test_worker_memory_beyond_the_limit_is_said_in_the_users_units(home: Path, tmp_path: Path) -> None:
    gateway_client(home, start=True).close()  # the gateway declares its options once it runs
    script = write_script(tmp_path / "s.py", "print('ran')\n")
    proc = kbatch(str(script), "--dask-workers", "1", "--worker-memory", "16G")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == "Error: --worker-memory 16G: at most 8 GiB (the gateway's limit)"
    assert job_dirs(home) == []


def test_a_gateway_that_caps_the_cluster_is_reported_and_shown_in_the_queue(
    capped_gateway: Path, home: Path, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    script = write_script(tmp_path / "hold.py", HOLD.format(release=str(release)))
    out = tmp_path / "hold.out"
    proc = kbatch("-o", str(out), "--parsable", str(script), "--dask-workers", "3", "--wait-for-workers", "all")
    assert proc.returncode == 0, proc.stderr
    job_id = proc.stdout.strip()

    def queue_row() -> str | None:
        table = subprocess.run([str(BIN / "kqueue")], capture_output=True, text=True, timeout=60).stdout
        rows = [line for line in table.splitlines() if line.startswith(job_id) and " 1/1 " in line]
        return rows[0] if rows else None

    row = wait_for(queue_row, timeout=90, what="the job running with its 1 worker")
    assert "1/1 (capped from 3)" in row
    release.touch()
    job = wait_for(lambda: (r := show_json(job_id))["state"] not in ("PENDING", "RUNNING") and r, timeout=90)
    assert job["state"] == "SUCCEEDED", job
    assert job["dask"]["worker_limit"] == 1
    text = out.read_text()
    note = "kbatch: --dask-workers 3: the gateway allows at most 1 worker per cluster; the job runs with 1"
    assert note in text
    assert "workers at start: 1" in text  # --wait-for-workers all waited for the 1 it can have
    assert note.removeprefix("kbatch: ") in (home / "jobs" / job_id / "driver.log").read_text()


# -- item 7: workers before the script's first line ----------------------------------


def test_the_first_line_of_a_script_sees_a_worker_by_default(home: Path, tmp_path: Path) -> None:
    job, text = run(tmp_path, "--dask-workers", "2")
    assert job["state"] == "SUCCEEDED", job
    count = int(text.split("workers at start:")[1].split()[0])
    assert count >= 1, text


def test_wait_for_workers_all_sees_every_worker(home: Path, tmp_path: Path) -> None:
    job, text = run(tmp_path, "--dask-workers", "3", "--wait-for-workers", "all")
    assert job["state"] == "SUCCEEDED", job
    assert "workers at start: 3" in text


def test_workers_that_never_come_start_the_script_at_the_timeout_with_a_note(
    workerless_gateway: Path, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DASK_KBATCH__DRIVER__WAIT_FOR_WORKERS_TIMEOUT", "3")
    job, text = run(tmp_path, "--dask-workers", "2", "--wait-for-workers", "all")
    assert job["state"] == "SUCCEEDED", job
    assert "kbatch: 0 of 2 workers came within 3 s (kbatch.driver.wait-for-workers-timeout)" in text
    assert text.index("kbatch: 0 of 2 workers") < text.index("workers at start: 0")
