"""The service's queue: jobs that cannot start yet wait as suspended Jobs, and
are resumed when their turn comes.

Every job the service submits is created suspended (``spec.suspend: true``: the
Job controller makes no pod) with annotations
(:mod:`~kbatch_dask.backends.kubernetes.annotations`) that hold all of the
queue: its place (``queue-order``, the submit time in nanoseconds), why it
waits (``pending-reason``: ``waiting for quota``, ``dependency``, ``held``), its
``--dependency`` and whether it is held. There is no other state, so a
restarted service finds the queue, in order, in the Jobs its watch cache lists.

:func:`plan` (pure) decides from the cache's Jobs and records what to do:

- a held job waits (``held``); a job whose dependency can never be met is
  ended ``CANCELLED (dependency never satisfied)``: the end recorded in its
  annotations, the Job left suspended (no pod, nothing counted) until
  ``kbatch.kubernetes.ttl-days`` after, then deleted; one whose dependency is
  not met yet waits (``dependency``);
- the others wait for quota: within a user in submit order; across users the
  next slot goes to the user with the fewest started jobs, ties to the oldest
  submission, while the user is under ``max-running-jobs`` and everyone under
  ``max-running-jobs-total``. A started job is one resumed: pending on a node
  or running, until it ends.

:class:`Admission` carries a plan out (a merge patch per Job that changes) after
each change the cache tells (no polling of the API), and whenever a submit,
hold or release asks, all under one lock, so two passes never start the same
slot twice.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from kbatch_dask.backends.kubernetes import annotations as names
from kbatch_dask.backends.kubernetes.client import KubeAPI
from kbatch_dask.errors import Conflict, JobNotFound, KbatchError, KubeError
from kbatch_dask.records import JobRecord, JobState, now
from kbatch_dask.service.cache import JobCache
from kbatch_dask.spec.dependency import NEVER, WAITING, Dependency, Outcome

QUOTA, HELD = "waiting for quota", "held"
PASS_EVERY = 60.0  # seconds: a pass even without a change (the TTL of queue-cancelled Jobs)
Obj = dict[str, Any]


@dataclass(frozen=True)
class Entry:
    """One Job as the queue sees it."""

    job: Obj = field(repr=False)
    record: JobRecord
    queued: bool  # suspended by the admission and not ended: waiting in the queue
    order: int
    held: bool
    dependency: Dependency | None

    @property
    def key(self) -> tuple[int, str]:
        return self.order, self.record.id

    @property
    def reason(self) -> str | None:
        return _annotations(self.job).get(names.ANN_PENDING_REASON)


@dataclass
class Plan:
    start: list[Entry] = field(default_factory=list)
    reasons: list[tuple[Entry, str]] = field(default_factory=list)  # waiting ones whose reason changes
    never: list[Entry] = field(default_factory=list)  # to end CANCELLED (dependency never satisfied)
    started: collections.Counter[str] = field(default_factory=collections.Counter)  # user -> started, after
    quota_waiting: set[str] = field(default_factory=set)  # users with a job left waiting for quota


def _annotations(job: Mapping[str, Any]) -> Mapping[str, str]:
    return (job.get("metadata") or {}).get("annotations") or {}


def entry(job: Obj, record: JobRecord) -> Entry:
    ann = _annotations(job)
    order = ann.get(names.ANN_QUEUE_ORDER)
    suspended = bool((job.get("spec") or {}).get("suspend"))
    dependency = ann.get(names.ANN_DEPENDENCY)
    return Entry(
        job=job,
        record=record,
        queued=order is not None and suspended and not record.state.is_terminal(),
        order=int(order) if order and order.isdigit() else 0,
        held=ann.get(names.ANN_HELD) == "true",
        dependency=Dependency.parse(dependency) if dependency else None,
    )


def plan(
    entries: Iterable[Entry],
    per_user: int,
    total: int | None,
    state_of: Callable[[str, str], JobState | None] = lambda user, job_id: None,
) -> Plan:
    """What to start, and why the rest waits (see the module's docstring).
    ``entries``: at least every job not ended; ``state_of(user, id)``: the
    state of a job not among them (None: no longer known)."""
    entries = list(entries)
    result = Plan()
    states: dict[str, dict[str, JobState | None]] = collections.defaultdict(dict)
    for e in entries:
        states[e.record.user][e.record.id] = e.record.state
        if not e.queued and not e.record.state.is_terminal():
            result.started[e.record.user] += 1
    waiting: dict[str, list[Entry]] = collections.defaultdict(list)
    for e in sorted((e for e in entries if e.queued), key=lambda e: e.key):
        if e.held:
            _wait(result, e, HELD)
            continue
        if e.dependency is not None:
            known = states[e.record.user]
            for job_id in e.dependency.ids:
                if job_id not in known:
                    known[job_id] = state_of(e.record.user, job_id)
            outcome = e.dependency.outcome(known, _earlier_namesake_active(e, entries))
            if outcome is Outcome.NEVER:
                result.never.append(e)
                continue
            if outcome is Outcome.WAIT:
                _wait(result, e, WAITING)
                continue
        waiting[e.record.user].append(e)
    running = sum(result.started.values())
    while total is None or running < total:
        users = [u for u, queue in waiting.items() if queue and result.started[u] < per_user]
        if not users:
            break
        user = min(users, key=lambda u: (result.started[u], waiting[u][0].key))
        result.start.append(waiting[user].pop(0))
        result.started[user] += 1
        running += 1
    for user, queue in waiting.items():
        for e in queue:
            _wait(result, e, QUOTA)
        if queue:
            result.quota_waiting.add(user)
    return result


def _wait(result: Plan, e: Entry, reason: str) -> None:
    if e.reason != reason:
        result.reasons.append((e, reason))


def _earlier_namesake_active(e: Entry, entries: list[Entry]) -> bool:
    """Whether a job of the same user and name submitted before ``e`` is still active (singleton)."""
    return any(
        o.record.user == e.record.user
        and o.record.name == e.record.name
        and o.record.id != e.record.id
        and not o.record.state.is_terminal()
        and (not o.queued or o.key < e.key)
        for o in entries
    )


class Admission:
    """Carries out :func:`plan` on the Jobs of ``cache`` with ``api``."""

    def __init__(
        self,
        api: KubeAPI,
        cache: JobCache,
        per_user: int,
        total: int | None,
        ttl: timedelta,
        revoke: Callable[[Obj], None] = lambda job: None,
        starting: Callable[[Obj], Mapping[str, str]] = lambda job: {},
    ) -> None:
        self.api, self.cache = api, cache
        self.per_user, self.total, self.ttl = per_user, total, ttl
        self._revoke = revoke  # the hub token of a job that ends before it started
        # What a job needs as it leaves the queue (its gateway token): the annotations
        # to add, or a KbatchError that ends it FAILED.
        self._starting = starting
        self.lock = threading.RLock()
        self._poked = threading.Event()
        self._stopping = threading.Event()
        self.log = logging.getLogger("kbatch_dask.service.admission")
        cache.listen(self._poked.set)

    # -- running ----------------------------------------------------------------

    def start(self) -> Admission:
        threading.Thread(target=self._loop, name="admission", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._poked.set()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._poked.wait(PASS_EVERY)
            self._poked.clear()
            if self._stopping.is_set():
                return
            try:
                self.run()
            except Exception:  # the queue must outlive any one bad pass; the next change retries
                self.log.exception("a pass of the admission failed")
                time.sleep(1.0)

    # -- the queue --------------------------------------------------------------

    def entries(self) -> list[Entry]:
        """The open Jobs: ended ones neither wait nor count (a dependency asks the cache)."""
        return [entry(job, record) for job, record in self.cache.open_entries()]

    def _state_of(self, user: str, job_id: str) -> JobState | None:
        """A job's state, None once the cache no longer holds it."""
        try:
            return self.cache.record(user, job_id).state
        except JobNotFound:
            return None

    def run(self) -> Plan:
        """One pass: start what may start, say why the rest waits (nothing while the
        cache is not up: a half-listed queue could start jobs out of turn)."""
        if not self.cache.up:
            return Plan()
        with self.lock:
            decided = plan(self.entries(), self.per_user, self.total, self._state_of)
            for e in decided.start:
                try:
                    added: dict[str, str | None] = dict(self._starting(e.job))
                except KbatchError as exc:
                    self._end(e, JobState.FAILED, str(exc))
                    continue
                added |= {names.ANN_PENDING_REASON: None, names.ANN_TOKEN_AT_START: None}
                self._patch(e, {"metadata": {"annotations": added}, "spec": {"suspend": False}})
                self.log.info("started job %s", e.record.id, extra=_about(e))
            for e, reason in decided.reasons:
                self._patch(e, {"metadata": {"annotations": {names.ANN_PENDING_REASON: reason}}})
            for e in decided.never:
                self._end(e, JobState.CANCELLED, NEVER)
            self._delete_expired()
            return decided

    def would_wait(self, user: str) -> bool:
        """Whether a job of ``user`` submitted now would wait for quota."""
        decided = plan(self.entries(), self.per_user, self.total, self._state_of)
        started = sum(decided.started.values())
        full = self.total is not None and started >= self.total
        return full or user in decided.quota_waiting or decided.started[user] >= self.per_user

    def queued(self, user: str) -> int:
        """``user``'s jobs waiting in the queue."""
        return sum(e.queued and e.record.user == user for e in self.entries())

    def hold(self, user: str, job_id: str, held: bool) -> JobRecord:
        """Hold (or release) ``user``'s job ``job_id``: only while it waits in the queue."""
        with self.lock:
            e = entry(self.cache.job(user, job_id), self.cache.record(user, job_id))
            verb = "held" if held else "released"
            if not e.queued:
                state = e.record.state.value + (f" ({e.record.reason})" if e.record.reason else "")
                started = "has started" if e.record.state is JobState.PENDING else "is " + state
                raise Conflict(f"job {job_id} {started}: only a job still waiting to start can be {verb}")
            if not held and not e.held:
                raise Conflict(f"job {job_id} is not held (it is PENDING: {e.reason or QUOTA})")
            if held != e.held:
                changes = {names.ANN_HELD: "true" if held else None, names.ANN_PENDING_REASON: HELD if held else None}
                self._patch(e, {"metadata": {"annotations": changes}})
            self.run()
            return self.cache.record(user, job_id)

    # -- writes -----------------------------------------------------------------

    def _patch(self, e: Entry, patch: Mapping[str, Any]) -> None:
        meta = e.job.get("metadata") or {}
        name, namespace = str(meta.get("name")), str(meta.get("namespace"))
        try:
            self.cache.written(name, self.api.patch_job(namespace, name, patch))
        except KubeError as exc:
            if exc.status != 404:  # gone meanwhile: nothing to start
                raise

    def _end(self, e: Entry, state: JobState, reason: str) -> None:
        """Record an end of a job that never started; its Job stays suspended (no pod)."""
        ended = {
            names.ANN_STATE: state.value,
            names.ANN_REASON: reason,
            names.ANN_FINISHED: now().isoformat(timespec="seconds"),
            names.ANN_PENDING_REASON: None,
        }
        self._patch(e, {"metadata": {"annotations": ended}})
        self.log.info("job %s %s: %s", e.record.id, state.value, reason, extra=_about(e))
        try:
            self._revoke(e.job)
        except KbatchError as exc:  # it expires on its own
            self.log.warning("could not revoke the hub token of job %s: %s", e.record.id, exc)

    def _delete_expired(self) -> None:
        """Delete the Jobs the queue ended (they never finish for the TTL controller) after the TTL."""
        oldest = now() - self.ttl
        for job, record in self.cache.open_entries():
            suspended = (job.get("spec") or {}).get("suspend")
            if suspended and record.state.is_terminal() and record.finished and record.finished < oldest:
                meta = job.get("metadata") or {}
                try:
                    self.api.delete_job(str(meta.get("namespace")), str(meta.get("name")))
                    self.cache.written(str(meta.get("name")), None)
                except KubeError as exc:
                    if exc.status != 404:
                        raise


def _about(e: Entry) -> dict[str, str]:
    return {"user": e.record.user, "job": e.record.id}


def queue_annotations(dependency: str | None) -> dict[str, str]:
    """The annotations of a job entering the queue (then :meth:`Admission.run` decides)."""
    reason = WAITING if dependency else QUOTA
    values = {names.ANN_QUEUE_ORDER: str(time.time_ns()), names.ANN_PENDING_REASON: reason}
    if dependency:
        values[names.ANN_DEPENDENCY] = dependency
    return values
