"""The dead-man's switch: a SIGKILLed supervisor's cluster, from the kill to STOPPED.

A kbatch job runs on the benchmark's gateway; once its script runs on the
cluster and the switch is armed, the supervisor alone is SIGKILLed (its
runner dies with it). The row is the time from the kill to the cluster's
``stop_time`` as the gateway records it. Its parts come from the gateway's
log: the switch's ask (the scheduler's ``DELETE``, after the kernel closed the
dead driver's connection and the switch's grace), the workers' exit (the
gateway signals each, then waits for it), and the scheduler's (then STOPPED).
"""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from kbatch_dask.gateway import GatewayClient

from .context import Context
from .driver_cases import submit_local
from .measure import Row, Target, interleaved

SCRIPT = """\
from dask.distributed import get_client
get_client().wait_for_workers(1, timeout=60)
print("started", flush=True)
import time
time.sleep(300)
"""
LOG_TIME = re.compile(r"\[\w (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) DaskGateway\]")
# The gateway's log lines that end the first two parts of one cluster's stop (its stop_time ends the third).
PARTS = {"asked": "Stopping cluster {name}", "workers": "Stopping cluster {name}..."}


def _wait(predicate: Callable[[], object], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {what} within {timeout:g} s")
        time.sleep(0.05)


def _logged(log: Path, text: str) -> float | None:
    """When the gateway's log first has a line ending with ``text`` (epoch seconds)."""
    for line in log.read_text(errors="replace").splitlines():
        if line.rstrip().endswith(text):
            found = LOG_TIME.search(line)
            if found:
                return datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
    return None


def _kill_run(ctx: Context, home: Path, script: Path, n: int) -> dict[str, float]:
    output = ctx.scratch / f"switch-{n}.out"
    job_dir = submit_local(ctx, home, output, [str(script), "--dask-workers", "1"])
    driver_log = job_dir / "driver.log"
    _wait(lambda: output.exists() and "started" in output.read_text(), "script start")
    _wait(lambda: "dead-man's switch armed" in driver_log.read_text(), "armed switch")
    record = json.loads((job_dir / "record.json").read_text())
    name = record["dask"]["cluster"]
    killed = time.time()
    os.kill(int(record["pid"]), signal.SIGKILL)
    stop: list[float] = []

    def stopped() -> bool:
        with GatewayClient(ctx.settings) as client:
            data = client.transport.request("GET", f"/api/v1/clusters/{name}")
        if data["status"] == "STOPPED" and data.get("stop_time"):
            stop.append(float(data["stop_time"]) / 1000)
        return bool(stop)

    _wait(stopped, "cluster stop")
    log = ctx.gateway_home / "gateway" / "gateway.log"
    seen = {part: _logged(log, text.format(name=name)) for part, text in PARTS.items()}
    asked, workers = seen["asked"], seen["workers"]
    return {
        "total": stop[0] - killed,
        "asked": (asked or float("nan")) - killed,
        "workers": (workers or float("nan")) - (asked or float("nan")),
        "scheduler": stop[0] - (workers or float("nan")),
    }


def switch(ctx: Context) -> list[Row]:
    home = ctx.home("switch")
    script = ctx.scratch / "victim.py"
    script.write_text(SCRIPT)
    results: list[dict[str, float]] = []
    counter = iter(range(10**6))

    def kill_run() -> float:
        results.append(_kill_run(ctx, home, script, next(counter)))
        return results[-1]["total"]

    times = interleaved({"kill": kill_run}, ctx.sizes.repeat_slow)["kill"]
    parts = {part: statistics.median(r[part] for r in results) for part in ("asked", "workers", "scheduler")}
    return [
        Row(
            "supervisor SIGKILL → cluster STOPPED",
            times,
            target=Target(3.0),
            note=(
                f"kill → switch asks the gateway {parts['asked']:.2f} s, → workers gone {parts['workers']:.2f} s,"
                f" → scheduler gone {parts['scheduler']:.2f} s"
            ),
        )
    ]
