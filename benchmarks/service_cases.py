"""The service's queue under many concurrent clients: the real service process,
a real JupyterHub authenticating every token, the fake API server holding many
users' jobs (seeded straight into its store)."""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

from .context import Context
from .measure import Row, Target
from .synthetic import kube_job

NAMESPACE = "bench-service"
USER_SCOPES = ["access:services!service=kbatch-dask"]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _load(urls: list[str], tokens: list[str], clients: int, per_client: int) -> tuple[list[float], float]:
    """``clients`` clients at once, each sending ``per_client`` requests one after
    another (no pause): every latency, and the seconds the whole load took."""
    import aiohttp

    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client(i: int) -> None:
            headers = {"Authorization": f"token {tokens[i % len(tokens)]}"}
            for _ in range(per_client):
                began = time.perf_counter()
                async with session.get(urls[i % len(urls)], headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"GET {response.url}: HTTP {response.status}")
                latencies.append(time.perf_counter() - began)

        began = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(clients)))
        return latencies, time.perf_counter() - began


def service_queue(ctx: Context) -> list[Row]:
    from tests.e2e.hub.servers import KBATCH_SERVICE, Hub, _start, _stop, _wait_healthy
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
    hub = Hub.start(ctx.scratch / "jupyterhub")
    proc = None
    try:
        tokens = []
        for user in users:
            hub.admin("POST", f"/users/{user}")
            tokens.append(str(hub.new_token(user, USER_SCOPES)["token"]))
        workdir = ctx.scratch / "service"
        workdir.mkdir()
        prefix = f"/services/{KBATCH_SERVICE}/"
        env = ctx.env(
            JUPYTERHUB_API_TOKEN=hub.service_token,
            JUPYTERHUB_API_URL=hub.api_url,
            JUPYTERHUB_SERVICE_URL=f"http://127.0.0.1:{hub.service_port}",
            JUPYTERHUB_SERVICE_PREFIX=prefix,
            KUBECONFIG=str(server.kubeconfig(workdir / "kubeconfig", namespace=NAMESPACE)),
        )
        env = {k: v for k, v in env.items() if k not in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT")}
        started = time.perf_counter()
        proc = _start([sys.executable, "-m", "kbatch_dask.service"], workdir, "service.log", env)
        api = f"http://127.0.0.1:{hub.service_port}{prefix}api/v1"
        _wait_healthy(f"{api}/health", proc, workdir / "service.log")  # 200 once both watches listed
        ready = time.perf_counter() - started
        urls = [f"{api}/jobs"]
        identity = DEFAULT_USER.replace("{namespace}", NAMESPACE)
        # The first request of each token goes to the hub (HubAuth then caches the answer).
        first, _ = asyncio.run(_load(urls, tokens, len(tokens), 1))
        server.clear_requests()
        p50s, p99s, rates = [], [], []
        for _ in range(sizes.repeat_slow):
            latencies, elapsed = asyncio.run(_load(urls, tokens, sizes.service_clients, sizes.service_requests))
            p50s.append(statistics.median(latencies))
            p99s.append(_percentile(latencies, 0.99))
            rates.append(len(latencies) / elapsed)
        queues = sizes.repeat_slow * sizes.service_clients * sizes.service_requests
        made = [r for r in server.requests(from_pods=False) if r.user == identity]
        watches = sum(r.query.get("watch") == "true" for r in made)
        per_queue = (len(made) - watches) / queues
    finally:
        if proc is not None:
            _stop(proc)
        hub.stop()
    what = f"{sizes.service_clients} clients, {sizes.service_jobs:,} jobs of {len(users)} users"
    return [
        Row(f"service ready (lists {sizes.service_jobs:,} Jobs and their pods)", [ready]),
        Row(
            f"GET /jobs, first request per token (the hub checks it), {len(users)} at once", [statistics.median(first)]
        ),
        Row(f"GET /jobs p50, {what}", p50s),
        Row(f"GET /jobs p99, {what}", p99s, target=Target(0.1)),
        Row(f"GET /jobs throughput, {what}", rates, unit="req/s"),
        Row(
            "Kubernetes API requests per GET /jobs",
            [per_queue],
            unit="",
            target=Target(0),
            note=f"{queues:,} queues; {watches} watch reconnects",
        ),
    ]
