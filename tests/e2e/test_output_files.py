"""A job's output and error files end to end on the local backend: where they
may go (refused at submit when that can be known), how ``kbatch logs`` reads
them (``--stderr``, ``--all``, ``--tail``, big files in bounded memory), and
what ``kbatch show`` and ``kqueue -o wide`` say about the job's spec."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BIN, ROOT, ended, job_dirs, kbatch, kqueue_json, show_json, submit, write_script

pytestmark = pytest.mark.gateway

FAILING = """\
import sys
print("computing", flush=True)
print("halfway", file=sys.stderr, flush=True)
raise ValueError("bad row 7")
"""


def assert_refused(proc: subprocess.CompletedProcess[str], home: Path, *words: str) -> None:
    """Exit 2, one line saying why, and no job recorded."""
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert job_dirs(home) == []


# -- where output may go (refused at submit) ------------------------------------


def test_output_naming_a_directory_is_refused_at_submit(home: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "s.py", "print('hi')\n")
    (tmp_path / "results").mkdir()
    proc = kbatch("-o", str(tmp_path / "results"), str(script), "--dask-workers", "0")
    assert_refused(proc, home, "--output", "is a directory")


def test_error_file_naming_a_directory_is_refused_at_submit(home: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "s.py", "print('hi')\n")
    proc = kbatch("-e", str(tmp_path), str(script), "--dask-workers", "0")
    assert_refused(proc, home, "--error", "is a directory")


def test_output_ending_in_a_slash_is_refused_at_submit(home: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "s.py", "print('hi')\n")
    proc = kbatch("-o", "logs/", str(script), "--dask-workers", "0")
    assert_refused(proc, home, "--output", "names a directory")


def test_output_whose_folder_cannot_be_made_is_refused_at_submit(home: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "s.py", "print('hi')\n")
    (tmp_path / "notes.txt").write_text("a file, not a folder\n")
    proc = kbatch("-o", str(tmp_path / "notes.txt" / "out" / "%j.out"), str(script), "--dask-workers", "0")
    assert_refused(proc, home, "--output", "not a directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_output_in_a_folder_without_write_permission_is_refused_at_submit(home: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "s.py", "print('hi')\n")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    proc = kbatch("-o", str(locked / "out.txt"), str(script), "--dask-workers", "0")
    assert_refused(proc, home, "--output", "permission")


def test_output_in_a_folder_that_does_not_exist_yet_is_made(home: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "s.py", "print('made')\n")
    out = tmp_path / "new" / "deeper" / "out.txt"
    proc = kbatch("-o", str(out), "--wait", str(script), "--dask-workers", "0")
    assert proc.returncode == 0, proc.stderr
    assert out.read_text().startswith("made")


# -- logs ----------------------------------------------------------------------


def test_logs_stderr_and_all_show_the_error_file(home: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "fail.py", FAILING)
    out, err = tmp_path / "f.out", tmp_path / "f.err"
    job_id = submit("-o", str(out), "-e", str(err), str(script), "--dask-workers", "0")
    assert ended(job_id)["state"] == "FAILED"

    assert kbatch("logs", job_id, check=True).stdout == out.read_text()
    stderr = kbatch("logs", "--stderr", job_id, check=True).stdout
    assert stderr == err.read_text()
    assert "Traceback" in stderr and "ValueError: bad row 7" in stderr and "computing" not in stderr

    both = kbatch("logs", "--all", job_id, check=True).stdout
    assert both == f"==> {out} <==\n{out.read_text()}\n==> {err} <==\n{err.read_text()}"


def test_logs_stderr_of_a_job_without_an_error_file_says_where_stderr_went(home: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "fail.py", FAILING)
    job_id = submit("-o", str(tmp_path / "f.out"), str(script), "--dask-workers", "0")
    ended(job_id)
    proc = kbatch("logs", "--stderr", job_id)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"Error: job {job_id} has no error file (-e): its stderr is in its output"]
    assert "ValueError: bad row 7" in kbatch("logs", "--all", job_id, check=True).stdout  # one file: no labels


def test_logs_tail_prints_the_last_lines(home: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "count.py", "for i in range(1000):\n    print('line', i)\n")
    job_id = submit("-o", str(tmp_path / "c.out"), str(script), "--dask-workers", "0")
    ended(job_id)
    assert kbatch("logs", "--tail", "3", job_id, check=True).stdout == "line 997\nline 998\nline 999\n"
    assert kbatch("logs", "--tail", "0", job_id, check=True).stdout == ""
    assert kbatch("logs", "--tail", "5000", job_id, check=True).stdout.count("\n") == 1000


def test_logs_tail_refuses_a_negative_count(home: Path, tmp_path: Path) -> None:
    proc = kbatch("logs", "--tail", "-1", "abcde")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "--tail" in proc.stderr and "-1 is not in the range" in proc.stderr


def test_logs_follow_all_labels_each_file_as_its_output_comes(home: Path, tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "talk.py",
        "import sys, time\nfor i in range(3):\n    print('out', i, flush=True)\n    time.sleep(0.3)\n"
        "    print('err', i, file=sys.stderr, flush=True)\n    time.sleep(0.3)\n",
    )
    out, err = tmp_path / "t.out", tmp_path / "t.err"
    job_id = submit("-o", str(out), "-e", str(err), str(script), "--dask-workers", "0")
    followed = kbatch("logs", "-f", "--all", job_id, timeout=60)
    assert followed.returncode == 0, followed.stderr
    lines = followed.stdout.splitlines()
    printed = [line for line in lines if line and not line.startswith("==> ")]
    assert sorted(printed) == sorted(f"{kind} {i}" for i in range(3) for kind in ("out", "err"))
    # Every line comes after the label of its own file.
    current = None
    for line in lines:
        if line.startswith("==> "):
            current = line
        elif line:
            assert current == f"==> {out if line.startswith('out') else err} <==", (line, current)


MEASURE = """\
import os, subprocess, sys
with open(sys.argv[1], "wb") as sink:
    child = subprocess.Popen(sys.argv[2:], stdout=sink)
    _, status, usage = os.wait4(child.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def test_logs_of_a_big_output_read_it_in_bounded_memory(home: Path, tmp_path: Path) -> None:
    size = 200 * 2**20
    script = write_script(
        tmp_path / "big.py",
        f"import sys\nline = 'x' * 1023 + '\\n'\nfor _ in range({size // 1024}):\n    sys.stdout.write(line)\n",
    )
    out = tmp_path / "big.out"
    job_id = submit("-o", str(out), str(script), "--dask-workers", "0")
    assert ended(job_id, timeout=180)["state"] == "SUCCEEDED"
    assert out.stat().st_size >= size

    for args, expected in ((("logs", job_id), out.stat().st_size), (("logs", "--tail", "2", job_id), 2048)):
        copy = tmp_path / "copy.txt"
        # wait4's ru_maxrss is the child's peak resident size in KiB, counted from its fork: so
        # `kbatch` is started by a small Python, not by this (large) test process.
        proc = subprocess.run(
            [sys.executable, "-c", MEASURE, str(copy), str(BIN / "kbatch"), *args], capture_output=True, text=True
        )
        code, peak_kib = (int(v) for v in proc.stdout.split())
        assert code == 0, proc.stderr
        assert copy.stat().st_size == expected
        peak = peak_kib * 1024
        assert peak < 100 * 2**20, f"kbatch {' '.join(args)} peaked at {peak / 2**20:.0f} MiB"
        copy.unlink()


# -- show and the wide queue ---------------------------------------------------


def test_show_says_the_jobs_spec(home: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "s.py", "print('hi')\n")
    work = tmp_path / "work"
    work.mkdir()
    job_id = submit(
        "-t", "1:30:00", "-D", str(work), "-o", "out-%j.txt", "-e", "err-%j.txt",
        str(script), "--dask-workers", "1", "--worker-cores", "1", "--worker-memory", "1G",
    )  # fmt: skip
    record = ended(job_id)
    assert record["state"] == "SUCCEEDED", record
    assert record["time_limit"] == 5400
    assert record["workdir"] == str(work)
    assert record["output"] == str(work / f"out-{job_id}.txt")
    assert record["error"] == str(work / f"err-{job_id}.txt")
    assert record["notebook_output"] is None
    assert record["attempt"] == 1
    assert record["dask"]["worker_cores"] == 1
    assert record["dask"]["worker_memory"] == 10**9

    text = kbatch("show", job_id, check=True).stdout
    fields = dict(line.split(None, 1) for line in text.splitlines())
    assert fields["time_limit"] == "1:30:00"
    assert fields["workdir"] == str(work)
    assert fields["error"] == str(work / f"err-{job_id}.txt")
    assert fields["attempt"] == "1"
    assert fields["dask.worker_cores"] == "1"
    assert fields["dask.worker_memory"] == "1G"


def test_show_says_where_the_executed_notebook_goes(home: Path, tmp_path: Path) -> None:
    pytest.importorskip("papermill")
    job_id = submit(
        "-o", str(tmp_path / "nb" / "%j.out"), str(ROOT / "examples" / "analysis.ipynb"), "--dask-workers", "0"
    )
    record = show_json(job_id)
    assert record["notebook_output"] == str(tmp_path / "nb" / f"analysis-{job_id}.ipynb")
    kbatch("cancel", job_id, check=True)


def test_show_of_a_job_without_a_time_limit_says_unlimited(home: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "s.py", "print('hi')\n")
    job_id = submit("-o", str(tmp_path / "s.out"), str(script), "--dask-workers", "0")
    ended(job_id)
    assert show_json(job_id)["time_limit"] is None
    fields = dict(line.split(None, 1) for line in kbatch("show", job_id, check=True).stdout.splitlines())
    assert fields["time_limit"] == "UNLIMITED"


def test_wide_queue_has_a_time_limit_column(home: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "s.py", "print('hi')\n")
    limited = submit("-t", "45", "-o", str(tmp_path / "a.out"), str(script), "--dask-workers", "0")
    unlimited = submit("-o", str(tmp_path / "b.out"), str(script), "--dask-workers", "0")
    for job_id in (limited, unlimited):
        ended(job_id)
    proc = subprocess.run([str(BIN / "kqueue"), "-o", "wide"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    header, *rows = proc.stdout.splitlines()
    columns = header.split()
    assert columns[columns.index("TIME") + 1] == "TIME_LIMIT"
    start = header.index("TIME_LIMIT")
    cells = {row.split()[0]: row[start:].split()[0] for row in rows}
    assert cells == {limited: "45:00", unlimited: "UNLIMITED"}
    assert {r["id"]: r["time_limit"] for r in kqueue_json()} == {limited: 2700, unlimited: None}
    assert json.loads(kbatch("show", limited, "-o", "json", check=True).stdout)["time_limit"] == 2700
