"""The project as the job's script: what is packed, and what the job unpacks."""

from __future__ import annotations

import os
import re
import tarfile
from pathlib import Path

from kbatch_dask.mlflow.bundle import launcher_script, pack, store_paths
from kbatch_dask.mlflow.launch import unpack


def a_project(root: Path) -> Path:
    folder = root / "project"
    (folder / "src" / "__pycache__").mkdir(parents=True)
    (folder / "MLproject").write_text("name: p\n")
    (folder / "src" / "model.py").write_text("WEIGHTS = 3\n")
    (folder / "src" / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"\0")
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (folder / "mlruns" / "0").mkdir(parents=True)
    (folder / "runs.db").write_text("the tracking store\n")
    (root / "secret").write_text("outside the project\n")
    os.symlink(root / "secret", folder / "src" / "link")
    return folder


def unpacked(script: str, into: Path) -> set[str]:
    packed = re.search(r'PROJECT = """\n(.*?)"""', script, re.S)
    assert packed is not None
    unpack(packed.group(1), str(into))
    return {str(p.relative_to(into)) for p in into.rglob("*")}


def test_the_job_unpacks_the_projects_code_without_stores_caches_or_links(tmp_path: Path) -> None:
    folder = a_project(tmp_path)
    archive = pack(str(folder), exclude=store_paths(f"sqlite:///{folder / 'runs.db'}"))
    files = unpacked(launcher_script(archive, "python src/model.py", "p", "main"), tmp_path / "job")
    assert files == {"MLproject", "src", "src/model.py"}
    assert (tmp_path / "job" / "src" / "model.py").read_text() == "WEIGHTS = 3\n"


def test_the_archive_holds_relative_names_only(tmp_path: Path) -> None:
    archive = tmp_path / "p.tar.gz"
    archive.write_bytes(pack(str(a_project(tmp_path))))
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert names and all(not n.startswith(("/", "..")) for n in names)


def test_the_script_runs_the_launcher_with_the_command(tmp_path: Path) -> None:
    script = launcher_script(b"x", "python train.py --alpha 'a b'", "demo", "main")
    compile(script, "job.py", "exec")  # valid Python whatever the command's quotes
    assert "from kbatch_dask.mlflow.launch import main" in script
    assert "COMMAND = \"python train.py --alpha 'a b'\"" in script
