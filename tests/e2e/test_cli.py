"""What a user meets at the command line: where arguments go, --wait on a terminal,
Ctrl-C, kqueue --watch, gc's words, help and shell completion (real processes)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import kbatch, show_json, write_script

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
