"""Commands people type all day import only what they use: not dask,
distributed or dask-gateway (each costs more than the command itself), nor
kubernetes on the local backend, nor, to ask the embedded gateway, urllib's
HTTP stack. And the queue's plain-HTTP cluster listing says what dask-gateway's
own client says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import gateway_client, kbatch, show_json, wait_for, write_script
from fakes.kube.fake_apiserver import FakeApiServer
from fakes.kube.fixtures import fake_apiserver, kube_env  # noqa: F401

from kbatch_dask.backends.kubernetes import manifests
from kbatch_dask.gateway import ClusterInfo, ClusterStatus, GatewaySettings
from kbatch_dask.gateway.client import ALL_STATUSES
from kbatch_dask.gateway.transports import connect
from kbatch_dask.spec import current_user

HEAVY = {"dask", "distributed", "dask_gateway", "dask_gateway_server", "kubernetes"}

RUN_AND_LIST_MODULES = """
import json, os, sys
from kbatch_dask.cli import main
try:
    main(sys.argv[1:])
finally:
    with open(os.environ["MODULES_OUT"], "w") as f:
        json.dump(sorted(sys.modules), f)
"""


def imported(tmp_path: Path, *args: str) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    """Run ``kbatch ARGS`` in a fresh interpreter; the modules and top-level packages it imported."""
    out = tmp_path / "modules.json"
    proc = subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST_MODULES, *args],
        env={**os.environ, "MODULES_OUT": str(out)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    modules = json.loads(out.read_text())
    return set(modules) | {m.split(".")[0] for m in modules}, proc


def test_help_and_version_import_no_heavy_package(home: Path, tmp_path: Path) -> None:
    for args in (["--help"], ["queue", "--help"], ["submit", "--help"]):
        modules, proc = imported(tmp_path, *args)
        assert proc.returncode == 0, proc.stderr
        assert modules & (HEAVY | {"yaml", "urllib.request", "importlib.metadata"}) == set(), args
    modules, proc = imported(tmp_path, "--version")
    assert proc.returncode == 0 and modules & (HEAVY | {"yaml"}) == set()


def test_local_commands_on_ended_jobs_import_no_heavy_package(home: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "x.py", "print('hello')\n")
    job_id = kbatch("-o", str(tmp_path / "x.out"), "--parsable", str(script), "--dask-workers", "0", check=True)
    job_id_text = job_id.stdout.strip()
    wait_for(lambda: show_json(job_id_text)["state"] == "SUCCEEDED", what="the job to end")
    for args in (
        ["queue"],
        ["queue", "--all", "-o", "json"],
        ["show", job_id_text],
        ["logs", job_id_text],
        ["cancel", job_id_text],
    ):
        modules, proc = imported(tmp_path, *args)
        assert proc.returncode == 0, (args, proc.stderr)
        assert modules & HEAVY == set(), args


@pytest.mark.gateway
def test_local_commands_on_a_job_with_a_running_cluster_import_no_heavy_package(home: Path, tmp_path: Path) -> None:
    started, release = tmp_path / "started", tmp_path / "release"
    script = write_script(
        tmp_path / "wait.py",
        f"import pathlib, time\npathlib.Path({str(started)!r}).touch()\n"
        f"while not pathlib.Path({str(release)!r}).exists():\n    time.sleep(0.1)\n",
    )
    proc = kbatch("-o", str(tmp_path / "w.out"), "--parsable", str(script), "--dask-workers", "1", check=True)
    job_id = proc.stdout.strip()
    wait_for(started.exists, timeout=120, what="the script to start")
    for args in (["queue", "-o", "json"], ["show", job_id], ["logs", job_id]):
        modules, proc = imported(tmp_path, *args)
        assert proc.returncode == 0, (args, proc.stderr)
        assert modules & HEAVY == set(), args
    modules, proc = imported(tmp_path, "queue", "-o", "json")
    (row,) = json.loads(proc.stdout)
    assert row["dask"]["cluster_status"] == "RUNNING"  # the gateway was asked, over plain HTTP
    assert modules & {"urllib.request", "http.client", "ssl"} == set()  # over a socket (direct_http)
    modules, proc = imported(tmp_path, "cancel", job_id)
    assert proc.returncode == 0 and f"Job {job_id} CANCELLED" in proc.stdout, proc.stderr
    assert modules & HEAVY == set()
    release.touch()


def test_kubernetes_queue_imports_kubernetes_but_no_dask(
    home: Path,
    tmp_path: Path,
    fake_apiserver: FakeApiServer,  # noqa: F811
    kube_env: Path,  # noqa: F811
) -> None:
    labels = manifests.job_labels(current_user(), "k3x9q")
    fake_apiserver.seed_jobs("default", 1, labels=labels, name_prefix="kbatch-job-")
    modules, proc = imported(tmp_path, "queue", "--backend", "kubernetes", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    assert [r["id"] for r in json.loads(proc.stdout)] == ["k3x9q"]
    assert "kubernetes" in modules and modules & {"dask", "distributed", "dask_gateway"} == set()


def listed_by_dask_gateway(settings: GatewaySettings) -> dict[str, ClusterInfo]:
    gateway = connect(settings)
    reports = gateway.list_clusters(status=ALL_STATUSES.split(","))
    # Not closed here: Gateway.__del__ closes it, and fails if it was closed before.
    return {r.name: ClusterInfo(r.name, ClusterStatus(r.status.name), r.dashboard_link) for r in reports}


@pytest.mark.gateway
def test_plain_http_cluster_listing_matches_dask_gateway(home: Path) -> None:
    client = gateway_client(home, start=True)
    settings = client.settings
    name = client.create_cluster({})
    try:
        client.wait_running(name, timeout=120)
        plain = client.list_clusters()
        assert plain == listed_by_dask_gateway(settings)
        assert plain[name].status is ClusterStatus.RUNNING and plain[name].dashboard
    finally:
        client.stop_cluster(name)
    wait_for(lambda: client.list_clusters()[name].status is ClusterStatus.STOPPED, what="the cluster to stop")
    assert client.list_clusters() == listed_by_dask_gateway(settings)
