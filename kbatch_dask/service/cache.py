"""The service's memory of its Jobs and their pods, kept by one watch of each.

Each kind has its :class:`~.reflector.Reflector` (kubespawner's model: list
once, then watch from the last resourceVersion, list again after a 410 Gone or
a dropped watch). :class:`JobCache` joins the two into job records with the Kubernetes backend's
own :func:`~kbatch_dask.backends.kubernetes.status.job_record`, so that queue
and show through the service make no API call. A record is built again only
when the resourceVersion of its Job or of one of its pods changed, and a whole
answer (:meth:`JobCache.memo`, the JSON of a queue) only when one of the jobs
it is about changed: each user's jobs have a generation, bumped by every change
to one of them. Every change is told to the listeners (:meth:`JobCache.listen`:
the admission of queued jobs, :mod:`.admission`). Writes of
the service itself (submit, cancel) are applied from the API's answer at once
(:meth:`JobCache.written`), so the writer's next read sees them even before the
watch event arrives.

A :class:`Listener` (the job records' recorder, :mod:`.history.recorder`) is
told of every job whose record may have changed, with that record, and of the
last record of a Job that went: the database keeps it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar, cast

from kbatch_dask.backends.kubernetes import annotations as names
from kbatch_dask.backends.kubernetes import manifests as m
from kbatch_dask.backends.kubernetes.client import KubeAPI
from kbatch_dask.backends.kubernetes.slugs import safe_slug
from kbatch_dask.backends.kubernetes.status import job_record
from kbatch_dask.errors import JobNotFound, KubeError
from kbatch_dask.records import JobRecord
from kbatch_dask.service.reflector import WATCH_SECONDS, Obj, Reflector, is_newer, meta_of, version_of

log = logging.getLogger("kbatch_dask.service.cache")

MAX_MEMOS = 4096  # answers kept (users × the queries they make); all dropped beyond it
T = TypeVar("T")


Gone = Literal["deleted", "unseen"]  # how a Job went: a DELETED event, or missing from a relist


class Listener(Protocol):
    """Told of changes while the cache holds its lock: it must only take note."""

    def changed(self, record: JobRecord, namespace: str, gone: Gone | None = None) -> None:
        """The job's newest record; ``gone``: its Job went, and how."""

    def listed(self, present: Iterable[tuple[str, str]]) -> None:
        """The (user, job id) of every Job of a full list."""


class JobCache:
    """The service namespace's kbatch-dask Jobs and pods, and their records."""

    def __init__(
        self, api: KubeAPI, namespace: str, *, watch_seconds: int = WATCH_SECONDS, listener: Listener | None = None
    ) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, Obj] = {}  # Job name -> Job
        self._by_user: dict[str, set[str]] = {}  # user label -> Job names
        self._pods: dict[str, Obj] = {}  # pod name -> pod
        self._pods_of: dict[str, set[str]] = {}  # job id label -> pod names
        self._gone: set[str] = set()  # Jobs this service saw deleted before the watch told
        self._records: dict[str, tuple[tuple[str, ...], JobRecord]] = {}  # Job name -> (versions, record)
        self._generations: dict[str, int] = {}  # user label -> changes to that user's jobs and pods
        self._generation = 0  # changes to anyone's
        self._memos: dict[tuple[str | None, Hashable], tuple[int, object]] = {}  # (user, query) -> (generation, answer)
        self._names_by_id: dict[str, str] = {}  # job id label -> Job name
        # The Jobs the queue is about (not ended, or suspended: queued, or ended by the
        # queue and awaiting deletion), kept up to date from those changed since the
        # last look: the passes over the queue cost what is open, not every Job kept.
        self._open: set[str] = set()
        self._dirty: set[str] = set()  # Job names whose Job or pods changed since then
        self.listener = listener  # told of every record that may have changed
        self.jobs = Reflector(api, "jobs", namespace, self._replace_jobs, self._apply_job, watch_seconds=watch_seconds)
        self.pods = Reflector(api, "pods", namespace, self._replace_pods, self._apply_pod, watch_seconds=watch_seconds)
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listeners: list[Callable[[], None]] = []

    # -- running ----------------------------------------------------------------

    def start(self) -> JobCache:
        for reflector in (self.jobs, self.pods):
            thread = threading.Thread(
                target=reflector.run, args=(self._stopping,), name=f"watch-{reflector.kind}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, wait: float = 0) -> None:
        """Stop after the current watch, waiting up to ``wait`` s for it (the
        threads are daemons: exiting does not wait for them)."""
        self._stopping.set()
        for thread in self._threads:
            thread.join(wait)

    @property
    def up(self) -> bool:
        return self.jobs.up and self.pods.up

    async def wait_up(self, timeout: float) -> None:
        """Return once both watches are up; a KubeError (503) after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while not self.up:
            if time.monotonic() >= deadline:
                failing = [r for r in (self.jobs, self.pods) if not r.up]
                why = "; ".join(f"{r.kind}: {r.error}" for r in failing if r.error) or "the first list is not done"
                raise KubeError(f"the service's view of Kubernetes is not up to date ({why})")
            await asyncio.sleep(0.02)

    def listen(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after each change (from a reflector's or a writer's
        thread, without the cache's lock: it must be quick, e.g. set an Event)."""
        self._listeners.append(listener)

    def _poke(self) -> None:
        for listener in self._listeners:
            listener()

    def health(self) -> dict[str, Any]:
        now = time.monotonic()
        return {"jobs": self.jobs.health(now), "pods": self.pods.health(now)}

    # -- reads ------------------------------------------------------------------

    def records(self, user: str | None, since: datetime | None = None) -> list[JobRecord]:
        """The records of ``user``'s jobs (None: everyone's), oldest first; ended
        before ``since`` left out, as the Kubernetes backend's list does."""
        with self._lock:
            jobs = self._jobs if user is None else self._by_user.get(safe_slug(user), set())
            records = [self._record(name) for name in jobs]
        if since:
            records = [r for r in records if not r.state.is_terminal() or (r.finished or r.submitted) >= since]
        return sorted(records, key=lambda r: r.submitted)

    def all_jobs(self) -> list[Obj]:
        """Every Job the cache holds, as the API gave it."""
        with self._lock:
            return list(self._jobs.values())

    def namespace_of(self, job_id: str) -> str | None:
        """The namespace of a Job with this id, if the cache holds one."""
        with self._lock:
            name = self._names_by_id.get(job_id)
            job = self._jobs.get(name) if name is not None else None
        if job is None:
            return None
        return str(meta_of(job).get("namespace") or "") or None

    def holds(self, user: str, job_id: str) -> bool:
        """Whether the cache has ``user``'s Job ``job_id``."""
        with self._lock:
            return m.job_name(user, job_id) in self._jobs

    def record(self, user: str, job_id: str) -> JobRecord:
        name = m.job_name(user, job_id)
        with self._lock:
            if name not in self._jobs:
                raise JobNotFound(job_id)
            return self._record(name)

    def open_entries(self) -> list[tuple[Obj, JobRecord]]:
        """Every Job not ended, or suspended, with its record (the admission's
        view of the queue); the ended ones, most of what is kept, are left out."""
        with self._lock:
            for name in self._dirty:
                if name in self._jobs and self._is_open(name):
                    self._open.add(name)
                else:
                    self._open.discard(name)
            self._dirty.clear()
            return [(self._jobs[name], self._record(name)) for name in self._open]

    def open_with_pods(self) -> list[tuple[Obj, list[Obj]]]:
        """:meth:`open_entries`' Jobs with their pods, as the API gave them."""
        jobs = [job for job, _ in self.open_entries()]
        with self._lock:
            return [(job, self._pods_for(job)) for job in jobs]

    def _is_open(self, name: str) -> bool:
        return bool((self._jobs[name].get("spec") or {}).get("suspend")) or not self._record(name).state.is_terminal()

    def job(self, user: str, job_id: str) -> Obj:
        """The Job of ``user``'s job ``job_id`` as last seen (JobNotFound unless held)."""
        with self._lock:
            job = self._jobs.get(m.job_name(user, job_id))
        if job is None:
            raise JobNotFound(job_id)
        return job

    def active(self, user: str) -> int:
        """``user``'s jobs pending or running."""
        return sum(not r.state.is_terminal() for r in self.records(user))

    def memo(self, user: str | None, query: Hashable, build: Callable[[], T]) -> T:
        """``build()``'s answer about ``user``'s jobs (None: everyone's) for
        ``query``, built again only after a change to one of those jobs."""
        key, stamp, hit = self._kept(user, query)
        if hit is not None:
            return cast(T, hit)  # a query's answers are all of its build's type
        answer = build()
        with self._lock:
            if len(self._memos) >= MAX_MEMOS:
                self._memos.clear()
            self._memos[key] = (stamp, answer)
        return answer

    def kept(self, user: str | None, query: Hashable) -> object | None:
        """The answer :meth:`memo` keeps for ``query`` about ``user``'s jobs while
        none of them changed; None when it must be built."""
        return self._kept(user, query)[2]

    def _kept(self, user: str | None, query: Hashable) -> tuple[tuple[str | None, Hashable], int, object | None]:
        slug = safe_slug(user) if user is not None else None
        key = (slug, query)
        with self._lock:
            # Read before building: a change meanwhile makes the stored answer stale, never wrong.
            stamp = self._generation if slug is None else self._generations.get(slug, 0)
            hit = self._memos.get(key)
        return key, stamp, hit[1] if hit is not None and hit[0] == stamp else None

    def touch(self, users: Iterable[str]) -> None:
        """Answers about these users' jobs changed without a change in Kubernetes (the database's)."""
        with self._lock:
            for user in users:
                slug = safe_slug(user)
                self._generations[slug] = self._generations.get(slug, 0) + 1
            self._generation += 1

    def _tell(self, name: str | None, gone: Gone | None = None) -> None:
        """Tell the listener (held lock) of the record of Job ``name``, if the cache has it."""
        if self.listener is not None and name is not None and name in self._jobs:
            namespace = str(meta_of(self._jobs[name]).get("namespace") or "")
            self.listener.changed(self._record(name), namespace, gone)

    def _changed(self, obj: Mapping[str, Any]) -> None:
        """A job or pod of this user changed (held lock): their answers are stale,
        and whether its Job is open to the queue must be looked at again."""
        labels = meta_of(obj).get("labels") or {}
        user = str(labels.get(names.LABEL_USER, ""))
        self._generations[user] = self._generations.get(user, 0) + 1
        self._generation += 1
        name = self._names_by_id.get(str(labels.get(names.LABEL_JOB_ID, "")))
        if name is not None:
            self._dirty.add(name)

    def _record(self, name: str) -> JobRecord:
        """The record of Job ``name`` (held lock), built again only when a version changed."""
        job = self._jobs[name]
        pods = self._pods_for(job)
        versions = (version_of(job), *map(version_of, pods))
        cached = self._records.get(name)
        if cached is not None and cached[0] == versions:
            return cached[1]
        record = job_record(job, pods)
        self._records[name] = (versions, record)
        return record

    def _pods_for(self, job: Obj) -> list[Obj]:
        """The pods of ``job`` (held lock)."""
        job_id = str((meta_of(job).get("labels") or {}).get(names.LABEL_JOB_ID, ""))
        return [self._pods[p] for p in sorted(self._pods_of.get(job_id, ()))]

    # -- writes of the service itself ------------------------------------------

    def written(self, name: str, job: Obj | None) -> None:
        """The Job ``name`` as the API answered a write of this service (None: gone)."""
        with self._lock:
            if job is None:
                self._drop_job(name)
                self._gone.add(name)
            elif name not in self._gone and is_newer(job, self._jobs.get(name)):
                self._put_job(job)
        self._poke()

    # -- from the reflectors ----------------------------------------------------

    def _replace_jobs(self, items: list[Obj]) -> None:
        with self._lock:
            listed = {str(meta_of(job).get("name", "")) for job in items}
            for name, job in self._jobs.items():
                self._changed(job)  # those gone from the new list too
                if name not in listed:
                    self._tell(name, "unseen")  # deleted while no watch was up
            self._jobs, self._by_user, self._gone, self._names_by_id = {}, {}, set(), {}
            self._open = set()  # each listed Job is looked at again (all are changed)
            for job in items:
                self._put_job(job)
            self._records = {k: v for k, v in self._records.items() if k in self._jobs}
            if self.listener is not None:
                self.listener.listed((r.user, r.id) for r in map(self._record, self._jobs))
        self._poke()

    def _apply_job(self, kind: str, job: Obj) -> None:
        name = str(meta_of(job).get("name", ""))
        with self._lock:
            if kind == "DELETED":
                if name in self._jobs and is_newer(job, self._jobs[name]):
                    self._put_job(job, tell=False)  # its last state, then told as gone
                self._tell(name, "deleted")
                self._drop_job(name)
                self._gone.discard(name)
            elif name not in self._gone and is_newer(job, self._jobs.get(name)):
                self._put_job(job)
        self._poke()

    def _put_job(self, job: Obj, tell: bool = True) -> None:
        meta = meta_of(job)
        name = str(meta.get("name", ""))
        self._drop_job(name)
        self._jobs[name] = job
        labels = meta.get("labels") or {}
        self._by_user.setdefault(str(labels.get(names.LABEL_USER, "")), set()).add(name)
        self._names_by_id[str(labels.get(names.LABEL_JOB_ID, ""))] = name
        self._changed(job)
        if tell:
            self._tell(name)

    def _drop_job(self, name: str) -> None:
        job = self._jobs.pop(name, None)
        self._records.pop(name, None)
        self._open.discard(name)
        if job is not None:
            labels = meta_of(job).get("labels") or {}
            self._by_user.get(str(labels.get(names.LABEL_USER, "")), set()).discard(name)
            if self._names_by_id.get(str(labels.get(names.LABEL_JOB_ID, ""))) == name:
                del self._names_by_id[str(labels.get(names.LABEL_JOB_ID, ""))]
            self._changed(job)

    def _replace_pods(self, items: list[Obj]) -> None:
        with self._lock:
            for pod in self._pods.values():
                self._changed(pod)  # those gone from the new list too
            self._pods, self._pods_of = {}, {}
            for pod in items:
                self._put_pod(pod)
            for name in self._jobs:
                self._tell(name)
        self._poke()

    def _apply_pod(self, kind: str, pod: Obj) -> None:
        with self._lock:
            self._drop_pod(str(meta_of(pod).get("name", "")))
            if kind != "DELETED":
                self._put_pod(pod)
            self._tell(self._names_by_id.get(str((meta_of(pod).get("labels") or {}).get(names.LABEL_JOB_ID, ""))))
        self._poke()

    def _put_pod(self, pod: Obj) -> None:
        meta = meta_of(pod)
        name = str(meta.get("name", ""))
        self._pods[name] = pod
        self._pods_of.setdefault(str((meta.get("labels") or {}).get(names.LABEL_JOB_ID, "")), set()).add(name)
        self._changed(pod)

    def _drop_pod(self, name: str) -> None:
        pod = self._pods.pop(name, None)
        if pod is not None:
            self._pods_of.get(str((meta_of(pod).get("labels") or {}).get(names.LABEL_JOB_ID, "")), set()).discard(name)
            self._changed(pod)
