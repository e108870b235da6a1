"""The Kubernetes objects of one job, as plain dicts: a Job, a ConfigMap and a Secret.

Pure functions, no I/O and no config reads: everything they need comes in as
values (:class:`PodSettings` from the session, :class:`JobOptions` from
config). ``kbatch --dry-run`` prints exactly what :func:`build_manifests`
returns.

- The **ConfigMap** holds the job's spec (``spec.json``), what the driver needs
  to find its own Job (``job.json``) and a snapshot of the script; it is mounted
  read-only at :data:`JOB_DIR`.
- The **Secret** holds every environment variable of the job (the Job pulls it
  in with ``envFrom``), so no value appears in plain text in the Job.
- Both are owned by the Job (:func:`owned_by`): deleting the Job removes them.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kbatch_dask.backends.kubernetes import annotations as names
from kbatch_dask.backends.kubernetes.pod_template import merge_pod_template
from kbatch_dask.backends.kubernetes.quantities import cpu_quantity, memory_quantity
from kbatch_dask.backends.kubernetes.slugs import safe_slug
from kbatch_dask.errors import BadInput
from kbatch_dask.procs import python_m
from kbatch_dask.spec import JobSpec

NAME_PREFIX = "kbatch"
CONTAINER = "driver"
JOB_VOLUME = "kbatch-dask-job"
JOB_DIR = "/etc/kbatch-dask/job"
SPEC_KEY = "spec.json"
JOB_KEY = "job.json"
DRIVER_COMMAND = tuple(python_m("python", "kbatch_dask.driver"))  # python -m, less the pod's working directory
GPU_RESOURCE = "nvidia.com/gpu"
# A pod disrupted (evicted by a drain or the autoscaler, preempted, its node tainted
# away) did not fail: its replacement must not use up one of the job's --retries.
POD_FAILURE_POLICY = {
    "rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]
}
# Zero to JupyterHub's hub admits only pods with this label (its NetworkPolicy): a
# direct job's driver deletes the job's hub token through the hub's API, and any
# job's code may use the hub API with the token it holds.
POD_LABELS = {"hub.jupyter.org/network-access-hub": "true"}
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
# The API server refuses ConfigMaps and Secrets whose data exceed 1 MiB.
MAX_OBJECT_DATA = 1024 * 1024
_CONFIG_KEY_UNSAFE = re.compile(r"[^-._a-zA-Z0-9]")


@dataclass(frozen=True)
class PodSettings:
    """What a job's pod takes from the session it was submitted from
    (see :mod:`kbatch_dask.driver.session`); ``template`` is the admin's pod-spec
    fragment (``kbatch.kubernetes.pod-template``), merged in last."""

    namespace: str
    image: str
    volumes: tuple[Mapping[str, Any], ...] = ()
    volume_mounts: tuple[Mapping[str, Any], ...] = ()
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    affinity: Mapping[str, Any] | None = None
    security_context: Mapping[str, Any] | None = None
    container_security_context: Mapping[str, Any] | None = None
    image_pull_secrets: tuple[Mapping[str, Any], ...] = ()
    working_dir: str | None = None
    template: Mapping[str, Any] = field(default_factory=dict)
    # The notebook pod's service account (its cloud identity: IRSA, Workload Identity)
    # and whether it mounts its token; a configured service account wins over both.
    service_account: str | None = None
    automount_token: bool | None = None
    # Where the notebook has files the job's pod lacks (volumes not copied): the job
    # gets no variable pointing there.
    unshared_paths: tuple[str, ...] = ()
    init_containers: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class JobOptions:
    """Site settings for every job (from ``kbatch.kubernetes`` config)."""

    ttl_seconds: int = 7 * 86400
    termination_grace: int = 90
    cpus: float | None = None
    memory: int | None = None
    service_account: str | None = None
    start_margin: int = 600  # seconds per attempt the Job's deadline allows on top of --time
    queue_name: str | None = None  # Kueue's LocalQueue, which then owns the Job's suspend


@dataclass(frozen=True)
class Manifests:
    job: dict[str, Any]
    config_map: dict[str, Any]
    secret: dict[str, Any]

    def all(self) -> list[dict[str, Any]]:
        return [self.job, self.config_map, self.secret]


def xdict(**items: Any) -> dict[str, Any]:
    """The items whose value is not None (nor an empty collection).

    >>> xdict(a=1, b=None, c=[], d={})
    {'a': 1}
    """
    return {k: v for k, v in items.items() if v is not None and v != [] and v != {}}


def job_name(user: str, job_id: str) -> str:
    """The name of a job's Job, ConfigMap and Secret (a DNS label for any user name).

    >>> job_name("alice", "k3x9q")
    'kbatch-alice-k3x9q'
    """
    return f"{NAME_PREFIX}-{safe_slug(user)}-{job_id}"


def user_selector(user: str) -> str:
    """The label selector of one user's jobs and their pods."""
    return f"{names.LABEL_MANAGED_BY}={names.MANAGED_BY},{names.LABEL_USER}={safe_slug(user)}"


def job_labels(user: str, job_id: str) -> dict[str, str]:
    return {names.LABEL_MANAGED_BY: names.MANAGED_BY, names.LABEL_USER: safe_slug(user), names.LABEL_JOB_ID: job_id}


def script_key(path: str) -> str:
    """The ConfigMap key (and file name under :data:`JOB_DIR`) of the script.

    >>> script_key("/home/a/my train.py"), script_key("/x/spec.json")
    ('my_train.py', 'script-spec.json')
    """
    name = _CONFIG_KEY_UNSAFE.sub("_", path.rsplit("/", 1)[-1]) or "script"
    return f"script-{name}" if name in (SPEC_KEY, JOB_KEY, ".", "..") else name


def _metadata(user: str, job_id: str, namespace: str) -> dict[str, Any]:
    return {"name": job_name(user, job_id), "namespace": namespace, "labels": job_labels(user, job_id)}


def _data_size(data: Mapping[str, str]) -> int:
    return sum(len(k.encode()) + len(v.encode()) for k, v in data.items())


def _describe(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB"


def build_config_map(spec: JobSpec, job_id: str, namespace: str, script: str | bytes) -> dict[str, Any]:
    """The job's spec and a snapshot of its script (text, or a function job's
    pickle as ``binaryData``); BadInput above 1 MiB."""
    job_spec = spec.to_dict()
    job_spec["env"] = []  # values live in the Secret only
    key = script_key(spec.script)
    data = {
        SPEC_KEY: json.dumps(job_spec, indent=1, sort_keys=True),
        JOB_KEY: json.dumps({"id": job_id, "job_name": job_name(spec.user, job_id), "script": key}, sort_keys=True),
    }
    size = _data_size(data) + len(key) + len(script.encode() if isinstance(script, str) else script)
    if size > MAX_OBJECT_DATA:
        what = "the function and its arguments pickle to" if isinstance(script, bytes) else f"script {spec.script!r}:"
        raise BadInput(
            f"{what} {_describe(size)}, more than a Kubernetes job can carry ({_describe(MAX_OBJECT_DATA)}); "
            "keep data out of it: put the data on your home volume and read it from there when the job runs"
        )
    config_map: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(spec.user, job_id, namespace),
        "data": data,
    }
    if isinstance(script, bytes):
        config_map["binaryData"] = {key: base64.b64encode(script).decode()}
    else:
        data[key] = script
    return config_map


def build_secret(spec: JobSpec, job_id: str, namespace: str, env: Mapping[str, str]) -> dict[str, Any]:
    """Every environment variable of the job, base64-encoded; BadInput above 1 MiB."""
    size = _data_size(env)
    if size > MAX_OBJECT_DATA:
        raise BadInput(
            f"the job's environment is {_describe(size)}, more than a Kubernetes Secret holds "
            f"({_describe(MAX_OBJECT_DATA)}); copy fewer variables with --export VAR[,VAR...]"
        )
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(spec.user, job_id, namespace),
        "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in sorted(env.items())},
    }


def _resources(spec: JobSpec, options: JobOptions) -> dict[str, Any]:
    cpus = spec.cpus if spec.cpus is not None else options.cpus
    memory = spec.memory if spec.memory is not None else options.memory
    requests = xdict(
        cpu=cpu_quantity(cpus) if cpus else None,
        memory=memory_quantity(memory) if memory else None,
    )
    # No CPU limit: a limit only throttles a driver that waits on the cluster.
    limits = xdict(
        memory=requests.get("memory"),
        **{GPU_RESOURCE: str(spec.gpus) if spec.gpus else None},
    )
    return xdict(requests=requests, limits=limits)


def _annotations(
    spec: JobSpec, job_id: str, pod: PodSettings, submitted: str, output: str | None, error: str | None,
    result: str | None,
) -> dict[str, str]:  # fmt: skip
    # The executed notebook goes next to the output file, else into the pod's working
    # directory (the image's, unknown here, when the submit directory is on no volume).
    folder = os.path.dirname(output) if output else pod.working_dir
    notebook = spec.executed_notebook(job_id, folder) if folder else None
    return xdict(
        **{
            names.ANN_NAME: spec.name,
            names.ANN_USER: spec.user,
            names.ANN_COMMENT: spec.comment,
            names.ANN_SCRIPT: spec.script,
            names.ANN_ARGS: json.dumps(list(spec.args)) if spec.args else None,
            names.ANN_SUBMITTED: submitted,
            names.ANN_WORKERS: str(spec.workers) if spec.workers else None,
            names.ANN_OUTPUT: output,
            names.ANN_TIME_LIMIT: str(spec.time_limit) if spec.time_limit else None,
            names.ANN_RESULT: result,
            names.ANN_ERROR: error,
            names.ANN_WORKDIR: pod.working_dir,
            names.ANN_NOTEBOOK_OUTPUT: notebook,
            names.ANN_WORKER_CORES: str(spec.worker_cores) if spec.worker_cores is not None else None,
            names.ANN_WORKER_MEMORY: str(spec.worker_memory) if spec.worker_memory is not None else None,
        }
    )


def _driver_args(output: str | None, error: str | None, result: str | None) -> list[str]:
    # Paths are arguments of their own, so that a path on a volume stays one token.
    args = ["--kubernetes", JOB_DIR]
    for flag, path in (("--output", output), ("--error", error), ("--result", result)):
        if path:
            args += [flag, path]
    return args


def build_job(
    spec: JobSpec,
    job_id: str,
    pod: PodSettings,
    options: JobOptions,
    *,
    submitted: str,
    output: str | None = None,
    error: str | None = None,
    result: str | None = None,
    suspend: bool = False,
) -> dict[str, Any]:
    """The Job: one driver pod, never restarted in place, retried ``spec.retries`` times.

    A disrupted pod (evicted, preempted) is replaced without counting as a
    retry, and only once it has stopped (``podReplacementPolicy: Failed``): two
    drivers never run one job at a time.

    ``output``, ``error`` and ``result`` are paths the pod writes on a volume
    the submitting session sees too (None: not written to a file)."""
    name = job_name(spec.user, job_id)
    labels = job_labels(spec.user, job_id)
    # Kueue admits the Job (resumes it) when its LocalQueue has quota; the pod needs no label.
    queue = {KUEUE_QUEUE_LABEL: options.queue_name} if options.queue_name else {}
    container = xdict(
        name=CONTAINER,
        image=pod.image,
        command=list(DRIVER_COMMAND),
        args=_driver_args(output, error, result),
        workingDir=pod.working_dir,
        envFrom=[{"secretRef": {"name": name}}],
        env=[
            {"name": "KBATCH_DASK_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "KBATCH_DASK_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        ],
        resources=_resources(spec, options),
        volumeMounts=[*map(dict, pod.volume_mounts), {"name": JOB_VOLUME, "mountPath": JOB_DIR, "readOnly": True}],
        securityContext=dict(pod.container_security_context) if pod.container_security_context else None,
    )
    pod_spec = xdict(
        restartPolicy="Never",
        terminationGracePeriodSeconds=options.termination_grace,
        serviceAccountName=options.service_account or pod.service_account,
        automountServiceAccountToken=True if options.service_account else pod.automount_token,
        nodeSelector=dict(pod.node_selector),
        tolerations=[dict(t) for t in pod.tolerations],
        affinity=dict(pod.affinity) if pod.affinity else None,
        securityContext=dict(pod.security_context) if pod.security_context else None,
        imagePullSecrets=[dict(s) for s in pod.image_pull_secrets],
        volumes=[*map(dict, pod.volumes), {"name": JOB_VOLUME, "configMap": {"name": name}}],
        initContainers=[dict(c) for c in pod.init_containers],
        containers=[container],
    )
    pod_spec = merge_pod_template(pod_spec, pod.template, CONTAINER)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": pod.namespace,
            "labels": {**labels, **queue},
            "annotations": _annotations(spec, job_id, pod, submitted, output, error, result),
        },
        "spec": xdict(
            suspend=True if suspend or queue else None,
            backoffLimit=spec.retries,
            activeDeadlineSeconds=active_deadline(spec.time_limit, spec.retries, options.start_margin),
            ttlSecondsAfterFinished=options.ttl_seconds,
            podFailurePolicy=copy.deepcopy(POD_FAILURE_POLICY),
            podReplacementPolicy="Failed",
            template={
                "metadata": {
                    "labels": {**labels, **POD_LABELS},
                    "annotations": {names.ANN_SAFE_TO_EVICT: "false"},
                },
                "spec": pod_spec,
            },
        ),
    }


def active_deadline(time_limit: int | None, retries: int, start_margin: int) -> int | None:
    """The Job's ``activeDeadlineSeconds``: a backstop behind the driver's own limit.

    ``--time`` is the driver's limit per attempt, counted from its start; the
    Job's deadline counts from the Job's start, scheduling, image pulls and the
    waits between retries included, and covers every attempt. So each attempt
    gets ``start_margin`` more, and the deadline only fires on a driver that
    could not start or stop in time.

    >>> active_deadline(3600, 0, 600), active_deadline(60, 2, 30), active_deadline(None, 2, 30)
    (4200, 270, None)
    """
    return (time_limit + start_margin) * (retries + 1) if time_limit else None


def owned_by(obj: Mapping[str, Any], job: Mapping[str, Any]) -> dict[str, Any]:
    """``obj`` with an ownerReference to the created ``job`` (which has a uid),
    so that deleting the Job deletes it too."""
    owner = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": job["metadata"]["name"],
        "uid": job["metadata"]["uid"],
        "controller": False,
        "blockOwnerDeletion": False,
    }
    return {**obj, "metadata": {**obj["metadata"], "ownerReferences": [owner]}}


def build_manifests(
    spec: JobSpec,
    job_id: str,
    pod: PodSettings,
    options: JobOptions,
    *,
    env: Mapping[str, str],
    script: str | bytes,
    submitted: str,
    output: str | None = None,
    error: str | None = None,
    result: str | None = None,
    suspend: bool = False,
) -> Manifests:
    """All three objects of a job; BadInput (before anything exists) if the
    script or the environment is too large for the API server."""
    return Manifests(
        job=build_job(
            spec, job_id, pod, options, submitted=submitted, output=output, error=error, result=result, suspend=suspend
        ),
        config_map=build_config_map(spec, job_id, pod.namespace, script),
        secret=build_secret(spec, job_id, pod.namespace, env),
    )
