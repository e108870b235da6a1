"""The service's memory of its Jobs and their pods, kept by one watch of each.

Modelled on kubespawner's ``ResourceReflector``: a :class:`Reflector` lists
its kind once (label-selected: the kbatch-dask managed-by label), then watches
from the list's resourceVersion; when the server ends a watch (its
``timeoutSeconds``) the next one resumes from the last event's version, without
a list. A ``410 Gone`` (the history was compacted) or a dropped connection
means events may have been missed, so the reflector lists again, after a
backoff when the API server failed. Each reflector runs in a thread of its own:
the Kubernetes client blocks.

:class:`JobCache` joins the two into job records with the Kubernetes backend's
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
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from datetime import datetime
from typing import Any, TypeVar, cast

from kbatch_dask.backends.kubernetes import annotations as names
from kbatch_dask.backends.kubernetes import manifests as m
from kbatch_dask.backends.kubernetes.client import KubeAPI, Watched
from kbatch_dask.backends.kubernetes.slugs import safe_slug
from kbatch_dask.backends.kubernetes.status import job_record
from kbatch_dask.errors import JobNotFound, KubeError
from kbatch_dask.records import JobRecord

log = logging.getLogger("kbatch_dask.service.cache")

SELECTOR = f"{names.LABEL_MANAGED_BY}={names.MANAGED_BY}"
WATCH_SECONDS = 60  # each watch asks the server to end it after this long; the next resumes
FIRST_BACKOFF, MAX_BACKOFF = 0.1, 30.0  # seconds between failed attempts, doubling
MAX_MEMOS = 4096  # answers kept (users × the queries they make); all dropped beyond it
Obj = dict[str, Any]
T = TypeVar("T")


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _version(obj: Mapping[str, Any]) -> str:
    return str(_meta(obj).get("resourceVersion") or "")


def _newer(new: Mapping[str, Any], old: Mapping[str, Any] | None) -> bool:
    """Whether ``new`` may replace ``old``: resourceVersions are etcd revisions
    (integers, increasing) on every Kubernetes; an opaque one is trusted."""
    if old is None:
        return True
    a, b = _version(new), _version(old)
    return not (a.isdigit() and b.isdigit()) or int(a) >= int(b)


class Reflector:
    """One kind of object in one namespace, listed and then watched.

    ``replace(items)`` is called with each full list, ``apply(type, obj)`` with
    each watch event; both from the reflector's thread."""

    def __init__(
        self,
        api: KubeAPI,
        kind: Watched,
        namespace: str,
        replace: Callable[[list[Obj]], None],
        apply: Callable[[str, Obj], None],
        *,
        watch_seconds: int = WATCH_SECONDS,
    ) -> None:
        self.api, self.kind, self.namespace = api, kind, namespace
        self._replace, self._apply = replace, apply
        self.watch_seconds = watch_seconds
        self.version = ""  # the last resourceVersion seen; "" until listed and after a failure
        self.up = False  # listed, and no failure since
        self.lists = 0  # how many full lists were made (1 plus the relists)
        self.error: str | None = None  # the last failure, if any
        self.last_event: float | None = None  # time.monotonic() of the last event or list
        self.listed = threading.Event()  # set once the first list has been applied

    def run(self, stopping: threading.Event) -> None:
        delay = FIRST_BACKOFF
        while not stopping.is_set():
            try:
                if not self.version:
                    items, self.version = self.api.list_versioned(self.kind, self.namespace, SELECTOR)
                    self._replace(items)
                    # The listed objects live until the next list. Out of the cyclic
                    # collector's generations (they hold no cycles: reference counts
                    # free them), its full collections no longer walk them all: with
                    # 10,000 Jobs and their pods each took 0.5-0.8 s, stalling every request.
                    gc.freeze()
                    self.lists += 1
                    self.last_event = time.monotonic()
                    self.up, self.error = True, None
                    self.listed.set()
                self._watch(stopping)
                delay = FIRST_BACKOFF  # the server ended the watch: resume from self.version
            except KubeError as exc:
                self.version = ""  # events may have been missed: list again
                self.error = str(exc)
                if exc.status == 410:  # compacted history, the API server is fine: at once
                    log.info("the watch of %s is too old (410 Gone): listing again", self.kind)
                    continue
                self.up = False
                log.warning("watching %s failed, listing again in %.1f s: %s", self.kind, delay, exc)
                stopping.wait(delay)
                delay = min(delay * 2, MAX_BACKOFF)
            except Exception as exc:  # the cache must outlive any one bad answer
                self.version, self.up, self.error = "", False, f"unexpected: {exc!r}"
                log.exception("watching %s failed unexpectedly, listing again in %.1f s", self.kind, delay)
                stopping.wait(delay)
                delay = min(delay * 2, MAX_BACKOFF)

    def _watch(self, stopping: threading.Event) -> None:
        for event in self.api.watch(self.kind, self.namespace, SELECTOR, self.version, self.watch_seconds):
            obj = event.get("object") or {}
            if event.get("type") != "BOOKMARK":
                self._apply(str(event.get("type")), obj)
            self.version = _version(obj) or self.version
            self.last_event = time.monotonic()
            if stopping.is_set():
                return

    def health(self, now: float) -> dict[str, Any]:
        return {
            "up": self.up,
            "resource-version": self.version or None,
            "lists": self.lists,
            "last-event-age-seconds": round(now - self.last_event, 3) if self.last_event is not None else None,
            "error": self.error,
        }


class JobCache:
    """The service namespace's kbatch-dask Jobs and pods, and their records."""

    def __init__(self, api: KubeAPI, namespace: str, *, watch_seconds: int = WATCH_SECONDS) -> None:
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

    def _tell(self) -> None:
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

    def with_pods(self) -> list[tuple[Obj, list[Obj]]]:
        """Every Job the cache holds with its pods, as the API gave them."""
        with self._lock:
            return [(job, self._pods_for(job)) for job in self._jobs.values()]

    def namespace_of(self, job_id: str) -> str | None:
        """The namespace of a Job with this id, if the cache holds one."""
        with self._lock:
            for job in self._jobs.values():
                meta = job.get("metadata") or {}
                if (meta.get("labels") or {}).get(names.LABEL_JOB_ID) == job_id:
                    return str(meta.get("namespace") or "") or None
        return None

    def record(self, user: str, job_id: str) -> JobRecord:
        name = m.job_name(user, job_id)
        with self._lock:
            if name not in self._jobs:
                raise JobNotFound(job_id)
            return self._record(name)

    def entries(self) -> list[tuple[Obj, JobRecord]]:
        """Every Job with its record (the admission's view of the queue)."""
        with self._lock:
            return [(job, self._record(name)) for name, job in self._jobs.items()]

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
        slug = safe_slug(user) if user is not None else None
        key = (slug, query)
        with self._lock:
            # Read before building: a change meanwhile makes the stored answer stale, never wrong.
            stamp = self._generation if slug is None else self._generations.get(slug, 0)
            hit = self._memos.get(key)
        if hit is not None and hit[0] == stamp:
            return cast(T, hit[1])  # a query's answers are all of its build's type
        answer = build()
        with self._lock:
            if len(self._memos) >= MAX_MEMOS:
                self._memos.clear()
            self._memos[key] = (stamp, answer)
        return answer

    def _changed(self, obj: Mapping[str, Any]) -> None:
        """A job or pod of this user changed (held lock): their answers are stale."""
        user = str((_meta(obj).get("labels") or {}).get(names.LABEL_USER, ""))
        self._generations[user] = self._generations.get(user, 0) + 1
        self._generation += 1

    def _record(self, name: str) -> JobRecord:
        """The record of Job ``name`` (held lock), built again only when a version changed."""
        job = self._jobs[name]
        pods = self._pods_for(job)
        versions = (_version(job), *map(_version, pods))
        cached = self._records.get(name)
        if cached is not None and cached[0] == versions:
            return cached[1]
        record = job_record(job, pods)
        self._records[name] = (versions, record)
        return record

    def _pods_for(self, job: Obj) -> list[Obj]:
        """The pods of ``job`` (held lock)."""
        job_id = str((_meta(job).get("labels") or {}).get(names.LABEL_JOB_ID, ""))
        return [self._pods[p] for p in sorted(self._pods_of.get(job_id, ()))]

    # -- writes of the service itself ------------------------------------------

    def written(self, name: str, job: Obj | None) -> None:
        """The Job ``name`` as the API answered a write of this service (None: gone)."""
        with self._lock:
            if job is None:
                self._drop_job(name)
                self._gone.add(name)
            elif name not in self._gone and _newer(job, self._jobs.get(name)):
                self._put_job(job)
        self._tell()

    # -- from the reflectors ----------------------------------------------------

    def _replace_jobs(self, items: list[Obj]) -> None:
        with self._lock:
            for job in self._jobs.values():
                self._changed(job)  # those gone from the new list too
            self._jobs, self._by_user, self._gone = {}, {}, set()
            for job in items:
                self._put_job(job)
            self._records = {k: v for k, v in self._records.items() if k in self._jobs}
        self._tell()

    def _apply_job(self, kind: str, job: Obj) -> None:
        name = str(_meta(job).get("name", ""))
        with self._lock:
            if kind == "DELETED":
                self._drop_job(name)
                self._gone.discard(name)
            elif name not in self._gone and _newer(job, self._jobs.get(name)):
                self._put_job(job)
        self._tell()

    def _put_job(self, job: Obj) -> None:
        meta = _meta(job)
        name = str(meta.get("name", ""))
        self._drop_job(name)
        self._jobs[name] = job
        user = str((meta.get("labels") or {}).get(names.LABEL_USER, ""))
        self._by_user.setdefault(user, set()).add(name)
        self._changed(job)

    def _drop_job(self, name: str) -> None:
        job = self._jobs.pop(name, None)
        self._records.pop(name, None)
        if job is not None:
            user = str((_meta(job).get("labels") or {}).get(names.LABEL_USER, ""))
            self._by_user.get(user, set()).discard(name)
            self._changed(job)

    def _replace_pods(self, items: list[Obj]) -> None:
        with self._lock:
            for pod in self._pods.values():
                self._changed(pod)  # those gone from the new list too
            self._pods, self._pods_of = {}, {}
            for pod in items:
                self._put_pod(pod)
        self._tell()

    def _apply_pod(self, kind: str, pod: Obj) -> None:
        with self._lock:
            self._drop_pod(str(_meta(pod).get("name", "")))
            if kind != "DELETED":
                self._put_pod(pod)
        self._tell()

    def _put_pod(self, pod: Obj) -> None:
        meta = _meta(pod)
        name = str(meta.get("name", ""))
        self._pods[name] = pod
        self._pods_of.setdefault(str((meta.get("labels") or {}).get(names.LABEL_JOB_ID, "")), set()).add(name)
        self._changed(pod)

    def _drop_pod(self, name: str) -> None:
        pod = self._pods.pop(name, None)
        if pod is not None:
            self._pods_of.get(str((_meta(pod).get("labels") or {}).get(names.LABEL_JOB_ID, "")), set()).discard(name)
            self._changed(pod)
