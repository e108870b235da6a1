"""The service's Prometheus metrics (``GET /metrics``), as JupyterHub and
dask-gateway expose theirs.

No label holds a username, a job id or anything a user chose: like
JupyterHub's, the labels are bounded sets (states, outcomes, the policy's
limits, handler names, methods, status codes), so a scrape shows an admin the
service's health, not who does what.

- ``kbatch_dask_jobs{state}``: the service's jobs by state, at the scrape
- ``kbatch_dask_queue_length``: jobs waiting to start (PENDING)
- ``kbatch_dask_kubernetes_up``: 1 when the scrape could list the jobs, else 0
- ``kbatch_dask_submissions_total{outcome}``: ``POST /jobs`` by outcome
  (``accepted``, ``refused``, ``bad-input``, ``too-large``, ``unavailable``, ``error``)
- ``kbatch_dask_refusals_total{reason}``: policy refusals (403) by the limit
  that refused (``image``, ``max-cpus``, ``max-running-jobs``, …)
- ``kbatch_dask_request_duration_seconds{handler,method,code}``: request latency
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from tornado import web

from kbatch_dask.errors import BadInput, KubeError, Refused
from kbatch_dask.records import JobState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # Prometheus' text format


class Metrics:
    """One registry per application (tests start several in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Gauge("kbatch_dask_jobs", "Jobs of the service by state", ["state"], registry=self.registry)
        self.queue_length = Gauge("kbatch_dask_queue_length", "Jobs waiting to start", registry=self.registry)
        self.kubernetes_up = Gauge(
            "kbatch_dask_kubernetes_up", "1 when the last scrape could list the jobs", registry=self.registry
        )
        self.submissions = Counter(
            "kbatch_dask_submissions", "Submissions (POST /jobs) by outcome", ["outcome"], registry=self.registry
        )
        self.refusals = Counter(
            "kbatch_dask_refusals", "Submissions refused by the policy, by limit", ["reason"], registry=self.registry
        )
        self.request_duration = Histogram(
            "kbatch_dask_request_duration_seconds",
            "Time to answer a request, by handler",
            ["handler", "method", "code"],
            registry=self.registry,
        )
        # Each labelled histogram once: labels() takes a lock and builds a key per call.
        self._durations: dict[tuple[str, str, int], Histogram] = {}

    @contextmanager
    def submission(self) -> Iterator[None]:
        """Count the submission made inside, by its outcome."""
        try:
            yield
        except BaseException as exc:
            self.submissions.labels(outcome_of(exc)).inc()
            if isinstance(exc, Refused):
                self.refusals.labels(exc.limit or "other").inc()
            raise
        self.submissions.labels("accepted").inc()

    def observe(self, handler: web.RequestHandler) -> None:
        """One answered request (tornado's ``log_function``)."""
        key = (type(handler).__name__, handler.request.method or "", handler.get_status())
        duration = self._durations.get(key)
        if duration is None:
            duration = self._durations[key] = self.request_duration.labels(key[0], key[1], str(key[2]))
        duration.observe(handler.request.request_time())

    def page(self, by_state: Mapping[JobState, int] | None) -> bytes:
        """The text page; ``by_state`` None: the jobs could not be listed."""
        self.kubernetes_up.set(0 if by_state is None else 1)
        if by_state is not None:
            for state in JobState:
                self.jobs.labels(state.value).set(by_state.get(state, 0))
            self.queue_length.set(by_state.get(JobState.PENDING, 0))
        return generate_latest(self.registry)


def outcome_of(exc: BaseException) -> str:
    """The ``outcome`` label of a submission that raised ``exc``.

    >>> outcome_of(Refused("image 'x' is not allowed", limit="image")), outcome_of(KubeError("down"))
    ('refused', 'unavailable')
    """
    if isinstance(exc, Refused):
        return "refused"
    if isinstance(exc, BadInput):
        return "bad-input"
    if isinstance(exc, KubeError):
        return "unavailable"
    if isinstance(exc, web.HTTPError) and exc.status_code == 413:
        return "too-large"
    return "error"
