"""``python_m``: a module run as ``python -m`` runs it, but not with the directory it
starts in first on ``sys.path`` — where a Kubernetes job's driver and every job's runner
start is the user's working directory, and a user's ``copy.py`` there would be theirs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kbatch_dask.procs import python_m

HOSTILE = "raise SystemExit('imported the working directory\\'s {name}.py')\n"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    for name in ("copy", "json", "logging", "argparse"):
        (tmp_path / f"{name}.py").write_text(HOSTILE.format(name=name))
    return tmp_path


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The Kubernetes driver's usage error: it got as far as parsing its arguments."""
    return subprocess.run([*cmd, "--kubernetes"], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_the_module_runs_as_main_with_its_arguments_and_not_the_directory_s_modules(workdir: Path) -> None:
    ours = run(python_m(sys.executable, "kbatch_dask.driver"), workdir)
    assert "working directory" not in ours.stderr, ours.stderr
    assert ours.returncode == 2 and "usage: python -m kbatch_dask.driver" in ours.stderr
    assert "--kubernetes: expected one argument" in ours.stderr


def test_python_m_itself_would_import_them(workdir: Path) -> None:
    theirs = run([sys.executable, "-m", "kbatch_dask.driver"], workdir)
    assert theirs.returncode == 1 and "imported the working directory's" in theirs.stderr
