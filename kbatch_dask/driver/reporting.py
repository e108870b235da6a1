"""What the supervisor reports about the job, and what it asks: the local job's
record (:mod:`.local`) or its Kubernetes Job's annotations (:mod:`.kubernetes`)."""

from __future__ import annotations

from typing import Protocol

from kbatch_dask.records import JobState


class Reporter(Protocol):
    """Where the supervisor records the job's progress (state file, Job annotations)."""

    def started(self) -> None: ...

    def cluster(self, name: str, dashboard: str | None, worker_limit: int | None) -> None:
        """The job's cluster runs; ``worker_limit``: the most workers the gateway gives it, when it capped them."""
        ...

    def owned(self, clusters: tuple[str, ...]) -> None: ...  # every cluster the job's code made so far

    def finished(self, state: JobState, exit_code: int | None, reason: str | None) -> None: ...

    def cancel_requested(self) -> bool: ...

    def failure_requested(self) -> str | None:
        """Why the job was ended from outside as FAILED (its gateway was stopped), or None."""
        ...

    def disrupted(self) -> str | None:
        """Why the job's pod is being replaced by another (evicted, preempted), or None."""
        ...
