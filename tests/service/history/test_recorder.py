"""The watch cache's changes in the job records, on SQLite and PostgreSQL:
against the fake API server, a Job deleted from Kubernetes (as its TTL would)
keeps its last record, one deleted before it ended is recorded CANCELLED, and
the jobs that went while no service watched are found at the first list."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fakes.kube.fake_apiserver import FakeApiServer
from fakes.kube.fixtures import fake_apiserver  # noqa: F401
from fakes.kube.resources import JOB, POD

from kbatch_dask.backends.kubernetes import manifests
from kbatch_dask.backends.kubernetes.client import KubeAPI, Timeouts, import_kubernetes
from kbatch_dask.records import JobRecord, JobState, now
from kbatch_dask.service.cache import JobCache
from kbatch_dask.service.history import History, Recorder
from service.test_cache import NS, seed, wait_for


def api_of(server: FakeApiServer, folder: Path) -> KubeAPI:
    kubeconfig = server.kubeconfig(folder / "kubeconfig", namespace=NS)
    with pytest.MonkeyPatch.context() as patch:
        import_kubernetes()  # it reads $KUBECONFIG once, at import: point it here
        patch.setattr("kubernetes.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
        return KubeAPI(None, Timeouts(5, 5))


def watched(server: FakeApiServer, folder: Path, history: History) -> tuple[JobCache, Recorder]:
    """A cache telling a started recorder, as the service's main makes them."""
    recorder = Recorder(history)
    cache = JobCache(api_of(server, folder), NS, watch_seconds=1, listener=recorder)
    recorder.touch = cache.touch
    recorder.start()
    cache.start()
    wait_for(lambda: cache.up, "the first lists")
    return cache, recorder


@pytest.fixture
def history(database_url: str) -> Iterator[History]:
    opened = History(database_url)
    yield opened
    opened.close()


def delete_as_the_ttl_does(server: FakeApiServer, user: str, job_id: str) -> None:
    """The Job's pods, then the Job (foreground deletion: dependents first)."""
    for pod in server.objects("pods", NS, f"kbatch-dask.io/job-id={job_id}"):
        server.store.delete(POD, NS, pod["metadata"]["name"])
    server.store.delete(JOB, NS, manifests.job_name(user, job_id))


def stored(history: History, user: str, job_id: str) -> JobRecord | None:
    return history.get(user, job_id)


def test_a_job_deleted_from_kubernetes_keeps_its_last_record(
    fake_apiserver: FakeApiServer,  # noqa: F811
    tmp_path: Path,
    history: History,
) -> None:
    seed(fake_apiserver, "bob", "b1", "Failed")
    seed(fake_apiserver, "alice", "a1")
    cache, recorder = watched(fake_apiserver, tmp_path, history)
    try:
        live = cache.record("bob", "b1")
        assert live.state is JobState.FAILED and live.exit_code is not None
        wait_for(lambda: stored(history, "bob", "b1") == live, "the record written from the cache")
        delete_as_the_ttl_does(fake_apiserver, "bob", "b1")
        wait_for(lambda: not cache.holds("bob", "b1"), "the Job to leave the cache")
        recorder.flush()
        assert stored(history, "bob", "b1") == live  # not LOST for want of its pod: the end as it was seen
        assert recorder.find("bob", "b1") == live and recorder.find("alice", "b1") is None
        assert [r.id for r in recorder.records("bob")] == ["b1"]
    finally:
        cache.stop(wait=10)
        recorder.stop()


def test_a_job_deleted_before_it_ended_is_recorded_cancelled(
    fake_apiserver: FakeApiServer,  # noqa: F811
    tmp_path: Path,
    history: History,
) -> None:
    seed(fake_apiserver, "alice", "a2", "Running")
    cache, recorder = watched(fake_apiserver, tmp_path, history)
    try:
        assert cache.record("alice", "a2").state is JobState.RUNNING
        fake_apiserver.store.delete(JOB, NS, manifests.job_name("alice", "a2"))
        wait_for(lambda: not cache.holds("alice", "a2"), "the Job to leave the cache")
        found = recorder.find("alice", "a2")  # noted or written: never missing in between
        assert found is not None and found.state is JobState.CANCELLED
        recorder.flush()
        written = stored(history, "alice", "a2")
        assert written is not None and written.state is JobState.CANCELLED and written.finished is not None
        assert written.reason == "its Kubernetes Job was deleted before it ended"
    finally:
        cache.stop(wait=10)
        recorder.stop()


def test_jobs_gone_while_no_service_watched_end_lost_at_the_first_list(
    fake_apiserver: FakeApiServer,  # noqa: F811
    tmp_path: Path,
    history: History,
) -> None:
    seed(fake_apiserver, "alice", "a2", "Running")
    base = JobRecord("gone1", "train", "alice", "kubernetes", JobState.RUNNING, now(), "train.py", started=now())
    history.put([(base, NS), (base.replace(id="a2"), NS), (base.replace(id="done", state=JobState.SUCCEEDED), NS)])
    cache, recorder = watched(fake_apiserver, tmp_path, history)
    try:
        wait_for(lambda: (stored(history, "alice", "gone1") or base).state is JobState.LOST, "the reconciliation")
        recorder.flush()  # both lists are in: a2's record from before its pod was listed (PENDING) is superseded
        gone = stored(history, "alice", "gone1")
        assert gone is not None and gone.reason == "its Kubernetes Job went while the service was not watching"
        a2, done = stored(history, "alice", "a2"), stored(history, "alice", "done")
        assert a2 is not None and a2.state is JobState.RUNNING  # its Job is there
        assert done is not None and done.state is JobState.SUCCEEDED  # an end stays
    finally:
        cache.stop(wait=10)
        recorder.stop()


def test_retention_deletes_old_records_tells_the_archive_and_the_cache(history: History) -> None:
    expired: list[list[tuple[str, str]]] = []
    touched: list[set[str]] = []
    recorder = Recorder(history, touch=lambda users: touched.append(set(users)), on_expired=expired.append)
    long_ago = now() - timedelta(days=100)
    old = JobRecord("old1", "train", "alice", "kubernetes", JobState.SUCCEEDED, long_ago, "t.py", finished=long_ago)
    history.put([(old, NS), (old.replace(id="new1", finished=now()), NS)])
    assert recorder.expire(timedelta(days=90)) == 1
    assert expired == [[("alice", "old1")]] and touched == [{"alice"}]
    assert recorder.find("alice", "old1") is None and recorder.find("alice", "new1") is not None
    assert recorder.expire(timedelta(days=90)) == 0 and len(expired) == 1  # nothing more to say
