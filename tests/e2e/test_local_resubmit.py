"""`kbatch resubmit` on the local backend, with the real `kbatch` and detached
drivers: the new job runs the old job's script snapshot (not the file as it is
now) with its options and environment, under a new id; the old job is left as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ended, kbatch, show_json, submit, write_script

pytestmark = pytest.mark.gateway

SCRIPT = """\
import os, sys
print("version 1", sys.argv[1:], os.environ.get("FLAVOUR"), flush=True)
raise SystemExit(3)
"""


def test_a_resubmitted_job_runs_the_snapshot_with_the_old_options_under_a_new_id(home: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "flaky.py", SCRIPT)
    old = submit("--dask-workers", "0", "-J", "flaky", "--env", "FLAVOUR=mint", "--cpus", "1", str(script), "a", "b")
    first = ended(old)
    assert (first["state"], first["exit_code"]) == ("FAILED", 3)
    script.write_text("print('version 2: the file as it is now')\n")  # what resubmit must not run

    proc = kbatch("resubmit", old)
    assert proc.returncode == 0, proc.stderr
    new = proc.stdout.split()[2]
    assert proc.stdout == f"Submitted job {new} (flaky); output: {show_json(new)['output']}\n"
    assert new != old
    again = ended(new)
    assert (again["state"], again["exit_code"], again["name"], again["args"]) == ("FAILED", 3, "flaky", ["a", "b"])
    assert (again["script"], again["cpus"]) == (first["script"], 1)
    assert Path(again["output"]).read_text().splitlines()[0] == "version 1 ['a', 'b'] mint"
    assert show_json(old) == first  # untouched
    assert Path(first["output"]).read_text().splitlines()[0] == "version 1 ['a', 'b'] mint"

    parsable = kbatch("resubmit", "--parsable", old)
    assert parsable.returncode == 0, parsable.stderr
    third = parsable.stdout.strip()
    assert third not in (old, new) and ended(third)["exit_code"] == 3


def test_resubmit_of_no_such_job_or_no_id_is_one_error_line_and_creates_nothing(home: Path) -> None:
    before = json.loads(kbatch("queue", "--all", "-o", "json", check=True).stdout)
    missing = kbatch("resubmit", "nosuch")
    assert (missing.returncode, missing.stdout) == (1, "")
    assert missing.stderr == "Error: no job 'nosuch' (see `kbatch queue --all` for known jobs)\n"
    blank = kbatch("resubmit", " ")
    assert (blank.returncode, blank.stderr.count("\n"), blank.stderr[:7]) == (2, 1, "Error: ")
    assert json.loads(kbatch("queue", "--all", "-o", "json", check=True).stdout) == before
