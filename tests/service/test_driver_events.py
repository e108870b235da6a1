"""The service's checks of its drivers' events (kbatch_dask/service/driver_events.py),
pure parts; tests/e2e/service/test_driver_events.py runs them end to end."""

from __future__ import annotations

from typing import Any

import pytest

from kbatch_dask.backends.kubernetes import annotations as names
from kbatch_dask.errors import BadInput
from kbatch_dask.hub.tokens import TokenPolicy
from kbatch_dask.records import JobState
from kbatch_dask.service.driver_events import (
    DriverEvents,
    JobTokens,
    _final,
    digest,
    ended,
    new_credential,
    parse_event,
)


def test_credentials_are_32_random_bytes_and_only_their_hash_is_kept() -> None:
    a, b = new_credential(), new_credential()
    assert a != b and len(a) >= 43  # 32 bytes, URL-safe base64
    assert digest(a) != a and len(digest(a)) == 64 and a not in digest(a)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "expected a JSON object"),
        ({"event": "exploded"}, "event 'exploded': expected one of started, cluster, owned, finished"),
        ({"event": "started", "state": "FAILED"}, "unknown field 'state' of a started event"),
        ({"event": "cluster"}, "needs the cluster's name"),
        ({"event": "cluster", "name": "c", "worker_limit": "2"}, "worker_limit: not a valid value"),
        ({"event": "owned", "clusters": "c"}, "clusters: expected a list"),
        ({"event": "finished", "state": "DONE"}, "state 'DONE': expected a job state"),
        ({"event": "finished", "state": "FAILED", "exit_code": True}, "exit_code: not a valid value"),
    ],
)
def test_a_malformed_event_is_one_line_naming_what(body: Any, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        parse_event(body)


def job(backoff: int = 0, failed: int = 0, conditions: tuple[str, ...] = (), deleting: bool = False) -> dict[str, Any]:
    meta = {"deletionTimestamp": "2026-01-01T00:00:00Z"} if deleting else {}
    status = {"failed": failed, "conditions": [{"type": t, "status": "True"} for t in conditions]}
    return {"metadata": meta, "spec": {"backoffLimit": backoff}, "status": status}


def test_only_a_last_attempts_end_revokes_the_token() -> None:
    assert _final(job(), JobState.FAILED)
    assert _final(job(backoff=2), JobState.SUCCEEDED)
    assert not _final(job(backoff=2, failed=1), JobState.FAILED)  # one retry left: the next pod needs it
    assert _final(job(backoff=2, failed=2), JobState.FAILED)
    assert _final(job(backoff=2, deleting=True), JobState.FAILED)  # cancelled


def test_a_job_has_ended_by_its_conditions_only() -> None:
    assert ended(job(conditions=["Complete"])) and ended(job(conditions=["Failed"]))
    assert not ended(job(deleting=True)) and not ended(job(failed=1))


class Revoked(JobTokens):
    """Tokens that record what they revoke instead of asking a hub."""

    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:9/hub/api", "unused", TokenPolicy())
        self.revoked: list[str] = []

    def revoke(self, user: str, token_id: str, job: str) -> bool:
        self.revoked.append(token_id)
        return True


class Patches:
    """An API that only takes patches: a sweep reads nothing from Kubernetes."""

    def __init__(self) -> None:
        self.patched: list[str] = []

    def patch_job(self, namespace: str, name: str, patch: Any) -> None:
        self.patched.append(name)


def test_a_sweep_revokes_only_ended_jobs_tokens_from_the_jobs_it_is_given() -> None:
    def with_token(name: str, token: str | None, *conditions: str) -> dict[str, Any]:
        found = job(conditions=conditions)
        annotations = {names.ANN_USER: "alice", **({names.ANN_HUB_TOKEN_ID: token} if token else {})}
        found["metadata"] |= {"name": name, "namespace": "hub", "annotations": annotations}
        return found

    tokens, api = Revoked(), Patches()
    events = DriverEvents(api, lambda: ["hub"], tokens)  # type: ignore[arg-type]
    jobs = [with_token("a", "t1", "Failed"), with_token("b", "t2"), with_token("c", None, "Complete")]
    assert events.sweep(jobs) == 1
    assert tokens.revoked == ["t1"] and api.patched == ["a"]
