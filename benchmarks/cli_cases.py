"""CLI start-up, the local queue as its history grows (1 → 100 → 10,000 jobs),
submit latency, each next to ``kbatch --help`` in the same rounds, and
``kbatch logs`` of a big output: its rate to a pipe and its peak memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from . import synthetic
from .context import KBATCH, KQUEUE, Context
from .measure import Row, Target, interleaved, timed

HELP = [KBATCH, "--help"]


def startup(ctx: Context) -> list[Row]:
    py, env = sys.executable, ctx.cli_env()
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

    def history(name: str, total: int, running: int, recent: int) -> Path:
        old = total - running - recent
        return synthetic.local_history(
            ctx.scratch / name, running=running, recent=recent, old=old, gateway_dir=gateway_dir
        )

    shown = s.local_running + s.local_recent
    homes = {
        "0 jobs": history("q0", 0, 0, 0),
        "1 job": history("q1", 1, 1, 0),
        "small": history("q-small", s.local_small, s.local_running, s.local_recent),
        "large": history("q-large", s.local_large, s.local_running, s.local_recent),
    }
    help_name = "kbatch --help (in the queue's rounds)"
    names = {
        "0 jobs": "kqueue, local, 0 jobs",
        "1 job": "kqueue, local, 1 job (running, with a cluster)",
        "small": f"kqueue, local, {s.local_small:,} jobs ({s.local_running} running, {shown} shown)",
        "large": f"kqueue, local, {s.local_large:,} jobs ({s.local_running} running, {shown} shown)",
        "all": f"kqueue --all, local, {s.local_large:,} jobs (all shown)",
        "changed": f"kqueue, local, {s.local_large:,} jobs, its jobs directory just changed (listed)",
    }

    def kqueue(home: Path, *args: str) -> Callable[[], float]:
        return lambda: timed([KQUEUE, *args], ctx.cli_env(KBATCH_DASK_HOME=str(home)))

    def after_a_change(home: Path) -> Callable[[], float]:
        """As the first queue after a submit: the kept listing of the job directories is not used."""
        run = kqueue(home)

        def changed() -> float:
            os.utime(home / "jobs")  # what a new job's directory does to it
            return run()

        return changed

    runs: dict[str, Callable[[], float]] = {help_name: lambda: timed(HELP, ctx.cli_env())}
    runs.update({names[k]: kqueue(h) for k, h in homes.items()})
    runs[names["all"]] = kqueue(homes["large"], "--all")
    # A home of its own: the change makes the next queues of its home list again, for SETTLED seconds.
    runs[names["changed"]] = after_a_change(history("q-changed", s.local_large, s.local_running, s.local_recent))
    for run in runs.values():  # a first run of each warms the disk cache (and writes the bytecode)
        run()
    samples = interleaved(runs, s.repeat_fast)
    ratio = Target(1.3, "times")
    targets = {names["0 jobs"]: ratio, names["large"]: ratio, names["small"]: Target(0.35)}
    rows = [Row(help_name, samples[help_name])]
    for key, name in names.items():
        base = help_name if key not in ("all", "changed") else None
        rows.append(Row(name, samples[name], baseline=base, target=targets.get(name)))
    return rows


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
    local_env = ctx.cli_env(KBATCH_DASK_HOME=str(home))
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

    help_name = "kbatch --help (in submit's rounds)"
    runs = {
        help_name: lambda: timed(HELP, ctx.cli_env()),
        "submit, local (returns the job id)": local,
        "submit, kubernetes (fake API server)": kubernetes,
    }
    for run in runs.values():
        run()
    samples = interleaved(runs, ctx.sizes.repeat_fast)
    server.clear_requests()
    kubernetes()
    requests = len(server.requests())
    names = list(runs)
    return [
        Row(names[0], samples[names[0]]),
        Row(names[1], samples[names[1]], baseline=help_name, target=Target(1.6, "times")),
        Row(names[2], samples[names[2]], note=f"{requests} API requests"),
    ]


def logs(ctx: Context) -> list[Row]:
    """``kbatch logs`` of an ended job's output, read to its end through a pipe:
    the rate, and the peak RSS at two sizes (constant memory: the same at both)."""
    big, small = ctx.sizes.log_mb, max(1, ctx.sizes.log_mb // 10)
    home = ctx.scratch / "logs-home"
    files = {mb: _output_file(ctx.scratch / f"out-{mb}mb.txt", mb) for mb in (small, big)}
    jobs = {mb: _ended_job(home, f"log{mb:04d}", path) for mb, path in files.items()}
    env = ctx.cli_env(KBATCH_DASK_HOME=str(home))
    peak_file = ctx.scratch / "logs-peak"
    peaks: dict[int, list[float]] = {small: [], big: []}
    rates: list[float] = []
    cat_rates: list[float] = []

    def kbatch_logs(mb: int) -> Callable[[], float]:
        def run() -> float:
            seconds, peak = _to_pipe([KBATCH, "logs", jobs[mb]], env, files[mb].stat().st_size, peak_file)
            peaks[mb].append(peak)
            if mb == big:
                rates.append(files[mb].stat().st_size / 1e6 / seconds)
            return seconds

        return run

    def cat() -> float:
        seconds, _ = _to_pipe(["cat", str(files[big])], env, files[big].stat().st_size, peak_file)
        cat_rates.append(files[big].stat().st_size / 1e6 / seconds)
        return seconds

    runs = {"small": kbatch_logs(small), "big": kbatch_logs(big), "cat": cat}
    for run in runs.values():
        run()
    for collected in (peaks[small], peaks[big], rates, cat_rates):
        collected.clear()  # the warm-up runs are not counted
    interleaved(runs, ctx.sizes.repeat_slow)
    small_name = f"kbatch logs peak RSS, {small} MB output"
    return [
        Row(f"cat of the {big} MB output → pipe", cat_rates, unit="MB/s"),
        Row(f"kbatch logs, {big} MB output → pipe", rates, unit="MB/s", target=Target(500, "at-least")),
        Row(small_name, peaks[small], unit="MiB"),
        Row(f"kbatch logs peak RSS, {big} MB output", peaks[big], unit="MiB", baseline=small_name,
            target=Target(1.2, "times")),
    ]  # fmt: skip


def _output_file(path: Path, mb: int) -> Path:
    """``mb`` MB of a job's output: lines of text, some of them not ASCII."""
    line = "epoch 3 step 123456 loss=0.0421 lr=1e-4 ✓ done in 0.25 s\n".encode()
    block = line * (1_000_000 // len(line) + 1)
    with open(path, "wb") as f:
        for _ in range(mb):
            f.write(block[:1_000_000])
    return path


def _ended_job(home: Path, job_id: str, output: Path) -> str:
    from datetime import timedelta

    from kbatch_dask.records import JobState

    record = synthetic.local_record(0, JobState.SUCCEEDED, timedelta(hours=1)).replace(
        id=job_id, output=str(output), dask=None
    )
    (home / "jobs" / job_id).mkdir(parents=True)
    (home / "jobs" / job_id / "record.json").write_text(json.dumps(record.to_dict()))
    return job_id


# Runs a command and writes its wall time, peak RSS (KiB) and exit code to argv[1].
# A child's peak counts the memory of the process it was forked from, so the
# command is started from this small interpreter rather than from the benchmark's.
PEAK = """
import os, sys, time
start = time.perf_counter()
pid = os.spawnv(os.P_NOWAIT, sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(f"{time.perf_counter() - start} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}")
"""


def _to_pipe(cmd: list[str], env: dict[str, str], size: int, peak_file: Path) -> tuple[float, float]:
    """Run ``cmd`` with its stdout a pipe read here to the end: its seconds (from its
    start to its end), and its peak RSS (MiB)."""
    import shutil

    program = shutil.which(cmd[0]) or cmd[0]
    proc = subprocess.Popen(
        [sys.executable, "-c", PEAK, str(peak_file), program, *cmd[1:]],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    fd, got = proc.stdout.fileno(), 0
    while chunk := os.read(fd, 1 << 20):
        got += len(chunk)
    proc.wait()
    proc.stdout.close()
    seconds, peak_kib, code = (float(n) for n in peak_file.read_text().split())
    if code != 0 or got != size:
        raise RuntimeError(f"{' '.join(cmd)} exited {code} after {got} of {size} bytes")
    return seconds, peak_kib / 1024


def _run(cmd: list[str], env: dict[str, str]) -> str:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout
