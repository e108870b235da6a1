"""CLI start-up, the local queue at three history sizes, and submit latency."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from . import synthetic
from .context import KBATCH, KQUEUE, Context
from .measure import Row, Target, interleaved, timed


def startup(ctx: Context) -> list[Row]:
    py, env = sys.executable, ctx.env()
    runs = {
        "python -c pass": lambda: timed([py, "-c", "pass"], env),
        'python -c "import click"': lambda: timed([py, "-c", "import click"], env),
        "kbatch --help": lambda: timed([KBATCH, "--help"], env),
    }
    samples = interleaved(runs, ctx.sizes.repeat_fast)
    return [
        Row("python -c pass", samples["python -c pass"]),
        Row('python -c "import click"', samples['python -c "import click"']),
        Row(
            "kbatch --help",
            samples["kbatch --help"],
            baseline='python -c "import click"',
            target=Target(3, "times"),
        ),
    ]


def local_queue(ctx: Context) -> list[Row]:
    s = ctx.sizes
    gateway_dir = ctx.gateway_home / "gateway"

    def history(name: str, total: int) -> Path:
        running, recent = (s.local_running, s.local_recent) if total else (0, 0)
        old = total - running - recent
        return synthetic.local_history(
            ctx.scratch / name, running=running, recent=recent, old=old, gateway_dir=gateway_dir
        )

    homes = {
        "0 jobs": history("q0", 0),
        "small": history("q-small", s.local_small),
        "large": history("q-large", s.local_large),
    }
    shown = s.local_running + s.local_recent
    names = {
        "0 jobs": "kqueue, local, 0 jobs",
        "small": f"kqueue, local, {s.local_small:,} jobs ({s.local_running} running, {shown} shown)",
        "large": f"kqueue, local, {s.local_large:,} jobs ({s.local_running} running, {shown} shown)",
        "all": f"kqueue --all, local, {s.local_large:,} jobs (all shown)",
    }

    def kqueue(home: Path, *args: str) -> Callable[[], float]:
        return lambda: timed([KQUEUE, *args], ctx.env(KBATCH_DASK_HOME=str(home)))

    runs = {names[k]: kqueue(h) for k, h in homes.items()}
    runs[names["all"]] = kqueue(homes["large"], "--all")
    for run in runs.values():  # a first run of each warms the disk cache
        run()
    samples = interleaved(runs, s.repeat_fast)
    targets = {names["small"]: Target(0.35), names["large"]: Target(0.5)}
    return [Row(n, samples[n], target=targets.get(n)) for n in runs]


def _wait_ended(home: Path, job_id: str, timeout: float = 120) -> None:
    record = home / "jobs" / job_id / "record.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if json.loads(record.read_text())["state"] not in ("PENDING", "RUNNING"):
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"job {job_id} did not end within {timeout} s")


def submit(ctx: Context) -> list[Row]:
    home = ctx.home("submit-local")
    script = ctx.scratch / "noop.py"
    script.write_text("print('done')\n")
    local_env = ctx.env(KBATCH_DASK_HOME=str(home))
    server = ctx.apiserver
    kubeconfig = server.kubeconfig(ctx.scratch / "kubeconfig-submit", namespace="bench-submit")
    kube_env = ctx.env(
        KBATCH_DASK_HOME=str(ctx.scratch / "unused-home"),
        KUBECONFIG=str(kubeconfig),
        JUPYTER_IMAGE_SPEC="bench:latest",
        HOSTNAME="not-a-notebook-pod",
    )
    out = str(ctx.scratch / "submit-%j.out")

    def local() -> float:
        start = time.perf_counter()
        proc = _run([KBATCH, "--parsable", "-o", out, str(script), "--dask-workers", "0"], local_env)
        elapsed = time.perf_counter() - start
        _wait_ended(home, proc.strip())  # not timed: the next submission starts on a quiet machine
        return elapsed

    def kubernetes() -> float:
        cmd = [KBATCH, "--backend", "kubernetes", "--parsable", "-o", out, str(script), "--dask-workers", "0"]
        return timed(cmd, kube_env)

    runs = {"submit, local (returns the job id)": local, "submit, kubernetes (fake API server)": kubernetes}
    for run in runs.values():
        run()
    samples = interleaved(runs, ctx.sizes.repeat_fast)
    server.clear_requests()
    kubernetes()
    requests = len(server.requests())
    names = list(runs)
    return [
        Row(names[0], samples[names[0]], target=Target(0.4)),
        Row(names[1], samples[names[1]], note=f"{requests} API requests"),
    ]


def _run(cmd: list[str], env: dict[str, str]) -> str:
    import subprocess

    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout
