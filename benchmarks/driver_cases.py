"""Driver overhead and memory, next to a bare dask-gateway script on the same gateway.

A kbatch job and a bare script do the same work: the first line of the user's
code prints the time, one task runs on the cluster, the last line prints the
time. A kbatch job's first line by default waits for its first worker
(``kbatch.driver.wait-for-workers``: 1): it is compared with a bare script that
waits too (``client.wait_for_workers(1)``), and a job with ``--wait-for-workers 0``
with the bare script that does not. The benchmark samples
each process's peak memory (VmHWM) while it runs and, from the last line on,
asks the gateway until the cluster is STOPPED, then waits for the job to be
recorded as ended (the bare script: for it to exit).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kbatch_dask.gateway import ClusterStatus, GatewayClient, GatewaySettings

from .context import KBATCH, Context
from .measure import Row, Target, interleaved, peak_rss_mib, process_start, timed

JOB_SCRIPT = """\
import os, time
print("first", time.time(), os.environ["KBATCH_DASK_CLUSTER"], flush=True)
from dask.distributed import get_client
assert get_client().submit(sum, [1, 2]).result() == 3
print("last", time.time(), flush=True)
"""

BARE_SCRIPT = """\
import time
from dask_gateway import Gateway
gateway = Gateway()
before = time.time()
cluster = gateway.new_cluster(shutdown_on_close=True)
running = time.time()
cluster.scale(1)
client = cluster.get_client()
print("first", time.time(), cluster.name, before, running, flush=True)
assert client.submit(sum, [1, 2]).result() == 3
print("last", time.time(), flush=True)
cluster.shutdown()
"""

# As a kbatch job's first line does by default: its first worker has joined.
BARE_WAITING_SCRIPT = BARE_SCRIPT.replace(
    "client = cluster.get_client()\n", "client = cluster.get_client()\nclient.wait_for_workers(1)\n"
)

# The report's cost (issue 17), on a job that keeps its scheduler busy: 2000 tasks.
REPORT_SCRIPT = """\
import os, time
print("first", time.time(), os.environ["KBATCH_DASK_CLUSTER"], flush=True)
from dask.distributed import get_client
client = get_client()
assert sum(client.gather(client.map(lambda i: i + 1, range(2000)))) == 2001000
print("last", time.time(), flush=True)
"""
NO_REPORT = {"DASK_KBATCH__REPORT__ENABLED": "false"}

RUNNER_IMPORTS = "import kbatch_dask.driver.runner, kbatch_dask.driver.session, distributed, dask_gateway"

Measured = dict[str, float]


@dataclass(frozen=True)
class Seen:
    first: list[str]  # the first line's fields: "first", time, cluster name, ...
    last: float
    stopped: float
    ended: float  # the job's record says it ended (its report written), or the process exited
    rss: float


def follow(pid: int, output: Path, settings: GatewaySettings, alive: Callable[[], bool]) -> Seen:
    """Watch one run: its first and last lines, its peak memory, when its cluster stopped
    and when it ended (either may come first)."""
    deadline = time.monotonic() + 300
    first: list[str] = []
    last: float | None = None
    stopped: float | None = None
    ended: float | None = None
    rss = 0.0
    while time.monotonic() < deadline:
        rss = max(rss, peak_rss_mib(pid) or 0.0)
        lines = output.read_text().split("\n")[:-1] if output.exists() else []  # whole lines only
        first = first or next((line.split() for line in lines if line.startswith("first ")), [])
        last = last or next((float(line.split()[1]) for line in lines if line.startswith("last ")), None)
        running = alive()
        if first and last is not None:
            ended = ended or (None if running else time.time())
            if stopped is None:
                with GatewayClient(settings) as client:
                    info = client.cluster_info(first[2])
                if info is None or info.status is ClusterStatus.STOPPED:
                    stopped = time.time()
            if stopped is not None and ended is not None:
                return Seen(first, last, stopped, ended, rss)
        elif not running:
            raise RuntimeError(f"process {pid} ended early; output:\n{output.read_text() if output.exists() else ''}")
        time.sleep(0.02)
    raise RuntimeError(f"process {pid}: no cluster stop within 300 s")


def submit_local(ctx: Context, home: Path, output: Path, args: list[str], extra: dict[str, str] | None = None) -> Path:
    """``kbatch -o OUTPUT --parsable ARGS`` on the local backend of ``home``: the new job's directory."""
    proc = subprocess.run(
        [KBATCH, "-o", str(output), "--parsable", *args],
        env=ctx.env(KBATCH_DASK_HOME=str(home), **(extra or {})),
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"kbatch {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
    return home / "jobs" / proc.stdout.strip()


def driver_of(job_dir: Path) -> tuple[int, Callable[[], bool]]:
    """A local job's driver pid, and whether the job is still going."""
    pid = int(json.loads((job_dir / "record.json").read_text())["pid"])

    def alive() -> bool:
        state = json.loads((job_dir / "record.json").read_text())["state"]
        return Path(f"/proc/{pid}").exists() and state in ("PENDING", "RUNNING")

    return pid, alive


def run_local(
    ctx: Context,
    home: Path,
    output: Path,
    args: list[str],
    extra: dict[str, str] | None = None,
    gateway: GatewaySettings | None = None,
) -> tuple[Seen, float]:
    """:func:`submit_local`, followed to its cluster's stop on ``gateway`` (the
    benchmark's by default): what was seen, and when its driver started; fails
    loudly unless the job SUCCEEDED."""
    job_dir = submit_local(ctx, home, output, args, extra)
    pid, alive = driver_of(job_dir)
    started = process_start(pid)
    seen = follow(pid, output, gateway or ctx.settings, alive)
    state = json.loads((job_dir / "record.json").read_text())["state"]
    if state != "SUCCEEDED":
        raise RuntimeError(f"benchmark job {' '.join(args)} ended {state}; see {job_dir}")
    return seen, started


def _kbatch_run(
    ctx: Context, home: Path, script: Path, n: int, extra: dict[str, str] | None = None, *options: str
) -> Measured:
    output = ctx.scratch / f"driver-{n}.out"
    seen, started = run_local(ctx, home, output, [str(script), "--dask-workers", "1", *options], extra)
    start = float(seen.first[1]) - started
    return {
        "start": start,
        "end": seen.stopped - seen.last,
        "rss": seen.rss,
        "total": seen.stopped - started,
        "ended": seen.ended - started,
    }


def _bare_run(ctx: Context, script: Path, n: int) -> Measured:
    output = ctx.scratch / f"bare-{n}.out"
    env = ctx.env(**ctx.settings.env)
    with output.open("w") as out:
        proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=out, stderr=subprocess.STDOUT)
    started = process_start(proc.pid)
    seen = follow(proc.pid, output, ctx.settings, lambda: proc.poll() is None)
    if proc.wait() != 0:
        raise RuntimeError(f"the bare dask-gateway script failed:\n{output.read_text()}")
    before, running = float(seen.first[3]), float(seen.first[4])
    return {
        "start": float(seen.first[1]) - started,
        "cluster": running - before,
        "end": seen.stopped - seen.last,
        "rss": seen.rss,
    }


def driver(ctx: Context) -> list[Row]:
    home = ctx.home("driver")
    job_script, bare_script, report_script = ctx.scratch / "job.py", ctx.scratch / "bare.py", ctx.scratch / "tasks.py"
    waiting_script = ctx.scratch / "bare-waiting.py"
    job_script.write_text(JOB_SCRIPT)
    bare_script.write_text(BARE_SCRIPT)
    waiting_script.write_text(BARE_WAITING_SCRIPT)
    report_script.write_text(REPORT_SCRIPT)
    results: dict[str, list[Measured]] = {
        "kbatch": [],
        "no wait": [],
        "bare": [],
        "bare waiting": [],
        "report": [],
        "no report": [],
    }
    counter = iter(range(10**6))

    def kbatch_run() -> float:
        results["kbatch"].append(_kbatch_run(ctx, home, job_script, next(counter)))
        return 0.0

    def unwaited() -> float:
        results["no wait"].append(_kbatch_run(ctx, home, job_script, next(counter), None, "--wait-for-workers", "0"))
        return 0.0

    def bare_run() -> float:
        results["bare"].append(_bare_run(ctx, bare_script, next(counter)))
        return 0.0

    def bare_waiting() -> float:
        results["bare waiting"].append(_bare_run(ctx, waiting_script, next(counter)))
        return 0.0

    def runner_imports() -> float:
        return timed([sys.executable, "-c", RUNNER_IMPORTS], ctx.env())

    def reported() -> float:
        results["report"].append(_kbatch_run(ctx, home, report_script, next(counter)))
        return 0.0

    def unreported() -> float:
        results["no report"].append(_kbatch_run(ctx, home, report_script, next(counter), NO_REPORT))
        return 0.0

    runs = {
        "kbatch": kbatch_run,
        "no wait": unwaited,
        "bare": bare_run,
        "bare waiting": bare_waiting,
        "imports": runner_imports,
        "report": reported,
        "none": unreported,
    }
    imports = interleaved(runs, ctx.sizes.repeat_slow)
    job, bare = results["kbatch"], results["bare"]
    without = "kbatch job of 2000 tasks, no report (report.enabled false): driver start → cluster STOPPED"
    without_ended = "kbatch job of 2000 tasks, no report: driver start → job ended (its record)"
    cluster_start = "gateway cluster start (bare new_cluster())"
    bare_first = "bare dask-gateway script: process start → first line"
    waiting_first = "bare dask-gateway script, waits for its first worker: process start → first line"
    return [
        Row(cluster_start, [r["cluster"] for r in bare]),
        Row(
            "the runner's imports (python -c: kbatch_dask.driver.session, distributed, dask_gateway)",
            imports["imports"],
        ),
        Row(bare_first, [r["start"] for r in bare]),
        Row(waiting_first, [r["start"] for r in results["bare waiting"]]),
        Row(
            "kbatch job (waits for its first worker): driver start → script's first line",
            [r["start"] for r in job],
            baseline=waiting_first,
            target=Target(1.0, "times"),
        ),
        Row(
            "kbatch job, --wait-for-workers 0 (as the bare script): driver start → script's first line",
            [r["start"] for r in results["no wait"]],
            baseline=bare_first,
            target=Target(1.0, "times"),
        ),
        Row("bare dask-gateway script: last line → cluster STOPPED", [r["end"] for r in bare]),
        Row(
            "kbatch job: script's last line → cluster STOPPED",
            [r["end"] for r in job],
            baseline="bare dask-gateway script: last line → cluster STOPPED",
            target=Target(1.0, "times"),
        ),
        Row("bare dask-gateway script peak RSS", [r["rss"] for r in bare], unit="MiB"),
        Row(without, [r["total"] for r in results["no report"]]),
        Row(
            "kbatch job of 2000 tasks, with its report and Dask's HTML report: driver start → cluster STOPPED",
            [r["total"] for r in results["report"]],
            baseline=without,
            target=Target(1.05, "times"),
        ),
        Row(without_ended, [r["ended"] for r in results["no report"]]),
        Row(
            "kbatch job of 2000 tasks, with its reports: driver start → job ended (its record; the HTML written)",
            [r["ended"] for r in results["report"]],
            baseline=without_ended,
        ),
        Row(
            "supervisor peak RSS",
            [r["rss"] for r in job],
            unit="MiB",
            baseline="bare dask-gateway script peak RSS",
            target=Target(150),
        ),
    ]
