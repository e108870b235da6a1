"""The Kubernetes queue over many Jobs on the fake API server, next to kubectl."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from functools import partial

from kbatch_dask.backends.kubernetes import manifests
from kbatch_dask.spec import current_user

from . import synthetic
from .context import KBATCH, Context
from .measure import Row, Target, interleaved, timed


def kube_queue(ctx: Context) -> list[Row]:
    server, user = ctx.apiserver, current_user()
    selector = manifests.user_selector(user)
    kubectl = shutil.which("kubectl")
    rows: list[Row] = []
    runs: dict[str, Callable[[], float]] = {}
    sizes = {"small": ctx.sizes.kube_small, "large": ctx.sizes.kube_large}
    commands = {}
    for key, n in sizes.items():
        namespace = f"bench-{key}"
        synthetic.kube_history(server, namespace, user, n)
        kubeconfig = server.kubeconfig(ctx.scratch / f"kubeconfig-{key}", namespace=namespace)
        env = ctx.env(KUBECONFIG=str(kubeconfig), KBATCH_DASK_HOME=str(ctx.scratch / "unused-home"))
        ours = [KBATCH, "queue", "--backend", "kubernetes"]
        runs[f"kqueue, kubernetes, {n:,} jobs"] = partial(timed, ours, env)
        commands[key] = (ours, env)
        if kubectl:
            theirs = [kubectl, "--kubeconfig", str(kubeconfig), "--cache-dir", str(ctx.scratch / "kubectl-cache")]
            theirs += ["get", "jobs", "-n", namespace, "-l", selector, "-o", "json"]
            runs[f"kubectl get jobs -l … -o json, {n:,} jobs"] = partial(timed, theirs, env)
    for run in runs.values():  # kubectl fills its discovery cache; both warm the disk cache
        run()
    samples = interleaved(runs, ctx.sizes.repeat_slow)
    for key, n in sizes.items():
        ours, env = commands[key]
        server.clear_requests()
        timed(ours, env)
        requests = len(server.requests())
        name = f"kqueue, kubernetes, {n:,} jobs"
        baseline = f"kubectl get jobs -l … -o json, {n:,} jobs"
        target = Target(0.7) if key == "small" else Target(2.5)
        rows.append(
            Row(
                name,
                samples[name],
                baseline=baseline if kubectl else None,
                target=target,
                note=f"{requests} API requests",
                extra={"requests": requests},
            )
        )
        if kubectl:
            rows.append(Row(baseline, samples[baseline]))
    return rows
