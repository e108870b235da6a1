"""The ``hub`` backend: the kbatch-dask service runs the jobs.

The session keeps what only it can know (the script file, its environment, the
submit directory) and sends them with the validated spec's options; the
service validates them again, applies the admin's policy and builds the pod.
Records come back as ``kbatch show -o json`` has them, ``backend`` ``hub``.
"""

from __future__ import annotations

import base64
import itertools
import os
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from kbatch_dask import settings
from kbatch_dask.backends.hub.client import ServiceClient
from kbatch_dask.backends.outputs import LogStream
from kbatch_dask.errors import BackendError, BadInput, Conflict, JobNotFound, KbatchWarning
from kbatch_dask.gateway import GatewaySettings, configured_gateway
from kbatch_dask.records import JobRecord
from kbatch_dask.report import Saved, report_paths
from kbatch_dask.settings import Settings
from kbatch_dask.spec import PAYLOAD_SUFFIX, JobSpec
from kbatch_dask.spec.environment import exported_environment
from kbatch_dask.spec.units import format_size

NAME = "hub"
STREAMS = {"output": "output", "error": "stderr", "all": "all"}


def submitted_options(spec: JobSpec) -> dict[str, Any]:
    """The spec as the submit options of ``POST /jobs`` (paths absolute: the
    service cannot know this session's home or directory). ``--env`` and
    ``--export`` are not among them: they made the environment sent with them.

    >>> submitted_options(JobSpec("/h/a.py", "a", "me", "/h", "~/o-%j.out", gpus=1))["gpus"]
    '1'
    """
    options = {
        "name": spec.name,
        "comment": spec.comment,
        "output": os.path.expanduser(spec.output),
        "error": os.path.expanduser(spec.error) if spec.error else None,
        "chdir": spec.workdir,
        "cpus": f"{spec.cpus:g}" if spec.cpus is not None else None,
        "memory": format_size(spec.memory) if spec.memory else None,
        "gpus": str(spec.gpus),
        "time": f"{spec.time_limit // 60}:{spec.time_limit % 60}" if spec.time_limit else None,
        "dask_workers": str(spec.workers) if spec.workers else "0",
        "wait_for_workers": spec.wait_for_workers,
        "worker_cores": f"{spec.worker_cores:g}" if spec.worker_cores is not None else None,
        "worker_memory": format_size(spec.worker_memory) if spec.worker_memory else None,
        "dask_option": [f"{k}={v}" for k, v in spec.dask_options] or None,
        "image": spec.image,
        "retries": str(spec.retries),
        "parameter": [list(p) for p in spec.parameters] or None,
        "dependency": spec.dependency,
        "mail_type": ",".join(spec.mail_type) or None,
        "mail_user": spec.mail_user,
    }
    return {k: v for k, v in options.items() if v is not None}


def submission_body(spec: JobSpec, content: bytes, environment: Mapping[str, str]) -> dict[str, Any]:
    """The ``POST /jobs`` body of ``spec``: its options, the script's (or payload's)
    ``content`` and the environment (the service makes one too, to resubmit a job)."""
    encoded = base64.b64encode(content).decode()
    body: dict[str, Any] = {
        "spec": submitted_options(spec),
        "args": list(spec.args),
        "script": {"name": os.path.basename(spec.script).removesuffix(PAYLOAD_SUFFIX)},
        "environment": dict(environment),
    }
    if spec.kind == "function":
        body["payload"] = encoded
    else:
        body["script"]["content"] = encoded
    return body


class HubBackend:
    name = NAME

    def __init__(self, config: Settings | None = None) -> None:
        self.config = config or settings.load()
        url = self.config.service.url
        if not url:
            raise BadInput("--backend hub needs the service's URL: set kbatch.service.url (DASK_KBATCH__SERVICE__URL)")
        token = self.config.service.token or os.environ.get("JUPYTERHUB_API_TOKEN")
        self.client = ServiceClient(url, token)

    def _record(self, data: Mapping[str, Any]) -> JobRecord:
        return JobRecord.from_dict(dict(data)).replace(backend=NAME)

    def check(self, spec: JobSpec) -> tuple[KbatchWarning, ...]:
        return ()  # the service checks, with its policy, at submit

    def dry_run(self, spec: JobSpec, environment: Mapping[str, str]) -> str:
        """What the service would create for this submission, as YAML; it creates nothing."""
        from kbatch_dask.backends.kubernetes.dry_run import manifests_yaml

        plan = self.client.json("POST", "/jobs", {"dry-run": "1"}, body=self._body(spec, environment))
        return manifests_yaml(plan["objects"], plan["notes"])

    def submit(self, spec: JobSpec, environment: dict[str, str]) -> JobRecord:
        return self._record(self.client.json("POST", "/jobs", body=self._body(spec, environment)))

    def resubmit(self, job_id: str, credentials: Mapping[str, str], environ: Mapping[str, str]) -> JobRecord:
        # The service takes the spec and script from the Job's own objects, and mints the
        # new job's credentials; this session's variables (minus the deny-list) are its environment.
        body = {"environment": exported_environment("ALL", (), environ)}
        return self._record(self.client.json("POST", f"/jobs/{_quoted(job_id)}/resubmit", body=body, job_id=job_id))

    def _body(self, spec: JobSpec, environment: Mapping[str, str]) -> dict[str, Any]:
        with open(spec.script, "rb") as f:
            return submission_body(spec, f.read(), environment)

    def list(self, *, ended_since: datetime | None = None) -> list[JobRecord]:
        query = {"since": ended_since.isoformat()} if ended_since else {}
        return [self._record(r) for r in self.client.json("GET", "/jobs", query)["jobs"]]

    def get(self, job_id: str) -> JobRecord:
        return self._record(self.client.json("GET", f"/jobs/{_quoted(job_id)}", job_id=job_id))

    def logs(
        self, job_id: str, follow: bool = False, stream: LogStream = "output", tail: int | None = None
    ) -> Iterator[bytes]:
        query = {"follow": "1" if follow else None, "stream": STREAMS[stream], "tail": tail}
        chunks = self.client.stream(f"/jobs/{_quoted(job_id)}/logs", query, job_id=job_id)
        first = next(chunks, None)  # a refusal (no such job, no error file) now, at the call
        return chunks if first is None else itertools.chain((first,), chunks)

    def cancel(self, job_id: str) -> JobRecord:
        return self._record(self.client.json("DELETE", f"/jobs/{_quoted(job_id)}", job_id=job_id))

    def hold(self, job_id: str) -> JobRecord:
        return self._record(self.client.json("POST", f"/jobs/{_quoted(job_id)}/hold", job_id=job_id))

    def release(self, job_id: str) -> JobRecord:
        return self._record(self.client.json("POST", f"/jobs/{_quoted(job_id)}/release", job_id=job_id))

    def result(self, job_id: str) -> bytes | None:
        self.get(job_id)  # JobNotFound for an unknown job; then a 404 means no result
        try:
            return self.client.raw(f"/jobs/{_quoted(job_id)}/result", job_id=job_id)
        except JobNotFound:
            return None

    def report(self, record: JobRecord) -> Saved | None:
        """The report's summary the job's driver uploaded to the service (409: not ended, 404: none),
        and Dask's HTML report where this session sees it: beside the output, on the user's volume."""
        try:
            summary = self.client.json("GET", f"/jobs/{_quoted(record.id)}/report", job_id=record.id)
        except (JobNotFound, Conflict):
            return None
        paths = report_paths(record.output, record.id)
        return Saved(summary, paths[1] if paths and os.path.exists(paths[1]) else None)

    def gateway(self, *, start: bool = False, probe: bool = True) -> GatewaySettings | None:
        """The configured gateway: the jobs' clusters are the user's, on the hub's gateway."""
        return configured_gateway()

    def clusters_without_gateway(self) -> dict[str, int]:
        return {}

    def end_cluster(self, name: str) -> None:
        raise BackendError(f"cluster {name}: the hub backend stops clusters only through their gateway")


def _quoted(job_id: str) -> str:
    from urllib.parse import quote

    return quote(job_id, safe="")
