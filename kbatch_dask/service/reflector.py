"""One kind of Kubernetes object in one namespace (or all), listed once and then
watched, for the service's watch cache (:mod:`.cache`).

Modelled on kubespawner's ``ResourceReflector``: a :class:`Reflector` lists
its kind once (label-selected: the kbatch-dask managed-by label), then watches
from the list's resourceVersion; when the server ends a watch (its
``timeoutSeconds``) the next one resumes from the last event's version, without
a list. A ``410 Gone`` (the history was compacted) or a dropped connection
means events may have been missed, so the reflector lists again, after a
backoff when the API server failed. Each reflector runs in a thread of its own:
the Kubernetes client blocks.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from kbatch_dask.backends.kubernetes import annotations as names
from kbatch_dask.backends.kubernetes.client import KubeAPI, Watched
from kbatch_dask.errors import KubeError

log = logging.getLogger("kbatch_dask.service.cache")

SELECTOR = f"{names.LABEL_MANAGED_BY}={names.MANAGED_BY}"
WATCH_SECONDS = 60  # each watch asks the server to end it after this long; the next resumes
FIRST_BACKOFF, MAX_BACKOFF = 0.1, 30.0  # seconds between failed attempts, doubling
Obj = dict[str, Any]


def meta_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def version_of(obj: Mapping[str, Any]) -> str:
    return str(meta_of(obj).get("resourceVersion") or "")


def is_newer(new: Mapping[str, Any], old: Mapping[str, Any] | None) -> bool:
    """Whether ``new`` may replace ``old``: resourceVersions are etcd revisions
    (integers, increasing) on every Kubernetes; an opaque one is trusted."""
    if old is None:
        return True
    a, b = version_of(new), version_of(old)
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
            self.version = version_of(obj) or self.version
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
