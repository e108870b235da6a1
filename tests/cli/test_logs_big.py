"""``kbatch logs`` of a big output file: printed whole, byte for byte, in memory
that does not grow with the file (the child's peak RSS, read from ``wait4``);
bytes that are not UTF-8 printed as they are (never decoded on the way); colour
codes still dropped when stdout is not a terminal, as click does, even one cut
between two reads."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import BIN, isolated_session

from kbatch_dask.backends.outputs import CHUNK
from kbatch_dask.records import JobRecord, JobState, now

SIZE = 200_000_000


@pytest.fixture
def session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = isolated_session(tmp_path, monkeypatch, "kbatch-home")
    monkeypatch.setenv("DASK_KBATCH__BACKEND", "local")
    return home


def ended_job(home: Path, output: Path) -> str:
    """An ended local job whose output is ``output`` (its record, as the driver leaves it)."""
    at = now().replace(microsecond=0)
    record = JobRecord(
        "big01", "big", "me", "local", JobState.SUCCEEDED, at - timedelta(minutes=5), "big.py",
        started=at - timedelta(minutes=4), finished=at, exit_code=0, output=str(output),
    )  # fmt: skip
    (home / "jobs" / record.id).mkdir(parents=True)
    (home / "jobs" / record.id / "record.json").write_text(json.dumps(record.to_dict()))
    return record.id


# The command is started from this small interpreter, not from pytest: a child's
# peak RSS counts the memory of the process it was forked from.
PEAK = """
import os, sys
pid = os.spawnv(os.P_NOWAIT, sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
sys.stderr.write(f"{usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}")
"""


def run_logs(job_id: str, out: Path, *args: str) -> int:
    """``kbatch logs [ARGS] JOB > out``; its peak RSS in bytes."""
    with open(out, "wb") as f:
        proc = subprocess.run(
            [sys.executable, "-c", PEAK, str(BIN / "kbatch"), "logs", *args, job_id], stdout=f, stderr=subprocess.PIPE
        )
    peak, code = (int(n) for n in proc.stderr.split()[-2:])
    assert proc.returncode == 0 and code == 0, proc.stderr
    return peak * 1024


def test_logs_of_a_200_mb_output_prints_every_byte_in_bounded_memory(session: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.out"
    # Multi-byte characters fall across the reader's chunk boundaries.
    line = ("step 123456 loss=0.0421 ✓ épsilon " * 3 + "\n").encode()
    with open(big, "wb") as f:
        for _ in range(SIZE // (len(line) * 10_000) + 1):
            f.write(line * 10_000)
    out = tmp_path / "printed"
    peak = run_logs(ended_job(session, big), out)
    assert out.stat().st_size == big.stat().st_size
    with open(big, "rb") as a, open(out, "rb") as b:
        while block := a.read(1 << 24):
            assert b.read(1 << 24) == block
    assert peak < 100 * 2**20, f"peak RSS {peak / 2**20:.0f} MiB for a {big.stat().st_size / 1e6:.0f} MB file"


def test_logs_to_a_file_drop_colour_codes_as_before(session: Path, tmp_path: Path) -> None:
    coloured = tmp_path / "coloured.out"
    coloured.write_text("plain line\n\x1b[31mred\x1b[0m and plain\nlast ✓\n")
    out = tmp_path / "printed"
    run_logs(ended_job(session, coloured), out)
    assert out.read_text() == "plain line\nred and plain\nlast ✓\n"


def test_logs_print_output_that_is_not_utf8_byte_for_byte(session: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw.out"
    # Latin-1, a stray byte, valid UTF-8, and a character cut by the end of the file.
    raw.write_bytes(b"caf\xe9 au lait\n\xff\xfe binary\n" + "ok ✓\n".encode() + b"last \xe2\x9c")
    job_id = ended_job(session, raw)
    out = tmp_path / "printed"
    run_logs(job_id, out)
    assert out.read_bytes() == raw.read_bytes()
    run_logs(job_id, out, "--tail", "2")
    assert out.read_bytes() == "ok ✓\n".encode() + b"last \xe2\x9c"


def test_logs_to_a_file_drop_a_colour_code_cut_between_two_reads(session: Path, tmp_path: Path) -> None:
    coloured = tmp_path / "cut.out"
    coloured.write_bytes(b"a" * (CHUNK - 3) + b"\x1b[31mred\x1b[0m\n")  # the first read ends in the code
    out = tmp_path / "printed"
    run_logs(ended_job(session, coloured), out)
    assert out.read_bytes() == b"a" * (CHUNK - 3) + b"red\n"


def test_logs_to_a_pipe_widen_its_buffer_to_a_chunk(session: Path, tmp_path: Path) -> None:
    """A pipe's 64 KiB buffer would make the printing of a big output wait on the reader
    sixteen times per chunk: kbatch logs asks for a chunk's size (1 MiB, Linux's default
    most for a user); the pipe is the reader's too, so it shows here."""
    import fcntl

    small = tmp_path / "small.out"
    small.write_bytes(b"one line\n")
    proc = subprocess.Popen([str(BIN / "kbatch"), "logs", ended_job(session, small)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    before = fcntl.fcntl(proc.stdout.fileno(), fcntl.F_GETPIPE_SZ)
    assert proc.stdout.read() == b"one line\n"
    assert proc.wait() == 0
    after = fcntl.fcntl(proc.stdout.fileno(), fcntl.F_GETPIPE_SZ)
    proc.stdout.close()
    assert before < CHUNK and after == CHUNK
