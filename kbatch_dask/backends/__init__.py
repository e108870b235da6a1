"""Where jobs run. Every backend speaks the small :class:`Backend` protocol and
turns its native objects into :class:`~kbatch_dask.records.JobRecord` at its
boundary; nothing above a backend sees a backend's own types.

What a backend finds out about the session it runs from (which backend, its
state directory, namespace, image) comes from ``detect_*`` functions that
return a :class:`Detected`: the value and where it came from. Submitting uses
the value; ``kbatch doctor`` calls the same functions and shows both.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from kbatch_dask.backends.outputs import LogStream
from kbatch_dask.errors import BadInput, KbatchWarning
from kbatch_dask.gateway.settings import GatewaySettings
from kbatch_dask.records import JobRecord
from kbatch_dask.settings import Settings
from kbatch_dask.settings import load as load_settings

if TYPE_CHECKING:  # the spec's validation is not imported by the commands that only read jobs
    from kbatch_dask.spec import JobSpec

if TYPE_CHECKING:
    from kbatch_dask.report import Saved

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"

T = TypeVar("T")


@dataclass(frozen=True)
class Detected(Generic[T]):
    """A value found out about this session, and where it came from (``source``)."""

    value: T
    source: str


class Backend(Protocol):
    name: str

    def check(self, spec: JobSpec) -> tuple[KbatchWarning, ...]:
        """Refuse (BadInput) what this backend cannot run, before anything is created;
        warn of what it runs, but not as asked (an option it cannot enforce)."""

    def dry_run(self, spec: JobSpec, environment: Mapping[str, str]) -> str:
        """What :meth:`submit` would create, as YAML (``--dry-run``); creates nothing."""

    def submit(self, spec: JobSpec, environment: dict[str, str]) -> JobRecord:
        """Create the job and return at once with its first record."""

    def resubmit(self, job_id: str, credentials: Mapping[str, str], environ: Mapping[str, str]) -> JobRecord:
        """A new job (a new id) from the job's own spec and its script as snapshotted at
        submit (never the file as it is now); the old job untouched. Its environment: the
        old job's own where the backend keeps it (local), else made again from ``environ``
        (this session's variables) as a submission makes it (Kubernetes keeps a job's
        environment only in its Secret, which kbatch never reads back); ``credentials``
        (the new job's hub token: the old one's ended with it) over it. JobNotFound;
        Conflict when the backend no longer holds the snapshot; refused as a submit
        of that spec would be."""

    def list(self, *, ended_since: datetime | None = None) -> list[JobRecord]:
        """This user's jobs: all active ones, and ended ones since ``ended_since`` (all if None)."""

    def get(self, job_id: str) -> JobRecord:
        """One job; :class:`~kbatch_dask.errors.JobNotFound` if unknown."""

    def logs(
        self, job_id: str, follow: bool = False, stream: LogStream = "output", tail: int | None = None
    ) -> Iterator[bytes]:
        """The job's output (``stream`` ``output``), its error file (``error``) or both
        (``all``), in chunks of bytes as the job wrote them (never decoded: see
        :func:`~kbatch_dask.backends.outputs.decoded` for text); from the last ``tail``
        lines of each; with ``follow``, until the job ends. BadInput (at the call) for
        ``error`` without an error file."""

    def cancel(self, job_id: str) -> JobRecord:
        """Stop the job (and its cluster); returns the job's final record."""

    def hold(self, job_id: str) -> JobRecord:
        """Keep a pending job from starting (``kbatch hold``); Conflict once it started or ended."""

    def release(self, job_id: str) -> JobRecord:
        """Let a held job start (``kbatch release``); Conflict unless it is held."""

    def result(self, job_id: str) -> bytes | None:
        """A function job's pickled result (see :mod:`kbatch_dask.driver.payload`), None if there is none."""

    def report(self, record: JobRecord) -> Saved | None:
        """What the job's driver saved of its report (:mod:`kbatch_dask.report`), None when none (yet)."""

    def gateway(self, *, start: bool = False, probe: bool = True) -> GatewaySettings | None:
        """The Dask-Gateway this backend's jobs use: the configured one, or one the
        backend brings (started first with ``start``); None when there is none to ask.
        Without ``probe``, one the backend brings is not asked first whether it
        answers: the caller's own request tells (the queue's one cluster listing)."""

    def clusters_without_gateway(self) -> dict[str, int]:
        """With :meth:`gateway` None, the clusters of the gateway the backend brings
        that still run (local: a killed embedded gateway's scheduler and worker
        processes), with their number of processes; ``kbatch gc`` ends them with
        :meth:`end_cluster`. Empty for a backend that brings no gateway."""

    def end_cluster(self, name: str) -> None:
        """End a cluster :meth:`clusters_without_gateway` found, without its gateway."""


def detect_backend(option: str | None, configured: str | None = None, service_url: str | None = None) -> Detected[str]:
    """The backend jobs go to: ``option`` (``--backend``), else ``configured``
    (``kbatch.backend``); ``auto`` means hub when ``service_url``
    (``kbatch.service.url``) is set, else kubernetes inside a pod with a service
    account, else local. The name is not checked here (:func:`get_backend` does).

    >>> detect_backend(None, "local")
    Detected(value='local', source='kbatch.backend is local')
    """
    name = option or configured or "auto"
    said = f"--backend {option}" if option else f"kbatch.backend is {name}"
    if name != "auto":
        return Detected(name, said)
    if service_url:
        return Detected("hub", f"{said}, and kbatch.service.url is {service_url}")
    if os.environ.get("KUBERNETES_SERVICE_HOST") and os.path.exists(SERVICE_ACCOUNT_DIR):
        return Detected("kubernetes", f"{said}, and this is a Kubernetes pod with a service account")
    return Detected("local", f"{said}, and this is not a Kubernetes pod with a service account")


def get_backend(name: str = "auto", config: Settings | None = None) -> Backend:
    """The backend called ``name`` (``auto``, ``local``, ``kubernetes`` or ``hub``), with
    ``config`` (the settings in force if None)."""
    config = config or load_settings()
    name = detect_backend(name, service_url=config.service.url).value
    if name == "local":
        from kbatch_dask.backends.local.backend import LocalBackend

        return LocalBackend(config=config)
    if name == "kubernetes":
        from kbatch_dask.backends.kubernetes.backend import KubernetesBackend

        return KubernetesBackend(config=config)
    if name == "hub":
        from kbatch_dask.backends.hub.backend import HubBackend

        return HubBackend(config=config)
    raise BadInput(f"--backend {name!r}: expected auto, local, kubernetes or hub")
