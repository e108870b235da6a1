"""What a user meets at the command line: where arguments go, --wait on a terminal,
Ctrl-C, kqueue --watch, gc's words, help and shell completion (real processes)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import BIN, cluster_status, gateway_client, kbatch, show_json, write_script

pytestmark = pytest.mark.gateway

ARGV = "import sys\nprint(sys.argv[1:])\n"


def test_after_the_script_only_the_dask_options_are_kbatchs(home: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "process.py", ARGV)
    proc = kbatch("--wait", "--parsable", str(script), "-o", "results.csv", "--name", "run1", "--dask-workers", "0")
    assert proc.returncode == 0, proc.stderr
    job = show_json(proc.stdout.strip())
    assert (job["name"], job["dask"], job["args"]) == ("process", None, ["-o", "results.csv", "--name", "run1"])
    assert "['-o', 'results.csv', '--name', 'run1']" in Path(job["output"]).read_text()
    assert not (tmp_path / "results.csv").exists()


class Terminal:
    """A real `kbatch` process on a pseudo-terminal of a given size, its output read as it comes."""

    def __init__(self, *args: str, columns: int = 100, rows: int = 24) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self.master = master
        # The size is the terminal's, as in a shell that does not export COLUMNS (pytest sets it).
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        self.proc = subprocess.Popen([str(BIN / args[0]), *args[1:]], stdin=slave, stdout=slave, stderr=slave, env=env)
        os.close(slave)
        self.output = ""

    def read_until(self, predicate: Callable[[str], object], timeout: float = 90) -> str:
        """Read until ``predicate(output so far)`` holds, or the process has closed the terminal."""
        deadline = time.monotonic() + timeout
        while not predicate(self.output):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; the terminal shows {self.output!r}")
            if select.select([self.master], [], [], 1)[0]:
                try:
                    data = os.read(self.master, 65536)
                except OSError:  # EIO: every writer has closed the terminal
                    data = b""
                if not data:
                    break
                self.output += data.decode(errors="replace")
        return self.output

    def finish(self) -> int:
        self.read_until(lambda _: False)
        os.close(self.master)
        return self.proc.wait(timeout=30)


WORKING = """\
import time
from dask.distributed import get_client
get_client().wait_for_workers(1, timeout=60)
print("ready", flush=True)
time.sleep(4)
"""


def test_wait_on_a_terminal_shows_one_updating_line_and_the_end(home: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "work.py", WORKING)
    term = Terminal("kbatch", "-o", str(tmp_path / "w.out"), "--wait", str(script), "--dask-workers", "1")
    assert term.finish() == 0, term.output
    job_id = term.output.split()[2]
    drawn = [frame.removesuffix("\033[K") for frame in term.output.split("\r") if frame.endswith("\033[K")]
    assert any(re.fullmatch(rf"Job {job_id} RUNNING  workers 1/1  \d+:\d\d", frame) for frame in drawn), drawn
    assert re.search(rf"\r\033\[KJob {job_id} SUCCEEDED in \d+:\d\d\r?\n", term.output), term.output


def test_wait_on_a_pipe_draws_nothing(home: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "quick.py", "print('hi')\n")
    proc = kbatch("-o", str(tmp_path / "q.out"), "--wait", "--parsable", str(script), "--dask-workers", "0")
    assert proc.returncode == 0, proc.stderr
    assert (proc.stdout.count("\n"), proc.stderr) == (1, "")


@pytest.mark.parametrize("command", ["wait", "submit --wait"])
def test_ctrl_c_while_waiting_says_the_job_keeps_running_and_exits_130(
    home: Path, tmp_path: Path, command: str
) -> None:
    script = write_script(tmp_path / "long.py", "import time\nprint('started', flush=True)\ntime.sleep(300)\n")
    out = tmp_path / "long.out"
    if command == "wait":
        job_id = kbatch("--parsable", "-o", str(out), str(script), "--dask-workers", "0", check=True).stdout.strip()
        term = Terminal("kbatch", "wait", job_id)
    else:
        term = Terminal("kbatch", "--wait", "-o", str(out), str(script), "--dask-workers", "0")
        job_id = term.read_until(lambda text: "Submitted job" in text).split()[2]
    try:
        term.read_until(lambda text: f"Job {job_id} RUNNING" in text)
        term.proc.send_signal(signal.SIGINT)
        assert term.finish() == 130, term.output
        assert f"job {job_id} keeps running. Wait again with `kbatch wait {job_id}`" in term.output
        assert "Traceback" not in term.output
        assert show_json(job_id)["state"] == "RUNNING"
    finally:
        kbatch("cancel", job_id, check=True)


def _ended_jobs(tmp_path: Path, count: int) -> list[str]:
    script = write_script(tmp_path / "a-job-with-a-rather-long-name.py", "print('x')\n")
    return [
        kbatch(
            "--wait", "--parsable", "-o", str(tmp_path / "x.out"), str(script), "--dask-workers", "0", check=True
        ).stdout.strip()
        for _ in range(count)
    ]


def test_queue_watch_fits_the_terminal_and_keeps_the_header(home: Path, tmp_path: Path) -> None:
    _ended_jobs(tmp_path, 4)
    term = Terminal("kqueue", "--watch", columns=30, rows=5)
    term.read_until(lambda text: text.count("\033[2J") >= 2 and text.endswith("\n"))
    term.proc.send_signal(signal.SIGINT)
    assert term.finish() == 0, term.output
    frame = term.output.split("\033[2J")[1].removeprefix("\033[1;1H")
    lines = frame.rstrip("\r\n").split("\r\n")
    assert lines[1].startswith("JOBID") and "(Ctrl-C to stop)"[:20] in lines[0], lines
    assert len(lines) <= 4 and lines[-1].startswith("… "), lines
    assert max(len(line) for line in lines) <= 30, lines


def test_queue_watch_json_is_one_document_per_refresh(home: Path, tmp_path: Path) -> None:
    (job_id,) = _ended_jobs(tmp_path, 1)
    proc = subprocess.Popen([str(BIN / "kqueue"), "--watch", "-o", "json"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    refreshes = [proc.stdout.readline(), proc.stdout.readline()]
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    for line in [*refreshes, *rest.splitlines()]:
        assert [job["id"] for job in json.loads(line)] == [job_id], line


def test_gc_says_what_it_left_running_and_declining_is_not_an_error(home: Path) -> None:
    with gateway_client(home, start=True) as client:
        orphan = client.create_cluster({})
        client.wait_running(orphan, timeout=60)
        try:
            proc = kbatch("gc")
            assert proc.returncode == 0, proc.stderr
            assert proc.stdout.splitlines() == [
                "Nothing to stop: no running cluster belongs to an ended or vanished job.",
                f"Left running: 1 cluster(s) that belong to no kbatch job ({orphan}); `kbatch gc --all` stops them.",
            ]
            declined = kbatch("gc", "--all", input="n\n")
            assert declined.returncode == 0, declined.stderr
            assert f"Left running: 1 cluster(s) that belong to no kbatch job ({orphan})" in declined.stdout
            assert cluster_status(home, orphan) == "RUNNING"
        finally:
            client.stop_cluster(orphan)


def test_kqueue_h_is_its_help_as_for_kbatch_queue(home: Path) -> None:
    short = subprocess.run([str(BIN / "kqueue"), "-h"], capture_output=True, text=True)
    assert (short.returncode, short.stderr) == (0, ""), short.stderr
    assert short.stdout == kbatch("queue", "-h", check=True).stdout.replace("kbatch queue", "kqueue")


def test_bare_kbatch_prints_its_help_and_exits_0(home: Path) -> None:
    proc = kbatch()
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
    assert proc.stdout == kbatch("--help", check=True).stdout


def complete(*words: str, **env: str) -> list[tuple[str, str]]:
    """What bash completion offers after ``words`` (the last one being typed), as (type, value)."""
    proc = kbatch(
        env={**os.environ, "_KBATCH_COMPLETE": "bash_complete", "COMP_WORDS": " ".join(["kbatch", *words]),
             "COMP_CWORD": str(len(words)), **env},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return [tuple(line.split(",", 1)) for line in proc.stdout.splitlines() if line]  # type: ignore[misc]


def test_completion_offers_files_for_the_script_and_commands(home: Path) -> None:
    assert ("file", "tr") in complete("tr")
    assert ("plain", "queue") in complete("qu")
    assert complete("submit", "tr") == [("file", "tr")]


@pytest.mark.parametrize("command", ["show", "logs", "cancel", "wait"])
def test_completion_offers_job_ids(home: Path, tmp_path: Path, command: str) -> None:
    (job_id,) = _ended_jobs(tmp_path, 1)
    assert complete(command, "") == [("plain", job_id)]
    assert complete(command, job_id[:2]) == [("plain", job_id)]
    assert complete(command, "#") == []
