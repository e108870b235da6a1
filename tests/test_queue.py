"""The queue's join of records with gateway reports, and its rendering."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from kbatch_dask import render
from kbatch_dask.gateway import ClusterInfo, ClusterStatus
from kbatch_dask.queue import join
from kbatch_dask.records import DaskInfo, JobRecord, JobState

T0 = datetime(2026, 11, 21, 21, 40, tzinfo=timezone.utc)


def record(job_id: str, state: JobState, dask: DaskInfo | None, **kw: object) -> JobRecord:
    return JobRecord(
        job_id,
        f"job-{job_id}",
        "alice",
        "local",
        state,
        T0,
        f"/home/alice/{job_id}.py",
        started=T0 + timedelta(seconds=1),
        dask=dask,
        **kw,
    )  # type: ignore[arg-type]


RECORDS = [
    record("run1", JobState.RUNNING, DaskInfo("20", cluster="c1")),
    record("ada2", JobState.RUNNING, DaskInfo("2:20", cluster="c2")),
    record("slow3", JobState.RUNNING, DaskInfo("2", cluster="c3")),
    record("done4", JobState.SUCCEEDED, DaskInfo("2", cluster="c4"), exit_code=0, finished=T0 + timedelta(seconds=75)),
    record("pend5", JobState.PENDING, DaskInfo("2")),
    record("nocl6", JobState.FAILED, None, exit_code=3, finished=T0 + timedelta(seconds=3)),
]
CLUSTERS = {
    "c1": ClusterInfo("c1", ClusterStatus.RUNNING, "http://gw/clusters/c1/status"),
    "c2": ClusterInfo("c2", ClusterStatus.RUNNING, "http://gw/clusters/c2/status"),
    "c3": ClusterInfo("c3", ClusterStatus.RUNNING, "http://gw/clusters/c3/status"),
    "c4": ClusterInfo("c4", ClusterStatus.STOPPED, None),
}
LIVE = {"http://gw/clusters/c1/status": 18, "http://gw/clusters/c2/status": 3, "http://gw/clusters/c3/status": None}


def test_join_fills_status_live_workers_and_dashboards() -> None:
    joined = {r.id: r.dask for r in join(RECORDS, CLUSTERS, LIVE)}
    assert joined["run1"] == DaskInfo("20", "c1", "RUNNING", 18, "http://gw/clusters/c1/status")
    assert joined["ada2"].live_workers == 3
    assert joined["slow3"].live_workers is None  # count not read in time: unknown, not 0
    assert joined["done4"].cluster_status == "STOPPED" and joined["done4"].live_workers == 0
    assert joined["pend5"] == DaskInfo("2")
    assert joined["nocl6"] is None


def test_join_without_gateway_leaves_status_unknown() -> None:
    assert join(RECORDS, None, {}) == RECORDS


def test_table_lines_up_with_slurm_style_columns() -> None:
    at = T0 + timedelta(seconds=125)
    text = render.table(join(RECORDS, CLUSTERS, LIVE), at=at)
    assert text.splitlines() == [
        "JOBID  NAME       STATE      TIME  WORKERS  DASHBOARD",
        "run1   job-run1   RUNNING    2:04  18/20    http://gw/clusters/c1/status",
        "ada2   job-ada2   RUNNING    2:04  3/2-20   http://gw/clusters/c2/status",
        "slow3  job-slow3  RUNNING    2:04  ?/2      http://gw/clusters/c3/status",
        "done4  job-done4  SUCCEEDED  1:14  0/2",
        "pend5  job-pend5  PENDING    2:04  ?/2",
        "nocl6  job-nocl6  FAILED     0:02  -",
    ]


def test_wide_table_has_reason_and_output_columns() -> None:
    header = render.table(RECORDS, wide=True).splitlines()[0].split()
    assert header == [
        "JOBID",
        "NAME",
        "USER",
        "STATE",
        "SUBMITTED",
        "TIME",
        "TIME_LIMIT",
        "WORKERS",
        "REASON/EXIT",
        "CLUSTER",
        "DASHBOARD",
        "OUTPUT",
    ]
    assert "exit code 3" in render.table(RECORDS, wide=True)


def test_json_shape_matches_the_cli_contract() -> None:
    data = json.loads(render.to_json([r.to_dict() for r in join(RECORDS, CLUSTERS, LIVE)]))
    first = data[0]
    assert list(first) == [
        "id",
        "name",
        "user",
        "backend",
        "state",
        "reason",
        "exit_code",
        "submitted",
        "started",
        "finished",
        "script",
        "args",
        "output",
        "comment",
        "host",
        "pid",
        "dask",
        "owned_clusters",
        "error",
        "workdir",
        "time_limit",
        "notebook_output",
        "attempt",
        "cpus",
        "memory",
        "gpus",
        "dependency",  # --dependency as given (None without one)
    ]
    assert first["submitted"] == "2026-11-21T21:40:00+00:00"
    assert first["dask"] == {
        "workers": "20",
        "cluster": "c1",
        "cluster_status": "RUNNING",
        "live_workers": 18,
        "dashboard": "http://gw/clusters/c1/status",
        "worker_cores": None,
        "worker_memory": None,
        "worker_limit": None,
    }
    assert JobRecord.from_dict(first).to_dict() == first


def test_collect_asks_the_gateway_once_and_counts_only_running_clusters(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """However many jobs: one cluster listing, one live-count read per running cluster."""
    from kbatch_dask import queue

    calls: dict[str, list[object]] = {"list": [], "live": []}
    records = [record(f"j{i}", JobState.SUCCEEDED, DaskInfo("2", cluster=f"c{i}")) for i in range(1000)]
    records += [record(f"r{i}", JobState.RUNNING, DaskInfo("2", cluster=f"live{i}")) for i in range(5)]
    clusters = {f"c{i}": ClusterInfo(f"c{i}", ClusterStatus.STOPPED, None) for i in range(1000)}
    clusters |= {
        f"live{i}": ClusterInfo(f"live{i}", ClusterStatus.RUNNING, f"http://gw/clusters/live{i}/status")
        for i in range(5)
    }

    class Gateway:
        def list_clusters(self) -> dict[str, ClusterInfo]:
            calls["list"].append(self)
            return clusters

    def live_workers(links: list[str], timeout: float) -> dict[str, int]:
        calls["live"].append(list(links))
        return dict.fromkeys(links, 2)

    monkeypatch.setattr(queue, "live_workers", live_workers)
    joined = queue.collect(records, Gateway(), live_timeout=0.5)  # type: ignore[arg-type]
    assert len(calls["list"]) == 1
    assert calls["live"] == [[f"http://gw/clusters/live{i}/status" for i in range(5)]]
    assert [r.dask.live_workers for r in joined[-5:]] == [2] * 5  # type: ignore[union-attr]
