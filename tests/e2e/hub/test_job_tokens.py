"""Job tokens on a real JupyterHub: a job outlives its session's token.

The driver of each job below cannot reach the gateway at first (the gate is
closed, as for a pod still pending); meanwhile the user's notebook server
stops and the hub deletes its token. Only then can the driver create its
cluster.
"""

from __future__ import annotations

import json
import os
import stat
import urllib.request
import warnings
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import kbatch, show_json, wait_for, write_script

from kbatch_dask.errors import KbatchWarning
from kbatch_dask.gateway.transports import JUPYTERHUB_TOKEN_REFUSED

from .conftest import SESSION_SCOPES, SESSION_SCOPES_WITHOUT_TOKENS, Session

pytestmark = pytest.mark.gateway

SCRIPT = """\
import dask.bag as db
from dask.distributed import get_client

get_client().wait_for_workers(1, timeout=60)
print("total", db.range(100, npartitions=4).sum().compute(), flush=True)
"""
TIME_LIMIT = 600  # -t 10:00
MARGIN = 3600  # kbatch.hub.token-margin


def submit(session: Session, tmp_path: Path, *extra: str) -> tuple[str, str]:
    """Submit the job with the gate closed; (job id, stderr)."""
    session.gate.close()
    script = write_script(tmp_path / "train.py", SCRIPT)
    proc = kbatch("-o", str(tmp_path / "train-%j.out"), "--parsable", *extra, str(script), "--dask-workers", "1")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip(), proc.stderr


def log_off_while_pending(session: Session) -> None:
    """The driver is retrying the gateway; the user's server stops; then the gateway answers."""
    wait_for(lambda: session.gate.dropped > 0, timeout=30, what="the driver to try the gateway")
    assert session.token is not None
    session.stop_server()
    assert not session.hub.token_works(session.token["token"])
    session.gate.open()


def wait_ended(job_id: str, timeout: float = 120) -> dict[str, Any]:
    return wait_for(
        lambda: (r := show_json(job_id))["state"] not in ("PENDING", "RUNNING") and r,
        timeout=timeout,
        what=f"job {job_id} to end",
    )


def job_tokens(session: Session) -> list[dict[str, Any]]:
    return [t for t in session.hub.tokens(session.user) if t["note"].startswith("kbatch-dask job 'train'")]


def test_job_token_outlives_the_session(hub_session: Session, home: Path, tmp_path: Path) -> None:
    session = hub_session
    session_token = session.login(SESSION_SCOPES)["token"]
    observer = session.admin_token()

    job_id, stderr = submit(session, tmp_path, "-t", "10:00")
    assert "Warning" not in stderr

    # The hub made a token for the job, with the configured scopes and expiry.
    [minted] = job_tokens(session)
    assert {"access:services!service=dask-gateway", f"tokens!user={session.user}"} <= set(minted["scopes"])
    lifetime = datetime.fromisoformat(minted["expires_at"]) - datetime.fromisoformat(minted["created"])
    assert abs(lifetime.total_seconds() - (TIME_LIMIT + MARGIN)) < 60

    # It is in the job's private environment only.
    env_file = home / "jobs" / job_id / "env.json"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    job_token = json.loads(env_file.read_text())["JUPYTERHUB_API_TOKEN"]
    assert job_token != session_token
    assert session.gateway.accepts(job_token)

    log_off_while_pending(session)
    job = wait_ended(job_id)
    assert job["state"] == "SUCCEEDED", job
    assert "total 4950" in (tmp_path / f"train-{job_id}.out").read_text()

    # Its cluster was created and stopped with the job's token.
    cluster = job["dask"]["cluster"]
    wait_for(
        lambda: session.gateway.clusters(observer)[cluster]["status"] == "STOPPED",
        timeout=20,
        what=f"cluster {cluster} to stop",
    )
    # The relative public address was made absolute from the hub's URL.
    assert job["dask"]["dashboard"] == f"{session.gateway.address}/clusters/{cluster}/status"

    # The token died with the job, and never showed anywhere.
    assert not session.hub.token_works(job_token)
    assert not session.gateway.accepts(job_token)
    assert job_tokens(session) == []
    seen = [
        kbatch("queue", "--all", "-o", "json", check=True).stdout,
        kbatch("queue", "--all", "-o", "wide", check=True).stdout,
        kbatch("show", job_id, check=True).stdout,
        kbatch("show", job_id, "-o", "yaml", check=True).stdout,
        kbatch("logs", job_id, check=True).stdout,
        stderr,
        *(
            p.read_text(errors="replace")
            for p in (home / "jobs" / job_id).rglob("*")
            if p.is_file() and p.name != "env.json"
        ),
    ]
    assert not [text for text in seen if job_token in text or session_token in text]


def test_dashboard_link_works_for_a_person_and_cancel_deletes_the_token(
    hub_session: Session, home: Path, tmp_path: Path
) -> None:
    session = hub_session
    session.login(SESSION_SCOPES)
    script = write_script(tmp_path / "sleeper.py", "import time\ntime.sleep(60)\n")
    proc = kbatch("--parsable", str(script), "--dask-workers", "1")
    job_id = proc.stdout.strip()
    job_token = json.loads((home / "jobs" / job_id / "env.json").read_text())["JUPYTERHUB_API_TOKEN"]
    try:
        job = wait_for(lambda: (r := show_json(job_id))["dask"]["dashboard"] and r, timeout=60, what="a dashboard")
        link = job["dask"]["dashboard"]
        assert link.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(link, timeout=10) as resp:
            assert resp.status == 200
    finally:
        assert "CANCELLED" in kbatch("cancel", job_id, check=True).stdout
    assert not session.hub.token_works(job_token)


def test_without_job_tokens_the_job_fails_as_warned(hub_session: Session, tmp_path: Path) -> None:
    session = hub_session
    session.login(SESSION_SCOPES_WITHOUT_TOKENS)
    observer = session.admin_token()

    job_id, stderr = submit(session, tmp_path)

    # One warning line: the risk, and the admin setting that removes it.
    [warning] = stderr.strip().splitlines()
    assert warning.startswith("Warning: JupyterHub did not create a token for this job (HTTP 403")
    assert "loses access to the Dask-Gateway" in warning and "when your notebook server stops" in warning
    assert "c.Spawner.server_token_scopes" in warning and "'tokens!user'" in warning
    assert job_tokens(session) == []

    log_off_while_pending(session)
    job = wait_ended(job_id)
    assert job["state"] == "FAILED"
    assert JUPYTERHUB_TOKEN_REFUSED in job["reason"]
    assert session.gateway.clusters(observer) == {}


@pytest.fixture
def config_from_session(hub_session: Session, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """In-process API calls see the session's environment (dask reads it once), and
    later tests see theirs again."""
    import dask.config

    dask.config.refresh()
    yield
    monkeypatch.undo()
    dask.config.refresh()


def test_python_api_issues_the_warning(hub_session: Session, config_from_session: None, tmp_path: Path) -> None:
    import kbatch_dask

    session = hub_session
    session.login(SESSION_SCOPES_WITHOUT_TOKENS)
    script = write_script(tmp_path / "noop.py", "print('hi')\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        job = kbatch_dask.submit(str(script), dask_workers=1, output=str(tmp_path / "noop.out"))
    [warning] = [w.message for w in caught if issubclass(w.category, KbatchWarning)]
    assert "server_token_scopes" in str(warning)
    assert job.warnings == (warning,)
    assert job.wait(timeout=120).value == "SUCCEEDED"


def test_no_token_outside_jupyterhub_auth(
    hub_session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job without a cluster needs no token: none is made, no warning given."""
    session = hub_session
    session.login(SESSION_SCOPES)
    script = write_script(tmp_path / "train.py", "print('no cluster')\n")
    proc = kbatch("--parsable", "--wait", str(script), "--dask-workers", "0")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert job_tokens(session) == []
    env = json.loads((Path(os.environ["KBATCH_DASK_HOME"]) / "jobs" / proc.stdout.strip() / "env.json").read_text())
    assert "JUPYTERHUB_API_TOKEN" not in env
