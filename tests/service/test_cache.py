"""The service's watch cache against the fake API server alone: it lists once,
follows changes made behind its back, lists again after a 410 Gone or a
dropped watch, and reports when its watches are down."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes.kube.fake_apiserver import FakeApiServer
from fakes.kube.fixtures import fake_apiserver  # noqa: F401
from fakes.kube.resources import JOB, POD
from fakes.kube.seeding import seeded_job, seeded_pod

from kbatch_dask.backends.kubernetes import annotations as names
from kbatch_dask.backends.kubernetes import manifests
from kbatch_dask.backends.kubernetes.client import KubeAPI, Timeouts, import_kubernetes
from kbatch_dask.errors import JobNotFound
from kbatch_dask.records import JobState
from kbatch_dask.service.cache import JobCache

NS = "hub"
WAIT = 20.0  # a bound on waiting for the watches, never a measured duration


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def kbatch_job(user: str, job_id: str, outcome: str = "Complete") -> dict[str, Any]:
    annotations = {names.ANN_NAME: f"train-{job_id}", names.ANN_USER: user, names.ANN_SCRIPT: "train.py"}
    labels = manifests.job_labels(user, job_id)
    return seeded_job(NS, manifests.job_name(user, job_id), labels, annotations, outcome, "python:3.11")


def seed(server: FakeApiServer, user: str, job_id: str, outcome: str = "Complete") -> None:
    """A Job and its pod straight into the store: no watch event, only a list shows it."""
    job = kbatch_job(user, job_id, outcome)
    server.store.insert(JOB, job)
    server.store.insert(POD, seeded_pod(job, outcome))


@pytest.fixture
def cache(fake_apiserver: FakeApiServer, tmp_path: Path) -> Iterator[JobCache]:  # noqa: F811
    seed(fake_apiserver, "alice", "a1")
    seed(fake_apiserver, "alice", "a2", "Running")
    seed(fake_apiserver, "bob", "b1", "Failed")
    kubeconfig = fake_apiserver.kubeconfig(tmp_path / "kubeconfig", namespace=NS)
    with pytest.MonkeyPatch.context() as patch:
        import_kubernetes()  # it reads $KUBECONFIG once, at import: point it here
        patch.setattr("kubernetes.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
        api = KubeAPI(None, Timeouts(5, 5))
    cache = JobCache(api, NS, watch_seconds=1).start()  # short watches: resumed often
    wait_for(lambda: cache.up, "the first lists")
    yield cache
    cache.stop(wait=10)


def ids(cache: JobCache, user: str | None) -> list[str]:
    return [r.id for r in cache.records(user)]


def test_the_first_list_gives_each_user_their_jobs_and_everyone_all(cache: JobCache) -> None:
    assert sorted(ids(cache, "alice")) == ["a1", "a2"]
    assert ids(cache, "bob") == ["b1"]
    assert sorted(ids(cache, None)) == ["a1", "a2", "b1"]
    assert cache.record("alice", "a2").state is JobState.RUNNING
    assert cache.record("bob", "b1").state is JobState.FAILED
    assert cache.active("alice") == 1


def test_listed_objects_are_left_out_of_the_cyclic_collectors_generations(cache: JobCache) -> None:
    # Its full collections would walk every listed Job and pod (seconds of stalls with 10,000).
    listed = next(iter(cache._jobs.values()))
    assert gc.is_tracked(listed)
    assert not any(obj is listed for obj in gc.get_objects())


def test_another_users_job_is_not_found(cache: JobCache) -> None:
    with pytest.raises(JobNotFound):
        cache.record("alice", "b1")


def test_reads_make_no_api_request(cache: JobCache, fake_apiserver: FakeApiServer) -> None:  # noqa: F811
    fake_apiserver.clear_requests()
    for _ in range(20):
        cache.records("alice")
        cache.records(None)
        cache.record("bob", "b1")
    assert [r for r in fake_apiserver.requests() if r.query.get("watch") != "true"] == []


def test_jobs_and_pods_made_and_removed_behind_its_back_appear_and_go(
    cache: JobCache,
    fake_apiserver: FakeApiServer,  # noqa: F811
) -> None:
    created = fake_apiserver.create("jobs", NS, kbatch_job("alice", "a3", outcome="Running"))
    wait_for(lambda: "a3" in ids(cache, "alice"), "the new Job")
    assert cache.record("alice", "a3").state is JobState.PENDING  # no pod yet
    pod = seeded_pod(created, "Running")
    pod["metadata"].pop("resourceVersion", None)
    made = fake_apiserver.create("pods", NS, pod)  # created Pending, as any pod
    fake_apiserver.store.mutate_status(POD, NS, made["metadata"]["name"], lambda s: s.update(pod["status"]))
    wait_for(lambda: cache.record("alice", "a3").state is JobState.RUNNING, "the pod's state in the record")
    fake_apiserver.store.delete(JOB, NS, manifests.job_name("bob", "b1"))
    wait_for(lambda: ids(cache, "bob") == [], "the deleted Job to go")


def test_a_410_gone_makes_it_list_again_and_see_what_no_event_told(
    cache: JobCache,
    fake_apiserver: FakeApiServer,  # noqa: F811
) -> None:
    seed(fake_apiserver, "alice", "missed")  # no event: the watches never hear of it
    fake_apiserver.compact()  # their next resume is from before the history
    wait_for(lambda: cache.jobs.lists >= 2 and cache.pods.lists >= 2, "the relists")
    assert "missed" in ids(cache, "alice")
    assert cache.record("alice", "missed").host is not None  # its pod came with the pods' relist
    assert cache.up


def test_dropped_watches_are_resumed_and_miss_nothing(cache: JobCache, fake_apiserver: FakeApiServer) -> None:  # noqa: F811
    seed(fake_apiserver, "bob", "b2")
    fake_apiserver.drop_watches()
    wait_for(lambda: "b2" in ids(cache, "bob"), "the relist after the drop")
    fake_apiserver.create("jobs", NS, kbatch_job("bob", "b3"))
    wait_for(lambda: "b3" in ids(cache, "bob"), "an event on the resumed watch")


def test_health_says_when_a_watch_is_down_and_why(cache: JobCache, fake_apiserver: FakeApiServer) -> None:  # noqa: F811
    health = cache.health()
    assert health["jobs"]["up"] and health["pods"]["up"]
    assert health["jobs"]["last-event-age-seconds"] is not None
    fake_apiserver.deny("list", "batch", "jobs")
    fake_apiserver.deny("watch", "batch", "jobs")
    fake_apiserver.drop_watches()
    wait_for(lambda: "403" in (cache.health()["jobs"]["error"] or ""), "the relist to be refused")
    assert not cache.up and not cache.health()["jobs"]["up"]
    # The pods' watch was dropped too: it lists again, allowed, and is up once that is done.
    wait_for(lambda: cache.health()["pods"]["up"], "the pods' relist")
    assert not cache.health()["jobs"]["up"]
    fake_apiserver.allow_all()
    wait_for(lambda: cache.up, "the watch to come back")


def test_a_write_of_the_service_is_seen_before_its_event(cache: JobCache) -> None:
    job = kbatch_job("alice", "mine")
    job["metadata"]["resourceVersion"] = "999999"  # as the API answered; the store never had it
    cache.written(manifests.job_name("alice", "mine"), job)
    assert "mine" in ids(cache, "alice")
    cache.written(manifests.job_name("alice", "a1"), None)  # deleted, the watch has not said so yet
    assert "a1" not in ids(cache, "alice")


def test_a_watch_event_older_than_a_write_does_not_undo_it(cache: JobCache, fake_apiserver: FakeApiServer) -> None:  # noqa: F811
    name = manifests.job_name("alice", "a2")
    newer = fake_apiserver.get("jobs", NS, name)
    assert newer is not None
    newer["metadata"]["resourceVersion"] = "999999"
    newer["metadata"]["annotations"][names.ANN_COMMENT] = "written"
    cache.written(name, newer)
    fake_apiserver.store.mutate_status(JOB, NS, name, lambda s: s.update(active=1))  # an event before the write's
    fake_apiserver.create("jobs", NS, kbatch_job("alice", "later"))  # its event follows the patch's
    wait_for(lambda: "later" in ids(cache, "alice"), "the events")
    assert cache.record("alice", "a2").comment == "written"


def test_a_kept_answer_is_built_again_only_after_a_change_to_its_users_jobs(
    cache: JobCache,
    fake_apiserver: FakeApiServer,  # noqa: F811
) -> None:
    builds: list[str] = []

    def build() -> bytes:
        builds.append("built")
        return ",".join(sorted(ids(cache, "alice"))).encode()

    assert cache.memo("alice", "queue", build) == b"a1,a2"
    assert cache.memo("alice", "queue", build) == b"a1,a2" and len(builds) == 1
    fake_apiserver.create("jobs", NS, kbatch_job("bob", "b9"))
    wait_for(lambda: "b9" in ids(cache, "bob"), "bob's new Job")
    assert cache.memo("alice", "queue", build) == b"a1,a2" and len(builds) == 1  # not alice's
    fake_apiserver.create("jobs", NS, kbatch_job("alice", "a9"))
    wait_for(lambda: "a9" in ids(cache, "alice"), "alice's new Job")
    assert cache.memo("alice", "queue", build) == b"a1,a2,a9" and len(builds) == 2


def open_ids(cache: JobCache) -> set[str]:
    return {record.id for _, record in cache.open_entries()}


def test_the_queue_sees_open_jobs_only_and_follows_them_as_they_change(
    cache: JobCache,
    fake_apiserver: FakeApiServer,  # noqa: F811
) -> None:
    assert open_ids(cache) == {"a2"}  # a1 Complete and b1 Failed: ended, left out
    queued = kbatch_job("alice", "q1", "Running")
    queued["spec"]["suspend"] = True
    del queued["status"]["active"]
    fake_apiserver.store.insert(JOB, queued)
    ended = kbatch_job("bob", "e1", "Complete")  # ended by the queue: still suspended, awaiting deletion
    ended["spec"]["suspend"] = True
    fake_apiserver.store.insert(JOB, ended)
    fake_apiserver.compact()  # the next resume is a 410: only the relist shows them
    wait_for(lambda: "q1" in ids(cache, "alice") and "e1" in ids(cache, "bob"), "the relist")
    assert open_ids(cache) == {"a2", "q1", "e1"}
    # a2 ends: its pod goes, and its Job completes.
    (pod,) = fake_apiserver.store.select(POD, NS, f"{names.LABEL_JOB_ID}=a2")
    fake_apiserver.store.delete(POD, NS, pod["metadata"]["name"])
    completed = kbatch_job("alice", "a2")["status"]
    fake_apiserver.store.mutate_status(
        JOB, NS, manifests.job_name("alice", "a2"), lambda s: s.update(completed, active=0)
    )
    wait_for(lambda: cache.record("alice", "a2").state is JobState.SUCCEEDED, "a2's end")
    assert open_ids(cache) == {"q1", "e1"}
    cache.written(manifests.job_name("alice", "q1"), None)  # deleted by the service
    assert open_ids(cache) == {"e1"}
