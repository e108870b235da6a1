"""Measure how fast a job's cluster stops after each kind of ending.

    python benchmarks/reliability.py [--repeat 3]

Runs real jobs on a private embedded gateway and prints, per fault, the median
seconds from the fault to the cluster's ``stop_time`` as the gateway records
it. The fault's moment: the script's last line (it prints a timestamp just
before it ends), the `kbatch cancel` call, the supervisor's SIGKILL (once the
script runs, or once the cluster is created and still starting), the embedded
gateway's SIGKILL, or the time limit's expiry. With the gateway killed nothing
records a stop time: "stopped" is then when the cluster's last scheduler or
worker process has exited. The ``own-`` cases time the cluster the script makes
itself (``Gateway().new_cluster(shutdown_on_close=False)``) instead of the
job's. Figures go into docs/reliability.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

BIN = Path(sys.executable).parent
CONNECT = (
    "from dask.distributed import get_client\n"
    "get_client().wait_for_workers(1, timeout=60)\n"
    "print('started', flush=True)\n"
)
MAKE_OWN = (
    "from dask_gateway import Gateway\n"
    "own = Gateway().new_cluster(shutdown_on_close=False)\n"
    "print('own', own.name, flush=True)\n"
)


def kbatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "kbatch"), *args], capture_output=True, text=True, check=False)


def show(job_id: str) -> dict:
    return dict(json.loads(kbatch("show", job_id, "-o", "json").stdout))


def wait(predicate: Callable[[], object], timeout: float = 120) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError


def stop_time(home: str, name: str) -> float | None:
    """The cluster's stop time (epoch seconds) once the gateway has stopped it."""
    from kbatch_dask.backends.local.backend import LocalBackend
    from kbatch_dask.gateway import GatewayClient

    settings = LocalBackend(home).gateway()
    assert settings is not None
    with GatewayClient(settings) as client:
        data = client.transport.request("GET", f"/api/v1/clusters/{name}")
    if data["status"] not in ("STOPPED", "FAILED") or not data.get("stop_time"):
        return None
    return float(data["stop_time"]) / 1000


def processes_gone(home: str, name: str) -> float | None:
    """When the cluster's processes (working in its folder) have all exited, else None."""
    from kbatch_dask.backends.local import cluster_processes

    return None if cluster_processes.find(os.path.join(home, "gateway", "clusters")).get(name) else time.time()


def kill_while_starting(home: str, job_id: str) -> tuple[str, float]:
    """SIGKILL the supervisor once its cluster is created, before it runs."""
    log = Path(home) / "jobs" / job_id / "driver.log"
    wait(lambda: log.exists() and "created; waiting for it to start" in log.read_text(), timeout=60)
    fault_at = time.time()
    os.kill(show(job_id)["pid"], signal.SIGKILL)
    return show(job_id)["dask"]["cluster"], fault_at


def run_case(home: str, tmp: Path, name: str, body: str, args: list[str], fault: str) -> float:
    """Seconds from the fault to the cluster stopped."""
    out = tmp / f"{name}-{time.monotonic_ns()}.out"  # a fresh file per run
    script = tmp / f"{name}.py"
    own = name.startswith("own-")
    script.write_text(CONNECT + (MAKE_OWN if own else "") + body)
    job_id = kbatch("-o", str(out), "--parsable", *args, str(script), "--dask-workers", "1").stdout.strip()
    if fault == "kill-while-starting":
        cluster, fault_at = kill_while_starting(home, job_id)
        return float(str(wait(lambda: stop_time(home, cluster)))) - fault_at
    wait(lambda: out.exists() and ("own " if own else "started") in out.read_text())
    if own:  # the job has owned it once its record says so
        wait(lambda: show(job_id)["owned_clusters"])
    record = show(job_id)
    cluster = record["owned_clusters"][0] if own else record["dask"]["cluster"]
    if fault == "cancel":
        fault_at = time.time()
        kbatch("cancel", job_id)
    elif fault == "kill-supervisor":
        log = Path(home) / "jobs" / job_id / "driver.log"
        wait(lambda: f"dead-man's switch armed on {cluster}" in log.read_text())
        fault_at = time.time()
        os.kill(record["pid"], signal.SIGKILL)
    elif fault == "kill-gateway":
        wait(lambda: "dead-man's switch armed" in (Path(home) / "jobs" / job_id / "driver.log").read_text())
        fault_at = time.time()
        os.kill(json.loads((Path(home) / "gateway" / "gateway.json").read_text())["pid"], signal.SIGKILL)
        gone = wait(lambda: processes_gone(home, cluster))
        assert isinstance(gone, float)
        kbatch("cancel", job_id)  # the next case's job starts the gateway again
        return gone - fault_at
    elif fault.startswith("limit"):
        from datetime import datetime

        fault_at = datetime.fromisoformat(record["started"]).timestamp() + float(fault.split(":")[1])
    else:  # the script's last line printed when it ended
        wait(lambda: "ending at" in out.read_text())
        fault_at = float(out.read_text().split("ending at")[1].split()[0])
    try:
        stopped = wait(lambda: stop_time(home, cluster))
    except TimeoutError:
        log = Path(home) / "jobs" / job_id / "driver.log"
        raise SystemExit(f"{name}: cluster {cluster} not stopped; driver log:\n{log.read_text()}") from None
    assert isinstance(stopped, float)
    return stopped - fault_at


END = "import time; print('ending at', time.time(), flush=True)\n"
CASES = [
    ("success", END, [], "end"),
    ("raise", END + "raise ValueError('boom')\n", [], "end"),
    ("exit-3", END + "import sys; sys.exit(3)\n", [], "end"),
    ("os-exit-4", END + "import os; os._exit(4)\n", [], "end"),
    ("segfault", END + "import ctypes; ctypes.string_at(0)\n", [], "end"),
    ("sigkill-runner", END + "import os, signal; os.kill(os.getpid(), signal.SIGKILL)\n", [], "end"),
    ("cancel", "import time; time.sleep(300)\n", [], "cancel"),
    ("kill-supervisor", "import time; time.sleep(300)\n", [], "kill-supervisor"),
    ("time-limit-0:05", "import time; time.sleep(60)\n", ["--time", "0:05"], "limit:5"),
    ("own-success", END, [], "end"),
    ("own-cancel", "import time; time.sleep(300)\n", [], "cancel"),
    ("own-kill-supervisor", "import time; time.sleep(300)\n", [], "kill-supervisor"),
    ("own-time-limit-0:30", "import time; time.sleep(60)\n", ["--time", "0:30"], "limit:30"),
    ("kill-while-starting", "import time; time.sleep(300)\n", [], "kill-while-starting"),
    ("kill-gateway", "import time; time.sleep(300)\n", [], "kill-gateway"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", help="run only the cases whose name contains this")
    parsed = parser.parse_args()
    repeat = parsed.repeat
    cases = [c for c in CASES if not parsed.only or parsed.only in c[0]]
    with tempfile.TemporaryDirectory(prefix="kbatch-reliability-") as tmpdir:
        tmp = Path(tmpdir)
        home = str(tmp / "home")
        os.environ["KBATCH_DASK_HOME"] = home
        try:
            times: dict[str, list[float]] = {name: [] for name, *_ in cases}
            for _ in range(repeat):  # interleaved, so machine noise spreads over all cases
                for name, body, args, fault in cases:
                    print(f"running {name}", file=sys.stderr, flush=True)
                    times[name].append(run_case(home, tmp, name, body, args, fault))
            print(f"{'fault':<18} {'median s':>9} {'max s':>7}   (fault -> cluster stopped, n={repeat})")
            for name, values in times.items():
                print(f"{name:<18} {statistics.median(values):>9.2f} {max(values):>7.2f}")
        finally:
            kbatch("gateway", "stop")


if __name__ == "__main__":
    main()
