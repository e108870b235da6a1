"""The service's queue decided, pure (service/admission.py's plan): who starts
when a slot frees, in what order, and why the rest waits."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from kbatch_dask.backends.kubernetes import annotations as names
from kbatch_dask.records import JobRecord, JobState
from kbatch_dask.service.admission import HELD, QUOTA, Entry, entry, plan
from kbatch_dask.spec.dependency import NEVER, WAITING, Dependency, Outcome

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def job(
    user: str,
    job_id: str,
    order: int,
    state: JobState = JobState.PENDING,
    *,
    queued: bool = True,
    name: str = "job",
    held: bool = False,
    dependency: str | None = None,
    reason: str | None = None,
) -> Entry:
    ann = {names.ANN_QUEUE_ORDER: str(order)}
    if held:
        ann[names.ANN_HELD] = "true"
    if dependency:
        ann[names.ANN_DEPENDENCY] = dependency
    if reason:
        ann[names.ANN_PENDING_REASON] = reason
    obj: dict[str, Any] = {"metadata": {"name": f"{user}-{job_id}", "annotations": ann}, "spec": {"suspend": queued}}
    record = JobRecord(job_id, name, user, "kubernetes", state, T0, "s.py")
    return entry(obj, record)


def started(entries: list[Entry], per_user: int, total: int | None = None) -> list[str]:
    return [e.record.id for e in plan(entries, per_user, total).start]


def test_a_user_at_the_limit_waits_for_quota_and_the_oldest_starts_first() -> None:
    jobs = [job("alice", f"a{i}", order) for i, order in enumerate((5, 3, 4, 1, 2))]
    assert started(jobs, per_user=2) == ["a3", "a4"]  # orders 1 and 2
    decided = plan(jobs, 2, None)
    assert {e.record.id: reason for e, reason in decided.reasons} == {"a0": QUOTA, "a1": QUOTA, "a2": QUOTA}


def test_started_and_running_jobs_hold_their_slots_and_ended_ones_free_them() -> None:
    jobs = [
        job("alice", "r1", 1, JobState.RUNNING, queued=False),
        job("alice", "p1", 2, JobState.PENDING, queued=False),  # resumed, its pod not running yet
        job("alice", "s1", 3, JobState.SUCCEEDED, queued=False),
        job("alice", "q1", 4),
        job("alice", "q2", 5),
    ]
    assert started(jobs, per_user=3) == ["q1"]


def test_the_next_slot_goes_to_the_user_with_fewest_started_jobs_then_the_oldest() -> None:
    jobs = [
        job("alice", "r1", 1, JobState.RUNNING, queued=False),
        job("alice", "a1", 2),
        job("bob", "b1", 3),
        job("carol", "c1", 4),
        job("bob", "b2", 5),
    ]
    # bob and carol have none started: bob's is older; then carol, then alice and bob (1 each): alice older.
    assert started(jobs, per_user=5, total=4) == ["b1", "c1", "a1"]
    assert started(jobs, per_user=5, total=1) == []  # the cluster-wide limit is reached by alice's running job


def test_a_held_job_waits_held_and_does_not_block_the_next() -> None:
    jobs = [job("alice", "h1", 1, held=True), job("alice", "a2", 2)]
    decided = plan(jobs, 5, None)
    assert [e.record.id for e in decided.start] == ["a2"]
    assert [(e.record.id, reason) for e, reason in decided.reasons] == [("h1", HELD)]


def test_dependencies_wait_start_or_are_never_satisfied() -> None:
    jobs = [
        job("alice", "p1", 1, JobState.RUNNING, queued=False),
        job("alice", "f1", 2, JobState.FAILED, queued=False),
        job("alice", "d1", 3, dependency="afterok:p1"),
        job("alice", "d2", 4, dependency="afterok:f1"),
        job("alice", "d3", 5, dependency="afternotok:f1"),
        job("alice", "d4", 6, dependency="afterok:b1"),  # bob's: as unknown as a missing one
        job("bob", "b1", 7, JobState.SUCCEEDED, queued=False),
    ]
    decided = plan(jobs, 5, None)
    assert [e.record.id for e in decided.start] == ["d3"]
    assert sorted(e.record.id for e in decided.never) == ["d2", "d4"]
    assert [(e.record.id, reason) for e, reason in decided.reasons] == [("d1", WAITING)]


def test_predecessors_not_among_the_entries_are_asked_of_state_of() -> None:
    # The admission gives only open jobs; ended predecessors are looked up, once each.
    ended = {("alice", "s1"): JobState.SUCCEEDED, ("alice", "f1"): JobState.FAILED}
    asked: list[tuple[str, str]] = []

    def state_of(user: str, job_id: str) -> JobState | None:
        asked.append((user, job_id))
        return ended.get((user, job_id))

    jobs = [
        job("alice", "d1", 1, dependency="afterok:s1"),
        job("alice", "d2", 2, dependency="afterok:f1"),
        job("alice", "d3", 3, dependency="afterany:gone"),  # no longer known: ended, as before
        job("alice", "d4", 4, dependency="afterok:s1:f1"),
    ]
    decided = plan(jobs, 5, None, state_of)
    assert [e.record.id for e in decided.start] == ["d1", "d3"]
    assert sorted(e.record.id for e in decided.never) == ["d2", "d4"]
    assert sorted(asked) == [("alice", "f1"), ("alice", "gone"), ("alice", "s1")]


def test_singleton_waits_for_an_earlier_job_of_the_same_name() -> None:
    jobs = [
        job("alice", "n1", 1, JobState.RUNNING, queued=False, name="train"),
        job("alice", "n2", 2, name="train", dependency="singleton"),
        job("alice", "o1", 3, name="other", dependency="singleton"),
        job("bob", "n3", 4, name="train", dependency="singleton"),  # another user's namesake does not count
    ]
    assert started(jobs, per_user=5) == ["n3", "o1"]


def test_a_reason_already_written_is_not_written_again() -> None:
    jobs = [job("alice", "r1", 1, JobState.RUNNING, queued=False), job("alice", "q1", 2, reason=QUOTA)]
    assert plan(jobs, 1, None).reasons == []


def test_a_job_ended_in_the_queue_is_not_queued_and_counts_nothing() -> None:
    ended = job("alice", "c1", 1, JobState.CANCELLED)
    assert not ended.queued
    assert started([ended, job("alice", "q1", 2)], per_user=1) == ["q1"]


def test_dependency_syntax_and_outcomes() -> None:
    assert str(Dependency.parse(" afterany:k3x9q:k3x9q:m7p2r ")) == "afterany:k3x9q:m7p2r"
    for bad, message in [
        ("after:k3x9q", "expected afterok:ID"),
        ("afterok", "needs at least one job id"),
        ("singleton:k3x9q", "singleton takes no job ids"),
        ("afterok:K3/x", "is not a job id"),
    ]:
        try:
            Dependency.parse(bad)
        except ValueError as exc:
            assert message in str(exc) and str(exc).startswith("--dependency"), exc
        else:
            raise AssertionError(f"{bad} was accepted")
    any_ = Dependency("afterany", ("a", "b"))
    assert any_.outcome({"a": JobState.FAILED, "b": JobState.CANCELLED}) is Outcome.MET
    assert any_.outcome({"a": JobState.FAILED}) is Outcome.MET  # b no longer known: ended
    assert any_.outcome({"a": JobState.FAILED, "b": JobState.PENDING}) is Outcome.WAIT
    assert Dependency("afternotok", ("a",)).outcome({"a": JobState.SUCCEEDED}) is Outcome.NEVER
    assert NEVER == "dependency never satisfied"
