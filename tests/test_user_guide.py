"""The user guide runs as written (local backend, embedded gateway): its script, and
each of its command lines, exiting and printing as the guide shows."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import BIN, ROOT, kbatch, show_json, wait_for

from kbatch_dask import get_job
from kbatch_dask.doctor.report import SYMBOLS
from kbatch_dask.records import JobState

GUIDE = ROOT / "docs" / "user-guide.md"
EXAMPLE_ID = "k3x9q"  # the job id of the guide's examples
EXAMPLE_HOME = "/home/jovyan"  # the home directory of the guide's examples
SHELL_BLOCK = ("bash", "sh", "shell", "console")


def guide_script() -> str:
    [script] = [
        b for b in re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.S) if b.startswith("#!/usr/bin/env python")
    ]
    return script


@pytest.mark.gateway
def test_the_guide_script_finishes_with_its_output(home: Path, tmp_path: Path) -> None:
    script = tmp_path / "climatology.py"
    script.write_text(guide_script())
    proc = kbatch("-o", str(tmp_path / "kbatch-%j.out"), "--wait", str(script), timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert "Submitted job" in proc.stdout and "(climatology)" in proc.stdout
    job_id = proc.stdout.split()[2]
    output = (tmp_path / f"kbatch-{job_id}.out").read_text()
    [means] = re.findall(r"monthly global means: \[([^]]*)\]", output)
    values = [float(v) for v in means.split()]
    assert len(values) == 12 and all(14.9 < v < 15.1 for v in values), output
    queue = kbatch("queue", "--all", check=True).stdout
    assert re.search(rf"{job_id}\s+climatology\s+SUCCEEDED\s+\S+\s+0/2-4", queue), queue


# --- Every command line of the guide -------------------------------------------------


def guide_commands() -> dict[str, str | None]:
    """The guide's command lines, each with the output the guide shows for it (or None):
    every line of its shell blocks, and every `kbatch …` or `kqueue …` in its prose. A
    command shown twice with different outputs is keyed "command #1", "command #2"."""
    text = GUIDE.read_text()
    found: list[tuple[str, str | None]] = []
    blocks = list(re.finditer(r"```(\w*)\n(.*?)```", text, re.S))
    for block, following in zip(blocks, [*blocks[1:], None], strict=True):
        if block.group(1) not in SHELL_BLOCK:
            continue
        # An output block is a plain block right after the commands.
        shows = following is not None and not following.group(1) and not text[block.end() : following.start()].strip()
        for line in block.group(2).splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command:
                found.append((command, following.group(2) if shows and following is not None else None))
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    for span in re.findall(r"`([^`]+)`", prose):
        command = " ".join(span.split())
        if re.match(r"(kbatch|kqueue)(\s|$)", command):
            found.append((command, None))
    distinct = list(dict.fromkeys(found))
    commands: dict[str, str | None] = {}
    for command, shown in distinct:
        same = [s for c, s in distinct if c == command]
        commands[command if len(same) == 1 else f"{command} #{same.index(shown) + 1}"] = shown
    return commands


# Command lines of the guide that this test does not run, and why.
NOT_RUN = {
    "pip install --user ./kbatch-dask": "installs kbatch-dask for the user; the tests run this checkout's",
    "kbatch": "names the program in the prose (`kbatch` returns at once), not a command line",
    "kbatch show": "names the subcommand in the prose; `kbatch show k3x9q` is run",
    # The prose about chains, with ID for the id the first prints: the same chain,
    # hold and release are run by tests/e2e/test_local_dependencies.py.
    "kbatch --parsable prepare.py": "the first of the prose's chain (tests/e2e/test_local_dependencies.py)",
    "kbatch -d afterok:ID train.py": "ID stands for prepare.py's id (tests/e2e/test_local_dependencies.py)",
    "kbatch hold ID": "ID stands for a waiting job (tests/e2e/test_local_dependencies.py)",
    "kbatch release ID": "ID stands for a held job (tests/e2e/test_local_dependencies.py)",
    "kbatch ui": "serves until Ctrl-C and opens a browser; tests/e2e/test_local_ui.py runs it in headless Chromium",
}


@dataclass(frozen=True)
class Step:
    """How one of the guide's command lines is run and what it must do.

    ``job`` is the job the guide's example id stands for: one a step submitted
    (``submits``), or a failed one ("failed", "failed with -e", made when first needed);
    ``when`` is what the walk-through's job must have done first: "running" (with its
    dashboard), "released" (let go on), "ended". The command exits 0 (the guide shows
    none failing); the output the guide shows is compared by its shape unless
    ``shown_differs`` says why it cannot be; ``check`` asserts what the guide's prose
    says of the command."""

    command: str
    job: str | None = None
    when: str | None = None
    submits: str | None = None
    shown_differs: str | None = None
    check: Callable[[subprocess.CompletedProcess[str], Walk], None] | None = None


def doctor_lists_checks(proc: subprocess.CompletedProcess[str], walk: Walk) -> None:
    marks = "|".join(re.escape(s) for s in SYMBOLS.values())
    for line in proc.stdout.splitlines():
        assert re.fullmatch(rf"({marks}) [\w .-]+: .+|\s+fix: .+", line), proc.stdout
    assert proc.stdout.startswith("✓ backend: local"), proc.stdout


def command_line_wins_over_directives(proc: subprocess.CompletedProcess[str], walk: Walk) -> None:
    record = show_json(walk.ids["bigger"])
    assert (record["name"], record["dask"]["workers"], record["dask"]["worker_memory"]) == (
        "climatology",  # from the script's # KBATCH line
        "8",
        8 * 10**9,
    ), record


def cancelled(proc: subprocess.CompletedProcess[str], walk: Walk) -> None:
    assert show_json(walk.ids["bigger"])["state"] == "CANCELLED"


def same_columns_as_kqueue(proc: subprocess.CompletedProcess[str], walk: Walk) -> None:
    kqueue = subprocess.run([str(BIN / "kqueue")], capture_output=True, text=True, timeout=60, check=True)
    assert proc.stdout.splitlines()[0] == kqueue.stdout.splitlines()[0], proc.stdout


def last_20_lines(proc: subprocess.CompletedProcess[str], walk: Walk) -> None:
    output = (walk.home / f"kbatch-{walk.ids['climatology']}.out").read_text()
    assert len(output.splitlines()) > 20 and proc.stdout.splitlines() == output.splitlines()[-20:], proc.stdout


def followed_to_the_end(proc: subprocess.CompletedProcess[str], walk: Walk) -> None:
    assert "monthly global means:" in proc.stdout, proc.stdout
    assert show_json(walk.ids["climatology"])["state"] == "SUCCEEDED"


def everything_known(proc: subprocess.CompletedProcess[str], walk: Walk) -> None:
    # What the guide says `kbatch show` has: when it ran, on which cluster, its exit code,
    # its output and error files, working directory, time limit, attempt, workers' size.
    shown = dict(re.findall(r"^(\S+) +(.*)$", proc.stdout, re.M))
    assert shown["time_limit"] == "30:00" and shown["exit_code"] == "0" and shown["attempt"] == "1", proc.stdout
    for field in ("started", "finished", "dask.cluster", "output", "workdir"):
        assert shown[field] != "-", proc.stdout
    assert {"error", "dask.worker_cores", "dask.worker_memory"} <= shown.keys(), proc.stdout


def wide_has_time_limit_and_reason(proc: subprocess.CompletedProcess[str], walk: Walk) -> None:
    header, *rows = proc.stdout.splitlines()
    assert "TIME_LIMIT" in header.split() and "REASON/EXIT" in header.split(), header
    [row] = [r for r in rows if r.startswith(walk.ids["climatology"])]
    assert " 30:00 " in row, row


def lists_the_job(proc: subprocess.CompletedProcess[str], walk: Walk) -> None:
    assert re.search(rf"^{walk.ids['climatology']}\s+climatology\s+SUCCEEDED", proc.stdout, re.M), proc.stdout


def reports_the_cluster(proc: subprocess.CompletedProcess[str], walk: Walk) -> None:
    # The guide: wall time, the cluster's start wait, CPU and memory efficiency, the task prefixes.
    for label in ("Wall time", "Cluster start wait", "CPU efficiency", "Memory efficiency", "Top task prefixes"):
        assert re.search(rf"^{label} +\S", proc.stdout, re.M), proc.stdout
    assert proc.stdout.startswith(f"Job {walk.ids['climatology']}"), proc.stdout


def reports_as_json(proc: subprocess.CompletedProcess[str], walk: Walk) -> None:
    report = json.loads(proc.stdout)
    assert report["job"] == walk.ids["climatology"] and report["workers"]["peak"] >= 1, report
    assert 0 < report["cpu_efficiency"] <= 1.0 and report["tasks"], report


def shows_the_traceback(proc: subprocess.CompletedProcess[str], walk: Walk) -> None:
    assert "Traceback (most recent call last):" in proc.stdout and "ValueError: no data" in proc.stdout, proc.stdout


def resubmitted(proc: subprocess.CompletedProcess[str], walk: Walk) -> None:
    # The guide: a new job with a new id from the old one's options and script, printed as a submit;
    # the old job left as it was.
    old, new = walk.ids["failed"], proc.stdout.split()[2]
    assert new != old and re.fullmatch(rf"Submitted job {new} \(fails\); output: \S+\n", proc.stdout), proc.stdout
    assert get_job(new).wait(timeout=120) is JobState.FAILED and show_json(old)["state"] == "FAILED"
    assert "ValueError: no data" in kbatch("logs", new, check=True, cwd=walk.home).stdout


# In the order they run: the walk-through's job is held running until "released".
STEPS = [
    Step("kbatch doctor", shown_differs="the guide shows the Kubernetes backend's checks", check=doctor_lists_checks),
    Step("kbatch climatology.py", submits="climatology"),
    Step(
        "kbatch climatology.py --dask-workers 8 --worker-memory 8G",
        submits="bigger",
        check=command_line_wins_over_directives,
    ),
    Step("kbatch cancel k3x9q", job="bigger", check=cancelled),
    Step("kqueue #1", job="climatology", when="running"),
    Step("kbatch queue", job="climatology", when="running", check=same_columns_as_kqueue),
    Step("kbatch logs -f k3x9q", job="climatology", when="released", check=followed_to_the_end),
    Step("kbatch logs -n 20 k3x9q", job="climatology", when="ended", check=last_20_lines),
    Step("kqueue #2", job="climatology", when="ended"),
    Step("cat ~/kbatch-k3x9q.out", job="climatology", when="ended"),
    Step("kbatch show k3x9q", job="climatology", when="ended", check=everything_known),
    Step("kqueue -o wide", job="climatology", when="ended", check=wide_has_time_limit_and_reason),
    Step("kqueue --all", job="climatology", when="ended", check=lists_the_job),
    Step("kbatch wait k3x9q", job="climatology", when="ended"),
    Step("kbatch report k3x9q", job="climatology", when="ended", check=reports_the_cluster),
    Step("kbatch report k3x9q -o json", job="climatology", when="ended", check=reports_as_json),
    Step("kbatch gc"),
    Step("kbatch logs k3x9q", job="failed", check=shows_the_traceback),
    Step("kbatch logs --stderr k3x9q", job="failed with -e", check=shows_the_traceback),
    Step("kbatch resubmit k3x9q", job="failed", check=resubmitted),
]

# The walk-through's script: the guide's `# KBATCH` lines, then a tiny workload that
# waits to be released, so that the guide's commands for a running job see one.
HELD_SCRIPT = """
import os
import time

import dask.array as da
import numpy as np

while not os.path.exists("release"):
    time.sleep(0.1)
for year in range(24):
    print(f"year {year + 1}: read")
field = da.random.default_rng(42).normal(15.0, 0.01, size=(24, 2, 2), chunks=(12, 2, 2))
month = np.arange(24) % 12
print("monthly global means:", np.round(da.stack([field[month == m].mean() for m in range(12)]).compute(), 2))
"""


class Walk:
    """The guide's walk-through on this machine: its jobs, by what they stand for."""

    def __init__(self, home: Path) -> None:
        self.home = home  # the user's home and working directory, as /home/jovyan in the guide
        self.ids: dict[str, str] = {}
        directives = [line for line in guide_script().splitlines() if line.startswith("# KBATCH")]
        (home / "climatology.py").write_text("\n".join(["#!/usr/bin/env python", *directives, HELD_SCRIPT]))
        (home / "fails.py").write_text('print("reading")\nraise ValueError("no data")\n')

    def run(self, step: Step) -> subprocess.CompletedProcess[str]:
        job_id = self.job(step)
        command = step.command.split(" #")[0]
        argv = [a.replace(EXAMPLE_ID, job_id or EXAMPLE_ID) for a in shlex.split(command)]
        argv = [str(self.home / a[2:]) if a.startswith("~/") else a for a in argv]
        program = BIN / argv[0]
        argv[0] = str(program) if program.exists() else argv[0]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=self.home)
        if step.submits:
            self.ids[step.submits] = proc.stdout.split()[2]
        return proc

    def job(self, step: Step) -> str | None:
        if step.job in ("failed", "failed with -e") and step.job not in self.ids:
            error = ["-e", str(self.home / "fails.err")] if step.job == "failed with -e" else []
            proc = kbatch("--dask-workers", "0", *error, "--wait", "fails.py", cwd=self.home)
            assert proc.returncode == 1, proc.stderr
            self.ids[step.job] = proc.stdout.split()[2]
        if step.when == "running":
            job = get_job(self.ids["climatology"])
            wait_for(lambda: job.dashboard_link, what="the job's dashboard")
        elif step.when in ("released", "ended"):
            self.release()
        if step.when == "ended":
            get_job(self.ids["climatology"]).wait(timeout=120)
        return self.ids.get(step.job) if step.job else None

    def release(self) -> None:
        (self.home / "release").touch()

    def close(self) -> None:
        """Leave no job running, however far the walk got."""
        self.release()
        for job_id in self.ids.values():
            job = get_job(job_id)
            if not job.state.is_terminal():
                job.cancel()
                job.wait(timeout=60)


def shape(shown: str, job_id: str, home: Path, ended: bool) -> str:
    """A pattern for a line of the guide's output: its words as written, the example's job
    id and home as this run's, any number, link or spacing; any state of a job still running."""
    states = "|".join(s.value for s in JobState)
    parts = []
    for token in re.finditer(rf"{EXAMPLE_ID}|{EXAMPLE_HOME}|https?://\S+|\d+(?:\.\d*)?|\s+|\b(?:{states})\b|.", shown):
        text = token.group()
        if text == EXAMPLE_ID:
            parts.append(re.escape(job_id))
        elif text == EXAMPLE_HOME:
            parts.append(re.escape(str(home)))
        elif re.fullmatch(r"https?://\S+", text):
            parts.append(r"https?://\S+")
        elif re.fullmatch(r"\d+(?:\.\d*)?", text):
            parts.append(r"\d+(?:\.\d*)?")
        elif text.isspace():
            parts.append(r"\s*")
        elif re.fullmatch(states, text) and not ended:
            parts.append(f"(?:{states})")
        else:
            parts.append(re.escape(text))
    return "".join(parts)


def test_every_command_of_the_guide_is_run_or_says_why_not() -> None:
    handled = [s.command for s in STEPS] + list(NOT_RUN)
    assert len(handled) == len(set(handled))
    assert sorted(guide_commands()) == sorted(handled)


@pytest.fixture
def walk(home: Path, tmp_path: Path) -> Iterator[Walk]:
    walk = Walk(tmp_path)
    yield walk
    walk.close()


@pytest.mark.gateway
def test_the_guides_commands_exit_and_print_as_it_shows(walk: Walk) -> None:
    shown = guide_commands()
    assert [s.command for s in STEPS if s.command not in shown] == [], "steps for commands the guide no longer has"
    for step in STEPS:
        proc = walk.run(step)
        assert proc.returncode == 0, f"{step.command}: exit {proc.returncode}\n{proc.stdout}{proc.stderr}"
        if shown[step.command] is not None and step.shown_differs is None:
            job_id = walk.ids[step.submits or step.job or ""]
            ended = step.when == "ended"
            lines = proc.stdout.splitlines()
            for line in (shown[step.command] or "").splitlines():
                pattern = shape(line.rstrip(), job_id, walk.home, ended)
                assert any(re.fullmatch(pattern, real.rstrip()) for real in lines), (
                    f"{step.command}: {line}\n{proc.stdout}"
                )
        if step.check is not None:
            step.check(proc, walk)
