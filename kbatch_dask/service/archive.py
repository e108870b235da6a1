"""What the service keeps of its jobs after they end: a function job's pickled
result, the job's output and error files and its report's summary, uploaded by the job's driver with
its own credential before it reports the end (docs/service.md, "Results and
logs of ended jobs"). The service never reads a file from a user's volume: on a
real cluster it does not mount them.

:class:`Archive` is the narrow interface (put, get, delete one upload of one
job); :class:`DirectoryArchive` keeps each upload as a file of its own. A job
is named by its owner and its id, as the rest of the service names it; the
file's name is the job's Kubernetes name (a DNS label for any user,
:func:`~kbatch_dask.backends.kubernetes.manifests.job_name`) and the kind,
never anything a client sent.

>>> import tempfile
>>> archive = DirectoryArchive(tempfile.mkdtemp())
>>> archive.put("alice", "k3x9q", "output", b"hello\\n")
>>> archive.get("alice", "k3x9q", "output"), archive.get("alice", "k3x9q", "error")
(b'hello\\n', None)
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterable
from typing import Any, Literal, Protocol

from kbatch_dask.backends.hub.protocol import Upload
from kbatch_dask.backends.kubernetes import manifests as m
from kbatch_dask.backends.kubernetes.slugs import is_dns_label
from kbatch_dask.backends.outputs import LogStream, label, log_files, tail_offset
from kbatch_dask.files import write_atomic
from kbatch_dask.records import JobRecord
from kbatch_dask.report import Saved, summary_of

KINDS: tuple[Upload, ...] = ("result", "output", "error", "report")  # what a job's driver uploads
# What the service keeps itself: a job's spec and script snapshot, as its ConfigMap
# holds them, for a resubmit after the ConfigMap went with the Job (its TTL, a cancel).
SNAPSHOT: Literal["snapshot"] = "snapshot"
Kept = Upload | Literal["snapshot"]
KEPT: tuple[Kept, ...] = (*KINDS, SNAPSHOT)  # everything kept of a job


class Archive(Protocol):
    """The uploads of the service's jobs, by owner, job id and kind."""

    def put(self, user: str, job_id: str, kind: Kept, data: bytes) -> None:
        """Keep ``data``, replacing what was kept (a retried upload)."""
        ...

    def get(self, user: str, job_id: str, kind: Kept) -> bytes | None:
        """What was kept, or None when nothing was uploaded."""
        ...

    def delete(self, user: str, job_id: str, kind: Kept) -> None:
        """Forget what was kept (nothing kept is fine)."""
        ...


class DirectoryArchive:
    """Each upload a file ``{directory}/{job name}.{kind}``, written atomically
    (readers see the old file or the new one, never half of one), readable by
    the service's own user only."""

    def __init__(self, directory: str) -> None:
        self.directory = os.path.abspath(directory)
        os.makedirs(self.directory, mode=0o700, exist_ok=True)

    def _path(self, user: str, job_id: str, kind: Kept) -> str:
        if not is_dns_label(job_id) or kind not in KEPT:  # the handlers checked both: never a path trick
            raise ValueError(f"not a job id and upload: {job_id!r}, {kind!r}")
        return os.path.join(self.directory, f"{m.job_name(user, job_id)}.{kind}")

    def put(self, user: str, job_id: str, kind: Kept, data: bytes) -> None:
        write_atomic(self._path(user, job_id, kind), data, 0o600)

    def get(self, user: str, job_id: str, kind: Kept) -> bytes | None:
        try:
            with open(self._path(user, job_id, kind), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def delete(self, user: str, job_id: str, kind: Kept) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(user, job_id, kind))


def forget(archive: Archive, jobs: Iterable[tuple[str, str]]) -> None:
    """Delete everything kept of these ``(user, job id)`` (their records went: the
    database's retention)."""
    for user, job_id in jobs:
        for kind in KEPT:
            archive.delete(user, job_id, kind)


def archived_snapshot(archive: Archive, user: str, job_id: str) -> dict[str, Any] | None:
    """The job's spec and script snapshot as its ConfigMap held them (its ``data`` and
    ``binaryData``), kept by the service as it submitted the job; None if not kept."""
    kept = archive.get(user, job_id, SNAPSHOT)
    return dict(json.loads(kept)) if kept is not None else None


def archived_logs(archive: Archive, user: str, record: JobRecord, stream: LogStream, tail: int | None) -> list[bytes]:
    """The archived output (``stream``: its output, its error file or both, each
    under ``==> FILE <==`` when both, as ``kbatch logs --all`` prints files), its
    last ``tail`` lines of each, the bytes as uploaded; empty when the driver uploaded none of it."""
    log_files(record.id, record.output, record.error, stream)  # BadInput for --stderr without an error file
    separate = record.error if record.error and record.error != record.output else None
    kinds: list[tuple[Upload, str]] = [] if stream == "error" else [("output", record.output or "output")]
    if separate and stream != "output":
        kinds.append(("error", separate))
    parts: list[bytes] = []
    for kind, path in kinds:
        data = archive.get(user, record.id, kind)
        if data is None:
            continue
        if len(kinds) > 1:
            parts.append(label(path, first=not parts))
        start = tail_offset(io.BytesIO(data), tail) if tail is not None else 0
        parts.append(data[start:])
    return parts


def archived_report(archive: Archive, user: str, job_id: str) -> Saved | None:
    """The job report's summary its driver uploaded (checked then), None when it uploaded none."""
    data = archive.get(user, job_id, "report")
    return Saved(summary_of(data)) if data is not None else None
