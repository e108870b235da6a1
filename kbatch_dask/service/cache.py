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
to one of them. Writes of
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
from typing import Any, Literal, Protocol

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


Gone = Literal["deleted", "unseen"]  # how a Job went: a DELETED event, or missing from a relist


class Listener(Protocol):
    """Told of changes while the cache holds its lock: it must only take note."""

    def changed(self, record: JobRecord, namespace: str, gone: Gone | None = None) -> None:
        """The job's newest record; ``gone``: its Job went, and how."""

    def listed(self, present: Iterable[tuple[str, str]]) -> None:
        """The (user, job id) of every Job of a full list."""


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
        self._memos: dict[tuple[str | None, Hashable], tuple[int, bytes]] = {}  # (user, query) -> (generation, answer)
        self._names_by_id: dict[str, str] = {}  # job id label -> Job name
        self.listener = listener  # told of every record that may have changed
        self.jobs = Reflector(api, "jobs", namespace, self._replace_jobs, self._apply_job, watch_seconds=watch_seconds)
        self.pods = Reflector(api, "pods", namespace, self._replace_pods, self._apply_pod, watch_seconds=watch_seconds)
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

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

    def namespace_of(self, job_id: str) -> str | None:
        """The namespace of a Job with this id, if the cache holds one."""
        with self._lock:
            for job in self._jobs.values():
                meta = job.get("metadata") or {}
                if (meta.get("labels") or {}).get(names.LABEL_JOB_ID) == job_id:
                    return str(meta.get("namespace") or "") or None
        return None

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

    def active(self, user: str) -> int:
        """``user``'s jobs pending or running."""
        return sum(not r.state.is_terminal() for r in self.records(user))

    def memo(self, user: str | None, query: Hashable, build: Callable[[], bytes]) -> bytes:
        """``build()``'s answer about ``user``'s jobs (None: everyone's) for
        ``query``, built again only after a change to one of those jobs."""
        slug = safe_slug(user) if user is not None else None
        key = (slug, query)
        with self._lock:
            # Read before building: a change meanwhile makes the stored answer stale, never wrong.
            stamp = self._generation if slug is None else self._generations.get(slug, 0)
            hit = self._memos.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        answer = build()
        with self._lock:
            if len(self._memos) >= MAX_MEMOS:
                self._memos.clear()
            self._memos[key] = (stamp, answer)
        return answer

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
            namespace = str(_meta(self._jobs[name]).get("namespace") or "")
            self.listener.changed(self._record(name), namespace, gone)

    def _changed(self, obj: Mapping[str, Any]) -> None:
        """A job or pod of this user changed (held lock): their answers are stale."""
        user = str((_meta(obj).get("labels") or {}).get(names.LABEL_USER, ""))
        self._generations[user] = self._generations.get(user, 0) + 1
        self._generation += 1

    def _record(self, name: str) -> JobRecord:
        """The record of Job ``name`` (held lock), built again only when a version changed."""
        job = self._jobs[name]
        job_id = str((_meta(job).get("labels") or {}).get(names.LABEL_JOB_ID, ""))
        pods = [self._pods[p] for p in sorted(self._pods_of.get(job_id, ()))]
        versions = (_version(job), *map(_version, pods))
        cached = self._records.get(name)
        if cached is not None and cached[0] == versions:
            return cached[1]
        record = job_record(job, pods)
        self._records[name] = (versions, record)
        return record

    # -- writes of the service itself ------------------------------------------

    def written(self, name: str, job: Obj | None) -> None:
        """The Job ``name`` as the API answered a write of this service (None: gone)."""
        with self._lock:
            if job is None:
                self._drop_job(name)
                self._gone.add(name)
            elif name not in self._gone and _newer(job, self._jobs.get(name)):
                self._put_job(job)

    # -- from the reflectors ----------------------------------------------------

    def _replace_jobs(self, items: list[Obj]) -> None:
        with self._lock:
            listed = {str(_meta(job).get("name", "")) for job in items}
            for name, job in self._jobs.items():
                self._changed(job)  # those gone from the new list too
                if name not in listed:
                    self._tell(name, "unseen")  # deleted while no watch was up
            self._jobs, self._by_user, self._gone, self._names_by_id = {}, {}, set(), {}
            for job in items:
                self._put_job(job)
            self._records = {k: v for k, v in self._records.items() if k in self._jobs}
            if self.listener is not None:
                self.listener.listed((r.user, r.id) for r in map(self._record, self._jobs))

    def _apply_job(self, kind: str, job: Obj) -> None:
        name = str(_meta(job).get("name", ""))
        with self._lock:
            if kind == "DELETED":
                if name in self._jobs and _newer(job, self._jobs[name]):
                    self._put_job(job, tell=False)  # its last state, then told as gone
                self._tell(name, "deleted")
                self._drop_job(name)
                self._gone.discard(name)
            elif name not in self._gone and _newer(job, self._jobs.get(name)):
                self._put_job(job)

    def _put_job(self, job: Obj, tell: bool = True) -> None:
        meta = _meta(job)
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
        if job is not None:
            labels = _meta(job).get("labels") or {}
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

    def _apply_pod(self, kind: str, pod: Obj) -> None:
        with self._lock:
            self._drop_pod(str(_meta(pod).get("name", "")))
            if kind != "DELETED":
                self._put_pod(pod)
            self._tell(self._names_by_id.get(str((_meta(pod).get("labels") or {}).get(names.LABEL_JOB_ID, ""))))

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
