"""The admin's policy for submissions: which images, and how much one job and
one user may ask for (``kbatch.service.allowed-images`` and ``limits.*``).

Pure: the settings, the job spec, the image of the user's running server and
the number of their queued jobs come in; a :class:`~kbatch_dask.errors.Refused`
naming the limit comes out (the API answers it with 403).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from kbatch_dask import settings
from kbatch_dask.errors import BadInput, Refused
from kbatch_dask.spec import JobSpec
from kbatch_dask.spec.units import format_size, parse_size, parse_time

SERVER_IMAGE = "@server"  # in allowed-images: the image of the user's own running server
LIMITS = "kbatch.service.limits"


@dataclass(frozen=True)
class Policy:
    """The limits in force, typed (times in seconds, sizes in bytes; None: no limit)."""

    allowed_images: tuple[str, ...] = (SERVER_IMAGE,)
    max_running_jobs: int = 10
    max_running_jobs_total: int | None = None
    max_queued_jobs: int | None = None
    max_dask_workers: int | None = None
    max_time: int | None = None
    max_cpus: float | None = None
    max_memory: int | None = None
    max_gpus: int | None = None

    @classmethod
    def from_settings(cls, service: settings.Service) -> Policy:
        """The policy of ``kbatch.service``; BadInput naming the key for a bad limit."""
        limits = service.limits
        try:
            max_time = parse_time(limits.max_time, f"{LIMITS}.max-time") if limits.max_time else None
            max_memory = parse_size(limits.max_memory, f"{LIMITS}.max-memory") if limits.max_memory else None
        except BadInput as exc:
            raise BadInput(f"config {exc}") from None
        return cls(
            allowed_images=service.allowed_images,
            max_running_jobs=limits.max_running_jobs,
            max_running_jobs_total=limits.max_running_jobs_total,
            max_queued_jobs=limits.max_queued_jobs,
            max_dask_workers=limits.max_dask_workers,
            max_time=max_time,
            max_cpus=limits.max_cpus,
            max_memory=max_memory,
            max_gpus=limits.max_gpus,
        )

    def image(self, requested: str | None, server_image: str | None) -> str:
        """The job's image: ``requested`` (``--image``) if allowed, else the
        image of the user's running server; Refused naming what is allowed.

        >>> Policy(("pangeo/*",)).image("pangeo/ml:1", None)
        'pangeo/ml:1'
        """
        image = requested or server_image
        if not image:
            raise BadInput("no image for the job: pass --image IMAGE, or start your server (its image is the default)")
        if SERVER_IMAGE in self.allowed_images and image == server_image:
            return image
        if any(fnmatch.fnmatchcase(image, glob) for glob in self.allowed_images if glob != SERVER_IMAGE):
            return image
        allowed = ", ".join(
            f"{SERVER_IMAGE} ({server_image or 'no running server'})" if glob == SERVER_IMAGE else glob
            for glob in self.allowed_images
        )
        raise Refused(f"image {image!r} is not allowed here; allowed: {allowed or 'none'}", limit="allowed-images")

    def check_job(self, spec: JobSpec) -> None:
        """Refuse a job that asks for more than a per-job limit."""
        workers = spec.workers.maximum if spec.workers else 0
        if self.max_dask_workers is not None and workers > self.max_dask_workers:
            _refuse(f"--dask-workers {spec.workers}", "max-dask-workers", self.max_dask_workers)
        if self.max_time is not None and (spec.time_limit is None or spec.time_limit > self.max_time):
            asked = f"--time {spec.time_limit}s" if spec.time_limit else "a job without --time"
            _refuse(asked, "max-time", f"{self.max_time}s")
        if self.max_cpus is not None and spec.cpus is not None and spec.cpus > self.max_cpus:
            _refuse(f"--cpus {spec.cpus:g}", "max-cpus", f"{self.max_cpus:g}")
        if self.max_memory is not None and (spec.memory is None or spec.memory > self.max_memory):
            asked = f"--memory {format_size(spec.memory)}" if spec.memory else "a job without --memory"
            _refuse(asked, "max-memory", format_size(self.max_memory))
        if self.max_gpus is not None and spec.gpus > self.max_gpus:
            _refuse(f"--gpus {spec.gpus}", "max-gpus", self.max_gpus)

    def check_queued(self, queued: int) -> None:
        """Refuse a submission that would wait in the service's queue of a user who
        has ``queued`` jobs waiting there already (``max-queued-jobs``); over
        ``max-running-jobs`` a job is queued, not refused (:mod:`.admission`).

        >>> Policy(max_queued_jobs=2).check_queued(1)
        """
        if self.max_queued_jobs is not None and queued >= self.max_queued_jobs:
            raise Refused(
                f"you have {queued} jobs waiting to start, the limit of {LIMITS}.max-queued-jobs "
                f"({self.max_queued_jobs}); wait for one to start or cancel one",
                limit="max-queued-jobs",
            )

    def summary(self) -> dict[str, Any]:
        """The limits as ``GET /`` shows them (None: no limit)."""
        return {
            "allowed-images": list(self.allowed_images),
            "max-running-jobs": self.max_running_jobs,
            "max-running-jobs-total": self.max_running_jobs_total,
            "max-queued-jobs": self.max_queued_jobs,
            "max-dask-workers": self.max_dask_workers,
            "max-time": self.max_time,
            "max-cpus": self.max_cpus,
            "max-memory": self.max_memory,
            "max-gpus": self.max_gpus,
        }


def _refuse(asked: str, limit: str, value: object) -> None:
    raise Refused(f"{asked} is over the limit {LIMITS}.{limit} ({value})", limit=limit)
