"""How the figures grow with the work: 1 → 100 → 10,000 jobs on the Kubernetes
backend and through the service, and 1 → 20 workers for a job's cluster (on an
embedded gateway of its own, whose limit is raised from the default 8 to 20).

Each size is its own row, so the table shows the growth side by side: a queue
that costs the same at 1 and at 10,000 jobs is bounded by start-up, one that
grows tenfold is bounded by the jobs it reads.
"""

from __future__ import annotations

import json
import statistics
import time
import urllib.request
from functools import partial
from pathlib import Path

import dask

from kbatch_dask.backends.local import embedded_gateway as embedded
from kbatch_dask.backends.local.backend import LocalBackend
from kbatch_dask.gateway.settings import GatewaySettings
from kbatch_dask.spec import current_user

from . import synthetic
from .context import KBATCH, Context
from .driver_cases import run_local
from .measure import Row, interleaved, timed
from .service_cases import Running

WORKERS_SCRIPT = """\
import os, sys, time
print("first", time.time(), os.environ["KBATCH_DASK_CLUSTER"], flush=True)
from dask.distributed import get_client
client = get_client()
client.wait_for_workers(int(sys.argv[1]), timeout=600)
print("workers", time.time(), flush=True)
assert sum(client.gather(client.map(lambda i: i + 1, range(200)))) == 20100
print("last", time.time(), flush=True)
"""


def scaling(ctx: Context) -> list[Row]:
    return kube_scaling(ctx) + service_scaling(ctx) + worker_scaling(ctx)


def kube_scaling(ctx: Context) -> list[Row]:
    server, user = ctx.apiserver, current_user()
    runs, requests = {}, {}
    for n in ctx.sizes.scaling_jobs:
        namespace = f"scale-{n}"
        synthetic.kube_history(server, namespace, user, n, running=min(n, 10))
        kubeconfig = server.kubeconfig(ctx.scratch / f"kubeconfig-scale-{n}", namespace=namespace)
        env = ctx.env(KUBECONFIG=str(kubeconfig), KBATCH_DASK_HOME=str(ctx.scratch / "unused-home"))
        command = [KBATCH, "queue", "--backend", "kubernetes"]
        runs[n] = partial(timed, command, env)
        server.clear_requests()
        runs[n]()  # warms the disk cache; counts its API requests
        requests[n] = len(server.requests())
    samples = interleaved({str(n): run for n, run in runs.items()}, ctx.sizes.repeat_slow)
    return [
        Row(f"scaling: kqueue, kubernetes, {jobs(n)}", samples[str(n)], note=f"{requests[n]} API requests")
        for n in runs
    ]


def service_scaling(ctx: Context) -> list[Row]:
    """One service over users with 1, 100 and 10,000 jobs: a single client's GET
    /jobs and the CLI's ``kqueue`` through it, for each user."""
    server, sizes = ctx.apiserver, ctx.sizes
    namespace = "scale-service"
    users = {n: f"scale{n}" for n in sizes.scaling_jobs}
    first = 0
    for n, user in users.items():
        for i in range(n):
            synthetic.kube_job(server, namespace, user, first + i, "Running" if i < 2 else "Complete")
        first += n
    service = Running.start(ctx, namespace, list(users.values()))
    try:
        requests: dict[str, float] = {}
        runs = {}
        for n, user in users.items():
            token = service.tokens[user]
            get = urllib.request.Request(f"{service.api}/jobs", headers={"Authorization": f"token {token}"})
            requests[str(n)] = statistics.median(_get(get) for _ in range(20))
            env = ctx.env(
                JUPYTERHUB_API_TOKEN=token,
                JUPYTERHUB_API_URL=service.hub.api_url,
                JUPYTERHUB_USER=user,
                DASK_KBATCH__SERVICE__URL=service.url,
                KBATCH_DASK_HOME=str(ctx.scratch / f"home-{user}"),
            )
            runs[str(n)] = partial(timed, [KBATCH, "queue", "--backend", "hub"], env)
        samples = interleaved(runs, sizes.repeat_slow)
    finally:
        service.stop()
    total = f"{sum(users):,} in all"
    rows = [
        Row(f"scaling: service GET /jobs, one client, a user with {jobs(n)}", [requests[str(n)]], note=total)
        for n in users
    ]
    rows += [Row(f"scaling: kqueue, hub (through the service), {jobs(n)}", samples[str(n)]) for n in users]
    return rows


def jobs(n: int) -> str:
    return f"{n:,} job" + ("" if n == 1 else "s")


def _get(request: urllib.request.Request) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as answer:
        json.load(answer)
    return time.perf_counter() - started


def worker_scaling(ctx: Context) -> list[Row]:
    """A kbatch job whose cluster has 1 and then 20 workers, on an embedded gateway of
    its own that allows the most workers asked (its default is 8)."""
    home = ctx.scratch / "scaling-workers"
    home.mkdir()
    script = ctx.scratch / "workers.py"
    script.write_text(WORKERS_SCRIPT)
    measured: dict[int, list[dict[str, float]]] = {n: [] for n in ctx.sizes.scaling_workers}
    limit = {"DASK_KBATCH__EMBEDDED_GATEWAY__CLUSTER_MAX_WORKERS": str(max(measured))}
    with dask.config.set({"kbatch.embedded-gateway.cluster-max-workers": max(measured)}):
        gateway = LocalBackend(str(home)).gateway(start=True)
    assert gateway is not None

    def run(n: int) -> float:
        measured[n].append(_workers_run(ctx, home, script, n, limit, gateway))
        return 0.0

    try:
        interleaved({str(n): partial(run, n) for n in measured}, ctx.sizes.repeat_scaling_workers)
    finally:
        embedded.stop(str(home))
    rows = []
    for n, results in measured.items():
        rows.append(Row(f"scaling: {workers(n)}: driver start → first line", [r["start"] for r in results]))
        rows.append(Row(f"scaling: {workers(n)}: first line → all connected", [r["workers"] for r in results]))
        rows.append(Row(f"scaling: {workers(n)}: last line → cluster STOPPED", [r["end"] for r in results]))
    return rows


def workers(n: int) -> str:
    return f"{n} worker" + ("" if n == 1 else "s")


def _workers_run(
    ctx: Context, home: Path, script: Path, n: int, limit: dict[str, str], gateway: GatewaySettings
) -> dict[str, float]:
    output = ctx.scratch / f"workers-{n}-{time.monotonic_ns()}.out"
    seen, started = run_local(ctx, home, output, [str(script), str(n), "--dask-workers", str(n)], limit, gateway)
    ready = next(float(line.split()[1]) for line in output.read_text().splitlines() if line.startswith("workers "))
    first = float(seen.first[1])
    return {"start": first - started, "workers": ready - first, "end": seen.stopped - seen.last}
