"""``kbatch doctor`` in a notebook session on a real JupyterHub."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import kbatch

from .conftest import SESSION_SCOPES, SESSION_SCOPES_WITHOUT_TOKENS, Session

pytestmark = pytest.mark.gateway


def doctor_json() -> tuple[int, dict[str, dict[str, Any]]]:
    proc = kbatch("doctor", "-o", "json")
    return proc.returncode, {c["name"]: c for c in json.loads(proc.stdout)["checks"]}


def test_all_well_on_a_hub_that_allows_job_tokens(hub_session: Session) -> None:
    hub_session.login(SESSION_SCOPES)
    code, checks = doctor_json()
    assert code == 0, checks
    assert checks["gateway auth"]["status"] == "ok"
    assert checks["cluster options"]["message"] == "the gateway offers worker_cores, worker_memory"
    assert checks["job tokens"]["status"] == "ok"
    assert checks["dashboard links"]["status"] == "ok"
    # The token it made to find out is gone again.
    assert [t for t in hub_session.hub.tokens(hub_session.user) if t["note"].startswith("kbatch doctor")] == []


def test_hub_refusing_job_tokens(hub_session: Session) -> None:
    hub_session.login(SESSION_SCOPES_WITHOUT_TOKENS)
    code, checks = doctor_json()
    assert code == 1
    tokens = checks["job tokens"]
    assert tokens["status"] == "fail" and "HTTP 403" in tokens["message"]
    assert "jobs lose the gateway when your server stops" in tokens["message"]
    assert "c.Spawner.server_token_scopes" in tokens["fix"] and "'tokens!user'" in tokens["fix"]
    assert checks["gateway auth"]["status"] == "ok"


def test_session_without_gateway_access(hub_session: Session) -> None:
    hub_session.login(["tokens!user"])
    code, checks = doctor_json()
    assert code == 1
    auth = checks["gateway auth"]
    assert auth["status"] == "fail" and "access:services!service=dask-gateway" in auth["fix"]


def test_gateway_down_behind_the_hub(hub_session: Session) -> None:
    hub_session.login(SESSION_SCOPES)
    hub_session.gate.close()
    code, checks = doctor_json()
    assert code == 1
    assert checks["gateway"]["status"] == "fail" and "DASK_GATEWAY__ADDRESS" in checks["gateway"]["fix"]
    assert "gateway auth" not in checks
