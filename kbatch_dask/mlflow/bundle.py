"""The project directory as the job's script, and the tracking URI the job reaches.

A kbatch job snapshots its script at submit (a job directory, a ConfigMap, the
service's request), so the project travels the same way: packed as a gzipped
tar inside a small Python script that unpacks it and runs the entry point's
command (:mod:`kbatch_dask.mlflow.launch`). The backend's own size limit for a
script is the project's.
"""

from __future__ import annotations

import base64
import io
import os
import tarfile
from collections.abc import Collection
from urllib.parse import urlsplit

# Never part of a project's code: version control, caches, environments, and MLflow's
# own stores (a project run with the default tracking URI keeps mlflow.db and mlruns/ in it).
EXCLUDED_NAMES = frozenset({".git", "__pycache__", ".ipynb_checkpoints", ".venv", "mlruns", "mlartifacts", "mlflow.db"})


def pack(directory: str, exclude: Collection[str] = ()) -> bytes:
    """The project directory as a gzipped tar of regular files and folders (no links:
    the job gets what the project holds, not what it points at); ``exclude`` are
    absolute paths left out besides :data:`EXCLUDED_NAMES`."""
    excluded = {os.path.abspath(p) for p in exclude}

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        path = os.path.join(directory, info.name)
        if os.path.basename(info.name) in EXCLUDED_NAMES or os.path.abspath(path) in excluded:
            return None
        return info if info.isfile() or info.isdir() else None

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in sorted(os.listdir(directory)):
            tar.add(os.path.join(directory, name), arcname=name, filter=keep)
    return buffer.getvalue()


def launcher_script(archive: bytes, command: str, project: str, entry_point: str) -> str:
    """The job's script: the packed project and the entry point's command.

    >>> text = launcher_script(b"...", "python train.py --alpha 5", "demo", "main")
    >>> print(text.splitlines()[0])
    # MLflow project 'demo', entry point 'main', run by kbatch-dask's MLflow backend.
    >>> "COMMAND = 'python train.py --alpha 5'" in text
    True
    """
    packed = base64.encodebytes(archive).decode()
    return (
        f"# MLflow project {project!r}, entry point {entry_point!r}, run by kbatch-dask's MLflow backend.\n"
        "# The MLflow run is the one in $MLFLOW_RUN_ID; see kbatch_dask/mlflow/launch.py.\n"
        "from kbatch_dask.mlflow.launch import main\n\n"
        f"COMMAND = {command!r}\n"
        f'PROJECT = """\n{packed}"""\n\n'
        "main(PROJECT, COMMAND)\n"
    )


def store_paths(tracking_uri: str) -> list[str]:
    """The local files of a file or SQLite tracking store (to keep out of the snapshot).

    >>> store_paths("sqlite:////home/a/p/mlflow.db")
    ['/home/a/p/mlflow.db', '/home/a/p/mlflow.db-journal', '/home/a/p/mlflow.db-wal', '/home/a/p/mlflow.db-shm']
    >>> store_paths("http://127.0.0.1:5000")
    []
    """
    parts = urlsplit(tracking_uri)
    if parts.scheme == "sqlite":
        db = tracking_uri[len("sqlite:///") :]
        return [db + suffix for suffix in ("", "-journal", "-wal", "-shm")]
    if parts.scheme in ("", "file"):
        return [parts.path]
    return []


def absolute_tracking_uri(tracking_uri: str, cwd: str) -> str:
    """The tracking URI with a local path made absolute, since the job runs elsewhere.

    >>> absolute_tracking_uri("sqlite:///mlflow.db", "/home/a")
    'sqlite:////home/a/mlflow.db'
    >>> absolute_tracking_uri("mlruns", "/home/a")
    'file:///home/a/mlruns'
    >>> absolute_tracking_uri("http://127.0.0.1:5000", "/home/a")
    'http://127.0.0.1:5000'
    """
    parts = urlsplit(tracking_uri)
    if parts.scheme == "sqlite" and tracking_uri.startswith("sqlite:///"):
        db = tracking_uri[len("sqlite:///") :]
        return "sqlite:///" + os.path.join(cwd, db) if not db.startswith("/") else tracking_uri
    if parts.scheme in ("", "file"):
        return "file://" + os.path.normpath(os.path.join(cwd, parts.path))
    return tracking_uri
