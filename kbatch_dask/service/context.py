"""What every handler of the service shares: made once at start."""

from __future__ import annotations

from dataclasses import dataclass, field

from jupyterhub.services.auth import HubAuth, HubOAuth

from kbatch_dask.service.jobs import JobService
from kbatch_dask.service.metrics import Metrics
from kbatch_dask.settings import ServiceArchive


@dataclass(frozen=True)
class Context:
    hub_auth: HubAuth
    jobs: JobService
    service_name: str
    admin_groups: tuple[str, ...]
    max_body_size: int
    archive_limits: ServiceArchive  # the largest uploads the drivers may make
    metrics: Metrics = field(default_factory=Metrics)
    hub_oauth: HubOAuth | None = None  # the web page's login; None: no page (no hub to log in with)

    @property
    def scope(self) -> str:
        """The scope a user's token needs to use the service."""
        return f"access:services!service={self.service_name}"
