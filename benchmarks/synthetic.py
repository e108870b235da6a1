"""Synthetic job histories, written straight to disk or into the fake API server.

Local: job directories with a ``record.json`` each (as the backend writes
them), the ended ones indexed through the real :class:`EndedIndex`. Running
jobs carry this process's pid, so LOST detection sees a live driver, and a
cluster name the gateway does not know, so the queue asks the gateway once.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from kbatch_dask.backends.kubernetes import annotations as names
from kbatch_dask.backends.kubernetes import manifests
from kbatch_dask.backends.local.index import EndedIndex
from kbatch_dask.records import DaskInfo, JobRecord, JobState, now

STATES = (JobState.SUCCEEDED, JobState.SUCCEEDED, JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


def local_record(i: int, state: JobState, ended_ago: timedelta, pid: int | None = None) -> JobRecord:
    at = now().replace(microsecond=0) - ended_ago
    job_id = f"b{i:06d}"
    running = not state.is_terminal()
    return JobRecord(
        id=job_id,
        name=f"train-{i}",
        user="bench",
        backend="local",
        state=state,
        submitted=at - timedelta(minutes=30),
        started=at - timedelta(minutes=29),
        finished=None if running else at,
        exit_code=None if running else (0 if state is JobState.SUCCEEDED else 1),
        reason=None if running or state is JobState.SUCCEEDED else "exit code 1",
        script=f"/home/bench/train-{i}.py",
        args=("--epochs", "3"),
        output=f"/home/bench/kbatch-{job_id}.out",
        host="bench-host",
        pid=pid,
        dask=DaskInfo(workers="2", cluster=f"bench.{job_id}", dashboard=f"http://127.0.0.1:1/clusters/{job_id}/status"),
    )


def local_history(home: Path, *, running: int, recent: int, old: int, gateway_dir: Path | None = None) -> Path:
    """A local state directory: ``running`` active jobs, ``recent`` ended in the last
    day (shown by ``kqueue``), ``old`` ended over the past year (only with ``--all``)."""
    jobs = home / "jobs"
    jobs.mkdir(parents=True)
    if gateway_dir is not None:
        (home / "gateway").symlink_to(gateway_dir, target_is_directory=True)
    records = [local_record(i, JobState.RUNNING, timedelta(0), pid=os.getpid()) for i in range(running)]
    records += [
        local_record(running + i, STATES[i % len(STATES)], timedelta(hours=23 * (i + 1) / (recent + 1)))
        for i in range(recent)
    ]
    base = running + recent
    records += [
        local_record(base + i, STATES[i % len(STATES)], timedelta(days=1 + 364 * (i + 1) / (old + 1)))
        for i in range(old)
    ]
    for record in records:
        path = jobs / record.id
        path.mkdir()
        (path / "record.json").write_text(json.dumps(record.to_dict(), indent=1))
    EndedIndex(str(home)).add(r for r in records if r.state.is_terminal())
    return home


def kube_job(server: Any, namespace: str, user: str, i: int, outcome: str) -> None:
    """One kbatch-dask Job (and its pod) as the backend creates them, straight into the store."""
    from tests.fakes.kube.resources import JOB, POD
    from tests.fakes.kube.seeding import seeded_job, seeded_pod

    job_id = f"b{i:06d}"
    annotations = {
        names.ANN_NAME: f"train-{i}",
        names.ANN_USER: user,
        names.ANN_SCRIPT: f"/home/{user}/train-{i}.py",
    }
    name = manifests.job_name(user, job_id)
    job = seeded_job(namespace, name, manifests.job_labels(user, job_id), annotations, outcome, "bench:latest")
    server.store.insert(JOB, job)
    server.store.insert(POD, seeded_pod(job, outcome))


def kube_history(server: Any, namespace: str, user: str, n: int, running: int = 10) -> None:
    for i in range(n):
        kube_job(server, namespace, user, i, "Running" if i < running else ("Complete", "Failed")[i % 5 == 4])
