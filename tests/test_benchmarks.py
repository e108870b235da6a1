"""The benchmark runs (tiny sizes, one repetition), so it never rots.
Its figures are not checked here: timings are for docs/benchmarks.md."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

pytestmark = pytest.mark.gateway


@pytest.mark.timeout(600)  # every group once, a hub and a service included
def test_benchmark_smoke_run_prints_every_row(gateway_home: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KBATCH_", "DASK_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--gateway-home", str(gateway_home)],
        cwd=ROOT,
        env={**env, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {line.split("|")[1].strip(): line for line in proc.stdout.splitlines() if line.startswith("| ")}
    expected = [
        "kbatch --help",
        "kqueue, local, 0 jobs",
        "kqueue, local, 20 jobs (2 running, 10 shown)",
        "kqueue, local, 200 jobs (2 running, 10 shown)",
        "kqueue --all, local, 200 jobs (all shown)",
        "kqueue, local, 200 jobs, its jobs directory just changed (listed)",
        "submit, local (returns the job id)",
        "kqueue, kubernetes, 20 jobs (2 API requests)",  # one page of Jobs, one list of pods
        "kqueue, kubernetes, 60 jobs (2 API requests)",
        "kbatch job (waits for its first worker): driver start → script's first line",
        "kbatch job, --wait-for-workers 0 (as the bare script): driver start → script's first line",
        "kbatch job: script's last line → cluster STOPPED",
        "supervisor peak RSS",
        "supervisor SIGKILL → cluster STOPPED",
        "service ready (lists 40 Jobs and their pods)",
        "GET /jobs p99, 4 clients, 40 jobs of 4 users",
        "service CPU per GET /jobs",
        "web page, 20 jobs: browser, to first contentful paint",
        "scaling: kqueue, kubernetes, 1 job",
        "scaling: kqueue, kubernetes, 3 jobs",
        "scaling: service GET /jobs, one client, a user with 3 jobs",
        "scaling: kqueue, hub (through the service), 3 jobs",
        "scaling: 1 worker: last line → cluster STOPPED",
    ]
    # A row's name, then what it notes in parentheses (e.g. which load generator ran).
    missing = [name for name in expected if not any(row == name or row.startswith(f"{name} (") for row in rows)]
    assert missing == [], proc.stdout
