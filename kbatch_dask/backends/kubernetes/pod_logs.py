"""A job's output from its driver pods' logs: the pod log holds the job's stdout and
stderr; with ``follow``, each attempt's pod in turn; the output file once the pods are gone.
Bytes as the API server sends them, never decoded."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from kbatch_dask.backends.kubernetes import manifests as m
from kbatch_dask.backends.kubernetes.client import KubeAPI
from kbatch_dask.backends.kubernetes.status import latest_pod
from kbatch_dask.backends.outputs import LogStream, log_files, read_files
from kbatch_dask.errors import BackendError, JobNotFound, KubeError
from kbatch_dask.records import JobRecord


def pod_logs(
    api: KubeAPI,
    namespace: str,
    record: JobRecord,
    follow: bool,
    stream: LogStream,
    tail: int | None,
    get: Callable[[str], JobRecord],
    pods: Callable[[str], list[dict[str, Any]]],
    gone: Callable[[JobRecord], Iterator[bytes]] | None = None,
) -> Iterator[bytes]:
    """The log of the job's latest driver pod, each attempt's in turn with ``follow``
    until the job ends; when no pod is left, ``gone(record)``: by default the output
    file, if readable here (the service, which sees no user's files, reads its archive).
    ``get`` reads the job's record again (:class:`JobNotFound` once it is gone), ``pods`` its pods."""
    job_id = record.id
    streamed: set[str] = set()
    while True:
        pod = latest_pod(pods(job_id))
        name = str((pod or {}).get("metadata", {}).get("name", ""))
        if pod is not None and name not in streamed and has_started(pod):
            lines = None if streamed else tail  # --tail is for the first log read; a later attempt's is new
            try:
                yield from api.pod_log(namespace, name, m.CONTAINER, follow, lines)
                streamed.add(name)
            except KubeError as exc:
                if exc.status not in (400, 404):  # the pod or its log is gone
                    raise
                pod = None
        if pod is None and not streamed and (record.state.is_terminal() or not follow):
            yield from (gone or output_files(stream, tail))(record)
            return
        if not follow:
            return
        try:
            record = get(job_id)
        except JobNotFound:
            return
        if record.state.is_terminal() and (streamed or pod is None):
            return
        time.sleep(0.5)


def output_files(stream: LogStream, tail: int | None) -> Callable[[JobRecord], Iterator[bytes]]:
    """The job's output file (or files, by ``stream``), read here: once its pods are gone."""

    def read(record: JobRecord) -> Iterator[bytes]:
        if not record.output or not os.access(record.output, os.R_OK):
            where = f"and its output file {record.output} cannot be read here" if record.output else ""
            raise BackendError(f"job {record.id} has no driver pod any more {where}".strip())
        return read_files(log_files(record.id, record.output, record.error, stream), tail=tail)

    return read


def has_started(pod: Mapping[str, Any] | None) -> bool:
    """True once the driver container has run (a waiting container has no log)."""
    return ((pod or {}).get("status") or {}).get("phase") in ("Running", "Succeeded", "Failed")
