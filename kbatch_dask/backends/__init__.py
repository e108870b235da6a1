"""Where jobs run. Every backend speaks the small :class:`Backend` protocol and
turns its native objects into :class:`~kbatch_dask.records.JobRecord` at its
boundary; nothing above a backend sees a backend's own types."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Protocol

from kbatch_dask.errors import BadInput
from kbatch_dask.gateway.settings import GatewaySettings
from kbatch_dask.records import JobRecord
from kbatch_dask.settings import Settings
from kbatch_dask.spec import JobSpec

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


class Backend(Protocol):
    name: str

    def check(self, spec: JobSpec) -> None:
        """Refuse (BadInput) what this backend cannot run, before anything is created."""

    def dry_run(self, spec: JobSpec, environment: Mapping[str, str]) -> str:
        """What :meth:`submit` would create, as YAML (``--dry-run``); creates nothing."""

    def submit(self, spec: JobSpec, environment: dict[str, str]) -> JobRecord:
        """Create the job and return at once with its first record."""

    def list(self, *, ended_since: datetime | None = None) -> list[JobRecord]:
        """This user's jobs: all active ones, and ended ones since ``ended_since`` (all if None)."""

    def get(self, job_id: str) -> JobRecord:
        """One job; :class:`~kbatch_dask.errors.JobNotFound` if unknown."""

    def logs(self, job_id: str, follow: bool = False) -> Iterator[str]:
        """The job's output, in chunks; with ``follow``, until the job ends."""

    def cancel(self, job_id: str) -> JobRecord:
        """Stop the job (and its cluster); returns the job's final record."""

    def result(self, job_id: str) -> bytes | None:
        """A function job's pickled result (see :mod:`kbatch_dask.driver.payload`), None if there is none."""

    def gateway(self, *, start: bool = False) -> GatewaySettings | None:
        """The Dask-Gateway this backend's jobs use: the configured one, or one the
        backend brings (started first with ``start``); None when there is none to ask."""


def resolve_backend_name(name: str) -> str:
    """``auto`` means kubernetes inside a pod with a service account, else local."""
    if name != "auto":
        return name
    in_pod = os.environ.get("KUBERNETES_SERVICE_HOST") and os.path.exists(SERVICE_ACCOUNT_DIR)
    return "kubernetes" if in_pod else "local"


def get_backend(name: str = "auto", config: Settings | None = None) -> Backend:
    """The backend called ``name`` (``auto``, ``local`` or ``kubernetes``), with ``config``
    (the settings in force if None)."""
    name = resolve_backend_name(name)
    if name == "local":
        from kbatch_dask.backends.local.backend import LocalBackend

        return LocalBackend(config=config)
    if name == "kubernetes":
        from kbatch_dask.backends.kubernetes.backend import KubernetesBackend

        return KubernetesBackend(config=config)
    raise BadInput(f"--backend {name!r}: expected auto, local or kubernetes")
