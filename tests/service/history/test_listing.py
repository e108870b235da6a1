"""The service's reads with the database behind the cache: a listing makes one
query at most (none when nothing changed since the last), and a job gone from
Kubernetes is listed, shown and "cancelled" (it had ended) from its record,
for its owner only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes.kube.fake_apiserver import FakeApiServer
from fakes.kube.fixtures import fake_apiserver, kube_env  # noqa: F401
from fakes.kube.notebook import NAMESPACE
from fakes.kube.resources import JOB
from sqlalchemy import event

from kbatch_dask.backends.kubernetes import manifests
from kbatch_dask.errors import JobNotFound
from kbatch_dask.records import JobState
from kbatch_dask.service import submission
from kbatch_dask.service.jobs import Caller, JobService
from service.test_namespaces import body, make_service, start_server

ALICE, BOB = Caller("alice"), Caller("bob")


@pytest.fixture
def service(fake_apiserver: FakeApiServer, kube_env: Path, tmp_path: Path) -> JobService:  # noqa: F811
    start_server(fake_apiserver, "alice", tmp_path)
    made = make_service(tmp_path)
    yield made
    made.cache.stop()
    made.api.close()


def test_a_listing_makes_one_query_and_none_when_nothing_changed(service: JobService) -> None:
    service.submit(ALICE, submission.parse(body()))
    statements: list[str] = []
    event.listen(service.records.history.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    first = service.list_json(ALICE)
    assert len(statements) == 1  # the jobs only the database has, for every job the cache has
    assert service.list_json(ALICE) == first and len(statements) == 1  # kept: no query


def test_a_job_gone_from_kubernetes_is_read_from_its_record_by_its_owner_only(
    service: JobService,
    fake_apiserver: FakeApiServer,  # noqa: F811
) -> None:
    record = service.submit(ALICE, submission.parse(body()))
    fake_apiserver.store.delete(JOB, NAMESPACE, manifests.job_name("alice", record.id))
    service.cache.written(manifests.job_name("alice", record.id), None)  # as the watch would tell it
    assert not service.cache.holds("alice", record.id)
    shown = service.get(ALICE, record.id)
    assert (shown.id, shown.user) == (record.id, "alice")
    assert [j["id"] for j in json.loads(service.list_json(ALICE).body)["jobs"]] == [record.id]
    assert service.cancel(ALICE, record.id) == shown  # nothing to stop
    with pytest.raises(JobNotFound):
        service.get(BOB, record.id)
    with pytest.raises(JobNotFound):
        service.cancel(BOB, record.id)
    assert json.loads(service.list_json(BOB).body)["jobs"] == []
    assert shown.state is JobState.PENDING  # as submitted: this test's service has no recorder thread
