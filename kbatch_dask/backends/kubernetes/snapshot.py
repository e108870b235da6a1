"""What a Kubernetes job was submitted with, read back from its ConfigMap to
submit it again (``kbatch resubmit``): the spec and the script snapshot
(:mod:`.manifests` wrote both). Pure: the objects come in as dicts. The
ConfigMap is owned by the Job, so it goes with it (``ttlSecondsAfterFinished``,
or at once when the job is cancelled: a cancel deletes its Job); a job whose
ConfigMap is gone cannot be resubmitted.

The job's environment is not read back: its values live only in the job's
Secret, and reading Secrets is a grant kbatch never asks for (whoever may read
them in a hub's namespace reads the hub's own). The new job's environment is
made again, as a submission's is.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kbatch_dask.backends.kubernetes.manifests import CONTAINER, JOB_KEY, SPEC_KEY
from kbatch_dask.errors import BackendError, Conflict
from kbatch_dask.spec import JobSpec


@dataclass(frozen=True)
class Snapshot:
    """A job as submitted: its spec (``env`` empty: the values live in the Secret),
    and its script as text, or a function job's pickle as bytes."""

    spec: JobSpec
    script: str | bytes

    @property
    def content(self) -> bytes:
        return self.script.encode() if isinstance(self.script, str) else self.script


def gone(job_id: str) -> Conflict:
    """The refusal for a job whose ConfigMap is no longer there."""
    return Conflict(
        f"job {job_id} cannot be resubmitted: its script snapshot is gone with its Kubernetes objects "
        "(at its cancel, or kbatch.kubernetes.ttl-days after it ended); submit the script again"
    )


def read_snapshot(job_id: str, config_map: Mapping[str, Any], job: Mapping[str, Any] | None = None) -> Snapshot:
    """The snapshot in a job's ConfigMap; BackendError naming what is unreadable.
    A spec without ``--image`` gets the image the ``job`` ran (the session's then, not now's).

    >>> cm = {"data": {"spec.json": '{"script": "/h/a.py", "name": "a", "user": "u", "workdir": "/h",'
    ...       ' "output": "o"}', "job.json": '{"script": "a.py"}', "a.py": "print(1)"}}
    >>> s = read_snapshot("x", cm)
    >>> s.spec.name, s.script
    ('a', 'print(1)')
    """
    data = config_map.get("data") or {}
    binary = config_map.get("binaryData") or {}
    try:
        spec = JobSpec.from_dict(json.loads(data[SPEC_KEY]))
        key = json.loads(data[JOB_KEY])["script"]
        script: str | bytes = data[key] if key in data else base64.b64decode(binary[key], validate=True)
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise BackendError(f"job {job_id}: its ConfigMap is not one kbatch wrote ({exc!r})") from None
    if spec.image is None and job is not None:
        containers = ((job.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []
        image = next((c.get("image") for c in containers if c.get("name") == CONTAINER), None)
        spec = dataclasses.replace(spec, image=image)
    return Snapshot(spec, script)
