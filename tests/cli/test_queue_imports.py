"""``kqueue`` and a local submission import only what they use (which
``sys.modules`` shows after the command ran in a fresh interpreter): the queue
neither the spec's validation, nor the other commands, nor the API's submit
half, nor PyYAML once the config files were parsed (their data is cached), nor
an HTTP stack when no gateway is to be asked, nor what only a submission or
the gateway's start or stop needs (subprocess, secrets, signal, shutil, random); a submission without a cluster
no HTTP stack, no socket, nor what only other commands use.
``tests/test_lazy_imports.py`` holds the heavier packages (dask, distributed,
dask-gateway, kubernetes) to the same rule."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import isolated_session

from kbatch_dask.records import DaskInfo, JobRecord, JobState, now

RUN_AND_LIST_MODULES = """
import json, os, sys
from kbatch_dask import cli
try:
    getattr(cli, sys.argv[1])(sys.argv[2:])
finally:
    with open(os.environ["MODULES_OUT"], "w") as f:
        json.dump(sorted(sys.modules), f)
"""

NOT_FOR_THE_QUEUE = {
    "yaml",
    "kbatch_dask.spec",
    "kbatch_dask.cli.commands",
    "kbatch_dask.api",
    "kbatch_dask.job",
    "kbatch_dask.hub.tokens",
    "urllib.request",
    "http.client",
    "asyncio",
    "ssl",
    "subprocess",  # submitting, and starting the embedded gateway, need it
    "secrets",  # with hmac and OpenSSL: the gateway's first start needs it
    "kbatch_dask.report",  # `kbatch report` and `show` read it
    "shutil",  # with bz2, lzma and fnmatch: copying a job's script, removing its directory, `queue --watch`
    "random",  # a new job's id
    "signal",  # stopping the embedded gateway
}


@pytest.fixture
def session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A state directory without a gateway: the queue has no cluster to ask about."""
    home = isolated_session(tmp_path, monkeypatch, "kbatch-home")
    monkeypatch.setenv("DASK_KBATCH__BACKEND", "local")
    return home


def imported(tmp_path: Path, entry: str, *args: str) -> tuple[set[str], str]:
    """Run ``entry`` (``main`` is kbatch, ``kqueue_main`` kqueue) in a fresh interpreter:
    the modules it imported, and its output."""
    out = tmp_path / "modules.json"
    proc = subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST_MODULES, entry, *args],
        env={**os.environ, "MODULES_OUT": str(out)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "SystemExit" not in proc.stderr and proc.returncode == 0, proc.stderr
    return set(json.loads(out.read_text())), proc.stdout


def ended_jobs(home: Path, n: int) -> None:
    """``n`` jobs that ended in the last hour, each with the cluster it had."""
    at = now().replace(microsecond=0)
    for i in range(n):
        record = JobRecord(
            f"e{i:04d}", f"job-{i}", "me", "local", JobState.SUCCEEDED, at - timedelta(minutes=30), "j.py",
            started=at - timedelta(minutes=29), finished=at, exit_code=0,
            dask=DaskInfo("2", cluster=f"gone.{i}", dashboard="http://127.0.0.1:1/status"),
        )  # fmt: skip
        (home / "jobs" / record.id).mkdir(parents=True)
        (home / "jobs" / record.id / "record.json").write_text(json.dumps(record.to_dict()))


def test_kqueue_imports_neither_the_spec_nor_yaml_nor_an_http_stack(session: Path, tmp_path: Path) -> None:
    imported(tmp_path, "kqueue_main")  # the first run parses the config files
    modules, out = imported(tmp_path, "kqueue_main")
    assert out.split() == ["JOBID", "NAME", "STATE", "TIME", "WORKERS", "DASHBOARD"]
    assert modules & NOT_FOR_THE_QUEUE == set()
    ended_jobs(session, 3)
    modules, out = imported(tmp_path, "kqueue_main", "-o", "wide")
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["e0000", "e0001", "e0002"]
    assert modules & NOT_FOR_THE_QUEUE == set()


def test_a_local_submission_without_a_cluster_imports_no_http_stack(session: Path, tmp_path: Path) -> None:
    script = tmp_path / "x.py"
    script.write_text("print('hello')\n")
    args = ("--parsable", "-o", str(tmp_path / "x.out"), str(script), "--dask-workers", "0")
    modules, out = imported(tmp_path, "main", *args)
    assert out.strip() and modules & {"urllib.request", "http.client", "asyncio", "ssl"} == set()
    # Nor what only other commands, or a submission with a cluster, use; nor click's
    # difflib, which its lookup of a short flag (-o) imports to suggest near names.
    unused = {"socket", "secrets", "tempfile", "kbatch_dask.report", "kbatch_dask.reaper", "difflib"}
    assert modules & unused == set()
