"""The user guide's script runs as written (local backend, embedded gateway)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import ROOT, kbatch

pytestmark = pytest.mark.gateway


def guide_script() -> str:
    text = (ROOT / "docs" / "user-guide.md").read_text()
    [script] = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if b.startswith("#!/usr/bin/env python")]
    return script


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
