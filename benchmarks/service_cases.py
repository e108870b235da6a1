"""The service's queue under many concurrent clients: the real service process,
a real JupyterHub authenticating every token, the fake API server holding many
users' jobs (seeded straight into its store)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

from . import load
from .context import Context
from .measure import Row, Target
from .synthetic import kube_job

NAMESPACE = "bench-service"
USER_SCOPES = ["access:services!service=kbatch-dask"]


def settle(health: str, timeout: float = 300.0) -> None:
    """Wait until the service has written every record it noted (``/health``'s
    ``records-pending`` is 0)."""
    deadline = time.monotonic() + timeout
    while True:
        with urllib.request.urlopen(health, timeout=10) as answer:
            if json.load(answer)["records-pending"] == 0:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the service still had records to write after {timeout:.0f} s")
        time.sleep(0.5)


@dataclass
class Running:
    """A real JupyterHub and the service over ``namespace``, with a token per user."""

    hub: Any
    proc: subprocess.Popen[bytes]
    api: str  # the API's URL, .../api/v1
    tokens: dict[str, str]
    ready: float  # seconds from the service's start to both watches listed
    settled: float  # ... to every record written

    @classmethod
    def start(cls, ctx: Context, namespace: str, users: list[str]) -> Running:
        from tests.e2e.hub.servers import KBATCH_SERVICE, Hub, _start, _wait_healthy

        hub = Hub.start(ctx.scratch / f"jupyterhub-{namespace}")
        try:
            tokens = {}
            for user in users:
                hub.admin("POST", f"/users/{user}")
                tokens[user] = str(hub.new_token(user, USER_SCOPES)["token"])
            workdir = ctx.scratch / f"service-{namespace}"
            workdir.mkdir()
            prefix = f"/services/{KBATCH_SERVICE}/"
            env = ctx.env(
                JUPYTERHUB_API_TOKEN=hub.service_token,
                JUPYTERHUB_API_URL=hub.api_url,
                JUPYTERHUB_SERVICE_URL=f"http://127.0.0.1:{hub.service_port}",
                JUPYTERHUB_SERVICE_PREFIX=prefix,
                KUBECONFIG=str(ctx.apiserver.kubeconfig(workdir / "kubeconfig", namespace=namespace)),
            )
            env = {k: v for k, v in env.items() if k not in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT")}
            started = time.perf_counter()
            proc = _start([sys.executable, "-m", "kbatch_dask.service"], workdir, "service.log", env)
        except BaseException:
            hub.stop()
            raise
        api = f"http://127.0.0.1:{hub.service_port}{prefix}api/v1"
        running = cls(hub, proc, api, tokens, 0.0, 0.0)
        try:
            _wait_healthy(f"{api}/health", proc, workdir / "service.log")  # 200 once both watches listed
            running.ready = time.perf_counter() - started
            settle(f"{api}/health")  # the first list's records written: measure the service at rest, not its start
            running.settled = time.perf_counter() - started
        except BaseException:
            running.stop()
            raise
        return running

    @property
    def url(self) -> str:
        """The service's URL, as users configure it (kbatch.service.url)."""
        return self.api.removesuffix("api/v1")

    def stop(self) -> None:
        from tests.e2e.hub.servers import _stop

        _stop(self.proc)
        self.hub.stop()


def service_queue(ctx: Context) -> list[Row]:
    from tests.fakes.kube.fake_apiserver import DEFAULT_USER

    sizes = ctx.sizes
    server = ctx.apiserver
    users = [f"user{i:03d}" for i in range(sizes.service_users)]
    per_user = sizes.service_jobs // len(users)
    for n, user in enumerate(users):
        for i in range(per_user):
            kube_job(
                server, NAMESPACE, user, n * per_user + i, "Running" if i < 2 else ("Complete", "Failed")[i % 5 == 4]
            )
    service = Running.start(ctx, NAMESPACE, users)
    try:
        tokens, pid = list(service.tokens.values()), service.proc.pid
        url = f"{service.api}/jobs"
        identity = DEFAULT_USER.replace("{namespace}", NAMESPACE)
        # The first request of each token goes to the hub (HubAuth then caches the answer).
        first = asyncio.run(load._aiohttp(url, tokens, len(tokens), 1))
        server.clear_requests()
        loads, cpu = [], []
        for _ in range(sizes.repeat_slow):
            used = load.cpu_seconds(pid)
            loads.append(
                load.run(url, tokens, sizes.service_clients, sizes.service_seconds, sizes.service_requests, ctx.scratch)
            )
            cpu.append(1000 * (load.cpu_seconds(pid) - used) / loads[-1].requests)
        queues = sum(r.requests for r in loads)
        made = [r for r in server.requests(from_pods=False) if r.user == identity]
        watches = sum(r.query.get("watch") == "true" for r in made)
        per_queue = (len(made) - watches) / queues
    finally:
        service.stop()
    what = f"{sizes.service_clients} clients, {sizes.service_jobs:,} jobs of {len(users)} users"
    clients = f"{loads[0].tool} clients" + ("" if loads[0].tool == "wrk" else " in this process; install wrk")
    return [
        Row(f"service ready (lists {sizes.service_jobs:,} Jobs and their pods)", [service.ready]),
        Row(f"service settled (the {sizes.service_jobs:,} jobs' records written to its database)", [service.settled]),
        Row(f"GET /jobs, first request per token (the hub checks it), {len(users)} at once", [first.p50]),
        Row(f"GET /jobs p50, {what}", [x.p50 for x in loads], note=clients),
        Row(f"GET /jobs p99, {what}", [x.p99 for x in loads], target=Target(0.1), note=clients),
        Row(f"GET /jobs throughput, {what}", [x.rate for x in loads], unit="req/s"),
        Row("service CPU per GET /jobs", cpu, unit="ms", note="user + system, from /proc"),
        Row(
            "Kubernetes API requests per GET /jobs",
            [per_queue],
            unit="",
            target=Target(0),
            note=f"{queues:,} queues; {watches} watch reconnects",
        ),
    ]
