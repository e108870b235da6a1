"""What every benchmark group shares: sizes, scratch space, the embedded gateway
and the fake Kubernetes API server."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kbatch_dask.backends.local import embedded_gateway as embedded
from kbatch_dask.backends.local.backend import LocalBackend
from kbatch_dask.gateway import GatewaySettings

BIN = Path(sys.executable).parent
KBATCH = str(BIN / "kbatch")
KQUEUE = str(BIN / "kqueue")


@dataclass(frozen=True)
class Sizes:
    """How big and how often: the issue's sizes, or tiny ones for the smoke test."""

    local_small: int = 100
    local_large: int = 10_000
    local_running: int = 10
    local_recent: int = 90  # ended in the last day: shown by kqueue next to the running ones
    kube_small: int = 1_000
    kube_large: int = 10_000
    repeat_fast: int = 15  # commands well under a second
    repeat_slow: int = 7  # Kubernetes queues over 10,000 jobs, driver runs with a cluster
    service_jobs: int = 10_000
    service_users: int = 100
    service_clients: int = 100  # at once, each sending service_requests one after another
    service_requests: int = 20  # per client, when the load is aiohttp clients
    service_seconds: float = 5.0  # of load per repetition, when it is wrk
    web_jobs: int = 1_000  # in the web page's queue
    scaling_jobs: tuple[int, ...] = (1, 100, 10_000)  # how queues grow with the jobs
    # How a job's start and end grow with its workers: up to the embedded gateway's limit (8).
    scaling_workers: tuple[int, ...] = (1, 20)
    repeat_scaling_workers: int = 3
    log_mb: int = 200  # the output file `kbatch logs` prints

    @classmethod
    def smoke(cls) -> Sizes:
        return cls(
            20,
            200,
            2,
            8,
            20,
            60,
            1,
            1,
            service_jobs=40,
            web_jobs=20,
            log_mb=2,
            service_users=4,
            service_clients=4,
            service_requests=2,
            service_seconds=1.0,
            scaling_jobs=(1, 3),
            scaling_workers=(1,),
            repeat_scaling_workers=1,
        )


@dataclass
class Context:
    sizes: Sizes
    scratch: Path
    gateway_home: Path  # its gateway/ runs the embedded gateway every group uses
    own_gateway: bool
    bytecode_cache: bool = True  # the CLI's children keep their compiled modules (see cli_env)
    _server: Any = field(default=None, repr=False)

    @property
    def settings(self) -> GatewaySettings:
        settings = LocalBackend(str(self.gateway_home)).gateway(start=True)
        assert settings is not None
        return settings

    def env(self, **extra: str) -> dict[str, str]:
        """This process's environment without KBATCH_*/DASK_* settings, plus ``extra``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KBATCH_", "DASK_"))}
        env.update(extra)
        return env

    def cli_env(self, **extra: str) -> dict[str, str]:
        """:meth:`env` for the commands people type, their compiled modules kept (under
        the scratch directory) as an installed package keeps them. Without it, where
        ``PYTHONDONTWRITEBYTECODE`` is set (as in this machine's sessions), every run of
        a command compiles each kbatch-dask module it imports from source again."""
        env = self.env(**extra)
        if self.bytecode_cache:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(self.scratch / "pycache")
        return env

    def home(self, name: str) -> Path:
        """A fresh local state directory sharing the benchmark's gateway."""
        home = self.scratch / name
        home.mkdir(parents=True)
        (home / "gateway").symlink_to(self.gateway_home / "gateway", target_is_directory=True)
        return home

    @property
    def apiserver(self) -> Any:
        """The fake Kubernetes API server (started on first use)."""
        if self._server is None:
            from tests.fakes.kube.fake_apiserver import FakeApiServer

            self._server = FakeApiServer().start()
        return self._server

    def close(self) -> None:
        if self._server is not None:
            self._server.stop()
        if self.own_gateway:
            embedded.stop(str(self.gateway_home))
