"""A fake kubelet: runs the Jobs created on the fake API server as local processes.

It plays the parts of a cluster that make a Job *happen* — the Job controller
(pods for a Job, retries, deadline, status), the scheduler (binding, or not),
the kubelet (volumes, environment, the process, its log, termination) and the
TTL controller — closely enough that the project's Kubernetes backend and its
driver run end to end, for real, on one machine.

What it does with a Job:

1. Creates a pod ``<job>-<5 chars>`` owned by the Job (ownerReferences with the
   Job's uid, labels ``job-name``, ``controller-uid``,
   ``batch.kubernetes.io/job-name`` from the template), Pending, and updates the
   Job's ``status.startTime`` / ``active``.
2. Sets the pod up (``pod_setup.py``): volumes materialised under a private
   pod root, the container's environment resolved from its Secrets /
   ConfigMaps / fieldRefs, paths translated into the pod root. While a
   referenced Secret or ConfigMap is missing the pod stays Pending
   (``CreateContainerConfigError`` / ``ContainerCreating``) and is retried, as
   in Kubernetes — so creating the Job before its ConfigMap and Secret works.
3. Starts ``command + args`` as a local process in its own session with stdout
   and stderr captured to a file that the server serves as the pod's log; pod
   phase Running, container state running, Job ``ready``.
4. When it exits: container ``terminated`` (exitCode, reason ``Completed`` /
   ``Error`` / ``OOMKilled``, or ``128+N`` for signal N), pod Succeeded or Failed,
   and the Job's status through the status path: ``succeeded`` / ``failed``,
   ``completionTime``, conditions ``SuccessCriteriaMet`` + ``Complete`` or
   ``FailureTarget`` + ``Failed`` (reason ``BackoffLimitExceeded``), as
   Kubernetes ≥ 1.31 writes them. ``backoffLimit`` is respected (a new pod per
   retry, after ``retry_delay``; Kubernetes waits 10 s, 20 s, ...). The rest of
   the process group is killed, as a container's processes die with PID 1.
5. ``activeDeadlineSeconds`` (from the Job's start): ``FailureTarget``
   (``DeadlineExceeded``) at once, the pod deleted (SIGTERM, SIGKILL after its
   ``terminationGracePeriodSeconds``), then ``Failed`` / ``DeadlineExceeded``.
6. Deleting a pod (directly or by garbage collection of its Job) terminates it
   like Kubernetes: ``deletionTimestamp`` set, SIGTERM to the main process,
   SIGKILL to the group after the grace period, then the pod object is removed.
   :meth:`FakeKubelet.evict` does what the Eviction API does: the pod's
   ``DisruptionTarget`` condition (reason ``EvictionByEvictionAPI``), then that
   deletion.
7. ``podReplacementPolicy`` (defaulted by the server: ``TerminatingOrFailed``,
   ``Failed`` with a ``podFailurePolicy``): ``TerminatingOrFailed`` counts a
   terminating pod as failed at once and starts its replacement while it
   still runs (two pods of one Job overlap); ``Failed`` waits until the pod has
   stopped. ``podFailurePolicy`` rules (``onPodConditions``, ``onExitCodes``;
   actions ``Ignore``: not counted in ``failed``, a replacement pod at once;
   ``FailJob``: the Job fails, reason ``PodFailurePolicy``; ``Count``) are
   matched against the stopped pod, first match wins.
8. ``ttlSecondsAfterFinished``: the finished Job is deleted (Background).
9. ``spec.suspend``: no pod while it is true, and the Job's ``Suspended``
   condition says so (status True, reason ``JobSuspended``; status False,
   reason ``JobResumed`` once resumed), as the Job controller writes it.
   Suspending a Job whose pod already runs does not delete the pod here.
10. ``start_delay``: seconds a bound pod stays Pending (``ContainerCreating``)
   before its process starts — image pulls and volume attachment; the Job's
   ``activeDeadlineSeconds`` counts them, as in Kubernetes.
11. Images no registry has (:meth:`FakeKubelet.missing_image`): the bound pod
    waits with ``ErrImagePull``, then (after :data:`PULL_BACK_OFF`)
    ``ImagePullBackOff`` for as long as it lives, as the kubelet's pull
    back-off reports it.
12. Nodes (``nodes.py``): the kubelet stands for every node of a small cluster
    (two by default). A pod is bound to one by its ``nodeName`` or its required
    node affinity, the least loaded first; a ``ReadWriteOnce`` claim attached to
    another node keeps it in ``ContainerCreating`` with a ``FailedAttachVolume``
    event ("Multi-Attach error ...") until the pods using it there are gone.
    :meth:`FakeKubelet.remove_node` takes a node away as a scale-down or a dead
    VM does: its processes are killed and its pods removed from the server (the
    pod garbage collector's work), their logs with them; the Job controller
    counts them failed and retries elsewhere if it may.

The container's environment is only what the pod spec gives it, plus:
``PATH`` and ``HOME`` from the test process unless the container sets them;
``HOSTNAME=<pod name>``; ``KUBECONFIG`` = a kubeconfig for the fake server
with a token identifying this pod (its service account user) and the pod's
namespace as the context namespace; the kubelet's ``extra_env`` (wins over the
container's values). ``KUBERNETES_SERVICE_HOST`` / ``_PORT`` are never set, so
``kubernetes.config.load_incluster_config()`` fails — **code running in a pod
must fall back to ``load_kube_config()`` when in-cluster loading fails**
(a ``ConfigException``). The service-account directory
(``/var/run/secrets/kubernetes.io/serviceaccount``: token, namespace) is
materialised under the pod root and reachable through path translation only.

Path translation (a property of the double, not of Kubernetes): every env
value, command element, arg and ``workingDir`` that starts with a volume's
``mountPath`` is rewritten to ``<podroot>/<mountPath>``, where the volume is
materialised; ``workingDir`` outside the mounts becomes the pod root. Paths in
files or computed at run time are not translated. ``python`` / ``python3`` as
argv[0] (bare or an absolute path) runs the test interpreter (``sys.executable``).

Limits: one container per pod; init containers are accepted but not run (their
status says they completed), ``restartPolicy: OnFailure`` treated as
``Never``, parallelism 1 (a second pod only while a terminating one stops,
as above), no Events but ``FailedAttachVolume``, no resource enforcement
(``oom_kill()`` simulates an OOM kill on cgroup v2: the whole container dies,
PID 1 included).
Jobs that exist before the kubelet starts are not run.
"""

from __future__ import annotations

import contextlib
import copy
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .fake_apiserver import FakeApiServer
from .nodes import multi_attach_error, pods_on, schedule
from .pod_setup import Launch, NotReady, PodContext, prepare
from .resources import EVENT, JOB, POD, ResourceType
from .seeding import condition
from .store import ApiError, JsonObj, now_iso

_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
DEADLINE_MESSAGE = "Job was active longer than specified deadline"
BACKOFF_MESSAGE = "Job has reached the specified backoff limit"
PULL_BACK_OFF = 1.0  # seconds of ErrImagePull before ImagePullBackOff (the kubelet's first back-off is 10 s)


def hold_message(reason: str, image: str) -> str:
    """What Kubernetes says for a pod stuck Pending for ``reason``."""
    return {
        "Unschedulable": "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: "
        "1 No preemption victims found for incoming pod.",
        "ImagePullBackOff": f'Back-off pulling image "{image}"',
        "ErrImagePull": f'failed to pull and unpack image "{image}": not found',
        "ContainerCreating": "",
    }.get(reason, reason)


@dataclass
class Hold:
    reason: str
    message: str | None


@dataclass
class PodRun:
    """The kubelet's record of one pod it runs."""

    namespace: str
    name: str
    job: str | None
    directory: Path
    created: float
    process: subprocess.Popen[bytes] | None = None
    launch: Launch | None = None
    started_at: str | None = None
    start_time: str | None = None
    waiting: tuple[str, str] | None = None
    terminate_by: float | None = None  # monotonic time of the SIGKILL, once deleted
    killed: bool = False
    oom: bool = False
    finished: bool = False
    bound: bool = True
    token: str = ""
    attach_reported: bool = False  # its FailedAttachVolume event was written
    pull_failed: float | None = None  # monotonic time its image could not be pulled first


@dataclass
class JobRun:
    """The Job controller's record of one Job."""

    namespace: str
    name: str
    uid: str
    template: JsonObj
    backoff_limit: int
    failure_rules: list[JsonObj]
    replacement: str  # podReplacementPolicy: "TerminatingOrFailed" or "Failed"
    deadline: int | None
    ttl: int | None
    suspended: bool
    started: float | None = None
    active: str | None = None  # the running pod's name
    next_pod_at: float = 0.0
    failed: int = 0
    succeeded: int = 0
    failure_reason: str | None = None  # DeadlineExceeded, once decided
    finished_at: float | None = None
    ttl_fired: bool = False
    deleting: bool = False


class FakeKubelet:
    """Runs pods of the fake API server's Jobs as local processes (see module doc).

    ``volumes`` maps a PersistentVolumeClaim name or a hostPath path to a local
    directory (e.g. a fake home volume); ``extra_env`` is added to every
    container's environment (e.g. ``DASK_GATEWAY__ADDRESS``, ``PYTHONPATH``);
    ``nodes`` are the cluster's node names, in the scheduler's order of preference.
    """

    def __init__(
        self,
        server: FakeApiServer,
        *,
        root: Path | None = None,
        volumes: Mapping[str, Path] | None = None,
        extra_env: Mapping[str, str] | None = None,
        nodes: Sequence[str] = ("fake-node", "fake-node-2"),
        tick: float = 0.02,
        retry_delay: float = 0.0,
        start_delay: float = 0.0,
        stop_grace: float = 5.0,
    ) -> None:
        self.server = server
        self.store = server.store
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="fake-kubelet-")) if root is None else Path(root)
        self._volumes = {k: Path(v) for k, v in (volumes or {}).items()}
        self.extra_env: dict[str, str] = dict(extra_env or {})
        self.nodes = list(nodes)
        self.tick, self.retry_delay, self.start_delay, self.stop_grace = tick, retry_delay, start_delay, stop_grace
        self.errors: list[str] = []
        self._jobs: dict[tuple[str, str], JobRun] = {}
        self._pods: dict[tuple[str, str], PodRun] = {}
        self._holds: dict[tuple[str | None, str], Hold] = {}
        self._missing_images: set[str] = set()
        self._made: dict[tuple[str, str], list[str]] = {}
        self._peak: dict[tuple[str, str], int] = {}
        self._events: queue.Queue[tuple[str, ResourceType, JsonObj]] = queue.Queue()
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._unsubscribe: Any = None

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> FakeKubelet:
        self._unsubscribe = self.store.subscribe(self._on_change)
        self.store.graceful_pod_deletion = True
        self._thread = threading.Thread(target=self._loop, name="fake-kubelet", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop, terminating every process started (SIGTERM, then SIGKILL)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._unsubscribe is not None:
            self._unsubscribe()
        self.store.graceful_pod_deletion = False
        self._terminate_all()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)
        if self.errors:
            raise AssertionError("the fake kubelet hit errors:\n" + "\n".join(self.errors))

    def __enter__(self) -> FakeKubelet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test controls --------------------------------------------------------

    def hold(
        self, job_name: str, reason: str = "Unschedulable", message: str | None = None, namespace: str | None = None
    ) -> None:
        """Keep the Job's pods (or a standalone pod) Pending for ``reason``.

        ``Unschedulable`` leaves the pod unbound with condition PodScheduled False;
        any other reason (``ImagePullBackOff``, ``ErrImagePull``, ...) is reported
        as the container's ``waiting.reason``. Call before or after creating the Job.
        """
        with self._lock:
            self._holds[(namespace, job_name)] = Hold(reason, message)

    def missing_image(self, image: str) -> None:
        """No registry has ``image``: pods using it never start (see the module's item 11)."""
        with self._lock:
            self._missing_images.add(image)

    def release(self, job_name: str, namespace: str | None = None) -> None:
        """Let held pods start."""
        with self._lock:
            self._holds.pop((namespace, job_name), None)
            self._holds.pop((None, job_name), None)

    def oom_kill(self, pod_name: str, namespace: str | None = None) -> None:
        """OOM-kill a running pod's container as cgroup v2 does: SIGKILL to its
        whole process group (PID 1 too, so nothing in it cleans up), reported as
        ``OOMKilled``, exit code 137."""
        with self._lock:
            run = self._find_pod(pod_name, namespace)
            if run is None or run.process is None:
                raise KeyError(f"no running pod {pod_name!r}")
            run.oom = True
            _signal_group(run.process, signal.SIGKILL)

    def remove_node(self, node: str) -> None:
        """Take ``node`` out of the cluster: what ran there dies with it, and its pods
        are deleted at once (no grace: nobody is left to terminate them), as the pod
        garbage collector deletes the pods of a node that no longer exists."""
        with self._lock:
            self.nodes.remove(node)
            for pod in pods_on(self.store, node):
                meta = pod["metadata"]
                run = self._pods.get((meta["namespace"], meta["name"]))
                if run is not None and run.process is not None:
                    _signal_group(run.process, signal.SIGKILL)
                self.store.remove(POD, meta["namespace"], meta["name"])

    def evict(self, pod_name: str, namespace: str | None = None, reason: str = "EvictionByEvictionAPI") -> None:
        """Evict a pod as a drain or cluster-autoscaler does through the Eviction
        API: condition ``DisruptionTarget`` (``reason``), then a graceful deletion."""
        with self._lock:
            run = self._find_pod(pod_name, namespace)
            if run is None:
                raise KeyError(f"no pod {pod_name!r}")
            disruption = _pod_condition("DisruptionTarget", True, reason, "Eviction API: evicting")
            self.store.mutate_status(
                POD, run.namespace, run.name, lambda s: s.setdefault("conditions", []).append(disruption)
            )
            self.store.delete(POD, run.namespace, run.name)

    def pods_made(self, job_name: str, namespace: str = "default") -> list[str]:
        """Names of every pod the Job controller made for a Job, gone ones too, oldest first."""
        with self._lock:
            return list(self._made.get((namespace, job_name), ()))

    def most_running_at_once(self, job_name: str, namespace: str = "default") -> int:
        """The most containers of one Job's pods that ever ran at the same time."""
        with self._lock:
            return self._peak.get((namespace, job_name), 0)

    def map_volume(self, key: str, directory: Path) -> None:
        """Back the PersistentVolumeClaim (or hostPath) ``key`` with ``directory``."""
        self._volumes[key] = Path(directory)

    def pods_of(self, job_name: str, namespace: str = "default") -> list[str]:
        """Names of the pods the kubelet made for a Job, oldest first."""
        with self._lock:
            runs = [r for r in self._pods.values() if r.job == job_name and r.namespace == namespace]
            return [r.name for r in sorted(runs, key=lambda r: r.created)]

    def pod_root(self, pod_name: str, namespace: str | None = None) -> Path:
        """The directory the pod's mountPaths are materialised under."""
        with self._lock:
            run = self._find_pod(pod_name, namespace)
        if run is None:
            raise KeyError(pod_name)
        return run.directory / "root"

    def launch_of(self, pod_name: str, namespace: str | None = None) -> Launch | None:
        """How the pod's process was started (argv, env, cwd), once it has been."""
        with self._lock:
            run = self._find_pod(pod_name, namespace)
            return run.launch if run else None

    def process(self, pod_name: str, namespace: str | None = None) -> subprocess.Popen[bytes] | None:
        with self._lock:
            run = self._find_pod(pod_name, namespace)
            return run.process if run else None

    def wait_for_job(self, name: str, namespace: str = "default", timeout: float = 30.0) -> JsonObj:
        """Wait until the Job has a Complete or Failed condition; returns it."""

        def done(job: JsonObj | None) -> bool:
            if self.errors:
                raise AssertionError("the fake kubelet hit errors:\n" + "\n".join(self.errors))
            return job is not None and job_outcome(job) is not None

        job = self.server.wait_for("jobs", namespace, name, done, timeout=timeout)
        assert job is not None
        return job

    def _find_pod(self, name: str, namespace: str | None) -> PodRun | None:
        for (ns, pod_name), run in list(self._pods.items()):
            if pod_name == name and namespace in (None, ns):
                return run
        return None

    def _hold_for(self, namespace: str, name: str | None) -> Hold | None:
        if name is None:
            return None
        return self._holds.get((namespace, name)) or self._holds.get((None, name))

    # -- the control loop -----------------------------------------------------

    def _on_change(self, event: str, rtype: ResourceType, obj: JsonObj) -> None:
        """Store listener: runs under the store's lock, so only queue the change."""
        if rtype is JOB or rtype is POD:
            self._events.put((event, rtype, obj))

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                item: tuple[str, ResourceType, JsonObj] | None = self._events.get(timeout=self.tick)
            except queue.Empty:
                item = None
            with self._lock:
                try:
                    while item is not None:
                        self._handle(*item)
                        item = self._events.get_nowait() if not self._events.empty() else None
                    self._step()
                except Exception:
                    self._record_error(traceback.format_exc())

    def _record_error(self, message: str) -> None:
        if not self.errors or self.errors[-1] != message:
            self.errors.append(message)
            print(f"fake kubelet: {message}", file=sys.stderr)

    def _handle(self, event: str, rtype: ResourceType, obj: JsonObj) -> None:
        meta = obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        if rtype is JOB:
            self._handle_job(event, key, obj)
            return
        run = self._pods.get(key)
        if event == "ADDED" and run is None:
            self._adopt_pod(obj)
        elif event == "MODIFIED" and meta.get("deletionTimestamp"):
            if run is None:
                self.store.remove(POD, *key)  # not a pod this kubelet runs: nothing to wait for
            elif run.terminate_by is None:
                self._begin_termination(run, int(meta.get("deletionGracePeriodSeconds") or 0))
                self._replace_terminating(run)
        elif event == "DELETED" and run is not None:
            self._pod_removed(run, obj)

    def _handle_job(self, event: str, key: tuple[str, str], obj: JsonObj) -> None:
        if event == "ADDED" and job_outcome(obj) is None:
            spec = obj["spec"]
            self._jobs[key] = JobRun(
                namespace=key[0],
                name=key[1],
                uid=obj["metadata"]["uid"],
                template=spec["template"],
                backoff_limit=int(spec.get("backoffLimit", 6)),
                failure_rules=list((spec.get("podFailurePolicy") or {}).get("rules") or []),
                replacement=str(spec.get("podReplacementPolicy") or "TerminatingOrFailed"),
                deadline=spec.get("activeDeadlineSeconds"),
                ttl=spec.get("ttlSecondsAfterFinished"),
                suspended=bool(spec.get("suspend")),
            )
            if self._jobs[key].suspended:
                self._write_suspended(self._jobs[key])
        elif event == "MODIFIED" and key in self._jobs:
            job = self._jobs[key]
            job.deleting = bool(obj["metadata"].get("deletionTimestamp"))
            suspended = bool(obj["spec"].get("suspend"))
            if suspended != job.suspended:
                job.suspended = suspended
                self._write_suspended(job)
        elif event == "DELETED":
            self._jobs.pop(key, None)

    def _step(self) -> None:
        now = time.monotonic()
        for job in list(self._jobs.values()):
            self._step_job(job, now)
        for run in list(self._pods.values()):
            self._step_pod(run, now)

    # -- the Job controller ---------------------------------------------------

    def _step_job(self, job: JobRun, now: float) -> None:
        if job.finished_at is not None:
            if job.ttl is not None and not job.ttl_fired and now >= job.finished_at + job.ttl:
                job.ttl_fired = True
                with contextlib.suppress(ApiError):
                    self.store.delete(JOB, job.namespace, job.name, propagation="Background")
            return
        if job.deleting or job.suspended:
            return
        if (
            job.failure_reason is None
            and job.deadline
            and job.started is not None
            and now - job.started >= job.deadline
        ):
            self._exceed_deadline(job)
        if job.failure_reason is not None:
            if job.active is None:
                self._finish_job(job, "Failed", job.failure_reason, DEADLINE_MESSAGE)
            return
        if job.active is None and now >= job.next_pod_at:
            self._create_pod(job, now)

    def _write_suspended(self, job: JobRun) -> None:
        """The ``Suspended`` condition, replaced: True while suspended, False once resumed."""
        reason, message = ("JobSuspended", "Job suspended") if job.suspended else ("JobResumed", "Job resumed")
        suspended = condition("Suspended", reason, message, now_iso())
        if not job.suspended:
            suspended["status"] = "False"

        def change(status: JsonObj) -> None:
            others = [c for c in status.get("conditions") or [] if c.get("type") != "Suspended"]
            status["conditions"] = [*others, suspended]

        self.store.mutate_status(JOB, job.namespace, job.name, change)

    def _create_pod(self, job: JobRun, now: float) -> None:
        template = job.template
        name = self._unused_pod_name(job)
        spec = copy.deepcopy(template.get("spec") or {})
        bound = bool(spec.get("nodeName"))  # else the scheduler binds it (in _try_start)
        template_meta = template.get("metadata") or {}
        pod = {
            "metadata": {
                "name": name,
                "generateName": f"{job.name}-",
                "labels": copy.deepcopy(template_meta.get("labels") or {}),
                "annotations": copy.deepcopy(template_meta.get("annotations") or {}),
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": job.name,
                        "uid": job.uid,
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": spec,
        }
        if not pod["metadata"]["annotations"]:
            del pod["metadata"]["annotations"]
        run = self._new_run(job.namespace, name, job.name, bound=bound)
        try:
            self.store.create(POD, job.namespace, pod)
        except ApiError as exc:
            del self._pods[(job.namespace, name)]
            job.next_pod_at = float("inf")
            self._record_error(f"could not create a pod for job {job.name}: {exc.message}")
            return
        self._made.setdefault((job.namespace, job.name), []).append(name)
        first = job.started is None
        job.active, job.started = run.name, job.started if job.started is not None else now

        def change(status: JsonObj) -> None:
            if first:
                status["startTime"] = now_iso()
            status.update(active=1, ready=0, terminating=0, uncountedTerminatedPods={})

        self.store.mutate_status(JOB, job.namespace, job.name, change)

    def _unused_pod_name(self, job: JobRun) -> str:
        while True:
            name = f"{job.name}-{''.join(random.choices(_SUFFIX_ALPHABET, k=5))}"
            if self.store.find(POD, job.namespace, name) is None and (job.namespace, name) not in self._pods:
                return name

    def _exceed_deadline(self, job: JobRun) -> None:
        job.failure_reason = "DeadlineExceeded"
        when = now_iso()

        def change(status: JsonObj) -> None:
            conditions = status.setdefault("conditions", [])
            conditions.append(condition("FailureTarget", "DeadlineExceeded", DEADLINE_MESSAGE, when))

        self.store.mutate_status(JOB, job.namespace, job.name, change)
        if job.active is not None:
            try:
                self.store.delete(POD, job.namespace, job.active)
            except ApiError:
                job.active = None

    def _replace_terminating(self, run: PodRun) -> None:
        """``podReplacementPolicy: TerminatingOrFailed``: a pod being deleted counts
        as failed now, and its replacement starts while it still terminates."""
        job = self._jobs.get((run.namespace, run.job or ""))
        if job is None or job.active != run.name or job.replacement != "TerminatingOrFailed":
            return
        if not job.deleting and job.failure_reason is None:
            self._pod_outcome(run, False)

    def _pod_outcome(self, run: PodRun, succeeded: bool, status: JsonObj | None = None) -> None:
        """Account a finished pod (its last ``status``, when known) to its Job."""
        job = self._jobs.get((run.namespace, run.job or ""))
        if job is None or job.active != run.name:
            return
        job.active = None
        rule = None if succeeded or job.failure_reason else _matching_rule(job.failure_rules, status or {})
        action = (rule or {}).get("action", "Count")
        if job.failure_reason is not None:
            job.failed += 1
        elif succeeded:
            job.succeeded += 1
            self._finish_job(job, "Complete", "CompletionsReached", "Reached expected number of succeeded pods")
        elif action == "Ignore":  # not a failure: a new pod at once, no backoff
            job.next_pod_at = time.monotonic()
            self.store.mutate_status(JOB, job.namespace, job.name, lambda s: s.update(active=0, ready=0))
        elif action == "FailJob":
            job.failed += 1
            message = f"Pod {run.namespace}/{run.name} failed matching the FailJob rule of the podFailurePolicy"
            self._finish_job(job, "Failed", "PodFailurePolicy", message)
        else:
            job.failed += 1
            if job.failed > job.backoff_limit:
                self._finish_job(job, "Failed", "BackoffLimitExceeded", BACKOFF_MESSAGE)
            else:
                job.next_pod_at = time.monotonic() + self.retry_delay
                self.store.mutate_status(
                    JOB, job.namespace, job.name, lambda s: s.update(active=0, ready=0, failed=job.failed)
                )

    def _finish_job(self, job: JobRun, outcome: str, reason: str, message: str) -> None:
        job.finished_at = time.monotonic()
        when = now_iso()

        def change(status: JsonObj) -> None:
            status.pop("active", None)
            status.update(ready=0, terminating=0, uncountedTerminatedPods={})
            if job.succeeded:
                status["succeeded"] = job.succeeded
            if job.failed:
                status["failed"] = job.failed
            conditions = status.setdefault("conditions", [])
            if outcome == "Complete":
                status["completionTime"] = when
                conditions.append(condition("SuccessCriteriaMet", reason, message, when))
            elif not any(c.get("type") == "FailureTarget" for c in conditions):
                conditions.append(condition("FailureTarget", reason, message, when))
            conditions.append(condition(outcome, reason, message, when))

        self.store.mutate_status(JOB, job.namespace, job.name, change)

    # -- the kubelet proper ---------------------------------------------------

    def _new_run(self, namespace: str, name: str, job: str | None, *, bound: bool) -> PodRun:
        run = PodRun(namespace, name, job, self.root / "pods" / namespace / name, time.monotonic(), bound=bound)
        self._pods[(namespace, name)] = run
        return run

    def _adopt_pod(self, pod: JsonObj) -> None:
        """A pod created by someone else (a test): run it too, as a kubelet would."""
        if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return
        meta = pod["metadata"]
        owners = [r for r in meta.get("ownerReferences") or [] if r.get("kind") == "Job"]
        job = owners[0]["name"] if owners else None
        self._new_run(meta["namespace"], meta["name"], job, bound=bool((pod.get("spec") or {}).get("nodeName")))

    def _step_pod(self, run: PodRun, now: float) -> None:
        if run.finished:
            return
        if run.process is None:
            if run.terminate_by is not None:
                self._discard_unstarted(run)
            else:
                self._try_start(run, now)
            return
        code = run.process.poll()
        if code is None:
            if run.terminate_by is not None and now >= run.terminate_by and not run.killed:
                run.killed = True
                _signal_group(run.process, signal.SIGKILL)
            return
        self._container_exited(run, code)

    def _try_start(self, run: PodRun, now: float) -> None:
        pod = self.store.find(POD, run.namespace, run.name)
        if pod is None:
            return
        image = str(((pod["spec"].get("containers") or [{}])[0]).get("image", ""))
        hold = self._hold_for(run.namespace, run.job or run.name)
        if hold is not None and hold.reason == "Unschedulable":
            message = hold.message if hold.message is not None else hold_message(hold.reason, image)
            self._write_waiting(run, pod, hold.reason, message, scheduled=False)
            return
        if not run.bound:
            placement = schedule(self.store, pod, self.nodes)
            if placement.node is None:
                self._write_waiting(run, pod, "Unschedulable", placement.message, scheduled=False)
                return
            self.store.patch(
                POD, run.namespace, run.name, "application/merge-patch+json", {"spec": {"nodeName": placement.node}}
            )
            run.bound = True
            pod = self.store.get(POD, run.namespace, run.name)
        if hold is not None:
            message = hold.message if hold.message is not None else hold_message(hold.reason, image)
            self._write_waiting(run, pod, hold.reason, message, scheduled=True)
            return
        if image in self._missing_images:
            run.pull_failed = run.pull_failed or now
            reason = "ImagePullBackOff" if now >= run.pull_failed + PULL_BACK_OFF else "ErrImagePull"
            self._write_waiting(run, pod, reason, hold_message(reason, image), scheduled=True)
            return
        if pod["spec"]["nodeName"] not in self.nodes:
            self.store.remove(POD, run.namespace, run.name)  # bound to no node: the pod garbage collector's
            return
        attach_error = multi_attach_error(self.store, pod)
        if attach_error is not None:
            if not run.attach_reported:
                run.attach_reported = True
                self._warn(pod, "FailedAttachVolume", attach_error, "attachdetach-controller")
            self._write_waiting(run, pod, "ContainerCreating", "", scheduled=True)
            return
        if now < run.created + self.start_delay:
            self._write_waiting(run, pod, "ContainerCreating", "", scheduled=True)
            return
        try:
            run.launch = prepare(self._context(run, pod))
        except NotReady as exc:
            if "fake kubelet" in exc.message:
                self._record_error(f"pod {run.name}: {exc.message}")
            self._write_waiting(run, pod, exc.reason, exc.message, scheduled=True)
            return
        self._start_process(run, pod)

    def _warn(self, pod: JsonObj, reason: str, message: str, component: str) -> None:
        """A Warning Event about ``pod``, as a controller records one."""
        meta, when = pod["metadata"], now_iso()
        event = {
            "metadata": {"name": f"{meta['name']}.{random.getrandbits(64):016x}"},
            "involvedObject": {
                "kind": "Pod",
                "apiVersion": "v1",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
            },
            "reason": reason,
            "message": message,
            "type": "Warning",
            "source": {"component": component},
            "reportingComponent": component,
            "reportingInstance": "",
            "firstTimestamp": when,
            "lastTimestamp": when,
            "count": 1,
        }
        self.store.create(EVENT, meta["namespace"], event)

    def _context(self, run: PodRun, pod: JsonObj) -> PodContext:
        if not run.token:
            account = pod["spec"].get("serviceAccountName") or "default"
            user = f"system:serviceaccount:{run.namespace}:{account}"
            run.token = self.server.issue_token(user, pod=f"{run.namespace}/{run.name}")
        run.directory.mkdir(parents=True, exist_ok=True)
        kubeconfig = self.server.kubeconfig(run.directory / "kubeconfig", namespace=run.namespace, token=run.token)
        return PodContext(self.store, pod, run.directory, run.token, kubeconfig, self._volume_dir, self.extra_env)

    def _volume_dir(self, kind: str, key: str) -> Path:
        directory = self._volumes.get(key)
        if directory is None:
            directory = self.root / "volumes" / kind / key.strip("/").replace("/", "_")
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    def _start_process(self, run: PodRun, pod: JsonObj) -> None:
        assert run.launch is not None
        log = run.directory / "container.log"
        run.start_time = run.start_time or now_iso()
        run.started_at = now_iso()
        try:
            with log.open("ab") as out:
                run.process = subprocess.Popen(
                    run.launch.argv,
                    env=run.launch.env,
                    cwd=run.launch.cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        except OSError as exc:
            log.write_text(f"exec {run.launch.argv[0]!r} failed: {exc}\n")
            self.server.attach_log(run.namespace, run.name, log)
            self._report_exit(run, pod, 128, "StartError")
            return
        self.server.attach_log(run.namespace, run.name, log)
        if run.job is not None:
            key = (run.namespace, run.job)
            running = sum(
                1 for r in self._pods.values() if (r.namespace, r.job) == key and r.process and not r.finished
            )
            self._peak[key] = max(self._peak.get(key, 0), running)
        self.store.mutate_status(POD, run.namespace, run.name, lambda s: _replace(s, _running_status(pod, run)))
        job = self._jobs.get((run.namespace, run.job or ""))
        if job is not None and job.active == run.name:
            self.store.mutate_status(JOB, run.namespace, job.name, lambda s: s.update(ready=1))

    def _container_exited(self, run: PodRun, code: int) -> None:
        assert run.process is not None
        _signal_group(run.process, signal.SIGKILL)  # the container's other processes die with it
        exit_code = code if code >= 0 else 128 - code
        reason = "OOMKilled" if run.oom else ("Completed" if exit_code == 0 else "Error")
        pod = self.store.find(POD, run.namespace, run.name)
        if pod is not None:
            self._report_exit(run, pod, exit_code, reason)
        else:
            run.finished = True
            self.server.finish_log(run.namespace, run.name)
            self._pod_outcome(run, exit_code == 0)

    def _report_exit(self, run: PodRun, pod: JsonObj, exit_code: int, reason: str) -> None:
        run.finished = True
        self.server.finish_log(run.namespace, run.name)
        status = _terminated_status(pod, run, exit_code, reason)
        status["conditions"] += _disruption(pod)  # the kubelet keeps what the eviction said
        self.store.mutate_status(POD, run.namespace, run.name, lambda s: _replace(s, status))
        self._pod_outcome(run, exit_code == 0, status)
        if run.terminate_by is not None:
            self.store.remove(POD, run.namespace, run.name)  # graceful deletion completes

    def _begin_termination(self, run: PodRun, grace: int) -> None:
        run.terminate_by = time.monotonic() + grace
        if run.process is not None and run.process.poll() is None:
            if grace <= 0:
                run.killed = True
                _signal_group(run.process, signal.SIGKILL)
            else:
                with contextlib.suppress(ProcessLookupError):
                    run.process.send_signal(signal.SIGTERM)  # to "PID 1" only, as a container runtime does

    def _discard_unstarted(self, run: PodRun) -> None:
        run.finished = True
        pod = self.store.find(POD, run.namespace, run.name)
        self.store.remove(POD, run.namespace, run.name)
        self._pod_outcome(run, False, {"conditions": _disruption(pod or {})})

    def _pod_removed(self, run: PodRun, pod: JsonObj) -> None:
        """The pod object (last seen as ``pod``) is gone (forced deletion, or termination completed)."""
        if run.process is not None and run.process.poll() is None:
            _signal_group(run.process, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                run.process.wait(timeout=5)
        if not run.finished:
            run.finished = True
            self.server.finish_log(run.namespace, run.name)
            self._pod_outcome(run, False, pod.get("status"))
        self.server.forget_log(run.namespace, run.name)
        self._pods.pop((run.namespace, run.name), None)

    def _write_waiting(self, run: PodRun, pod: JsonObj, reason: str, message: str, *, scheduled: bool) -> None:
        if run.waiting == (reason, message):
            return
        run.waiting = (reason, message)
        run.start_time = run.start_time or (now_iso() if scheduled else None)
        status = _pending_status(pod, run, reason, message, scheduled=scheduled)
        self.store.mutate_status(POD, run.namespace, run.name, lambda s: _replace(s, status))

    def _terminate_all(self) -> None:
        running = [r.process for r in self._pods.values() if r.process is not None and r.process.poll() is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace
        for process in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(deadline - time.monotonic(), 0.01))
        for run in self._pods.values():
            if run.process is not None:
                _signal_group(run.process, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    run.process.wait(timeout=5)


# -- helpers -------------------------------------------------------------------


def job_outcome(job: JsonObj) -> str | None:
    """ "Complete" or "Failed" once the Job has that condition, else None."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return str(cond["type"])
    return None


def _disruption(pod: JsonObj) -> list[JsonObj]:
    """The pod's ``DisruptionTarget`` condition, as a list of none or one."""
    return [c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") == "DisruptionTarget"]


def _matching_rule(rules: list[JsonObj], status: JsonObj) -> JsonObj | None:
    """The first ``podFailurePolicy`` rule a stopped pod's ``status`` matches."""
    conditions = {(c.get("type"), c.get("status")) for c in status.get("conditions") or []}
    exit_codes = [
        int((s.get("state") or {}).get("terminated", {}).get("exitCode", 0))
        for s in status.get("containerStatuses") or []
    ]
    for rule in rules:
        wanted = rule.get("onPodConditions") or []
        if any((c.get("type"), c.get("status", "True")) in conditions for c in wanted):
            return rule
        codes = rule.get("onExitCodes")
        if codes is not None:
            values = set(codes.get("values") or [])
            inside = [code in values for code in exit_codes if code != 0]
            if inside and (any(inside) if codes.get("operator") == "In" else not all(inside)):
                return rule
    return None


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Signal the process's whole session (it was started as a group leader)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def _replace(status: JsonObj, new: JsonObj) -> None:
    status.clear()
    status.update(new)


def _container(pod: JsonObj) -> JsonObj:
    return dict((pod["spec"].get("containers") or [{}])[0])


def _pod_condition(kind: str, ok: bool, reason: str | None = None, message: str | None = None) -> JsonObj:
    cond: JsonObj = {"type": kind, "status": "True" if ok else "False", "lastProbeTime": None}
    cond["lastTransitionTime"] = now_iso()
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def _container_status(pod: JsonObj, run: PodRun, state: JsonObj, *, ready: bool) -> JsonObj:
    container = _container(pod)
    status: JsonObj = {
        "name": container.get("name", ""),
        "image": container.get("image", ""),
        "imageID": "",
        "ready": ready,
        "started": ready,
        "restartCount": 0,
        "state": state,
        "lastState": {},
    }
    if run.process is not None:
        status["containerID"] = f"fake://{run.process.pid}"
        status["imageID"] = f"fake-image://{container.get('image', '')}"
    return status


def _base_status(phase: str, run: PodRun) -> JsonObj:
    status: JsonObj = {"phase": phase, "qosClass": "BestEffort"}
    if run.bound:
        status.update(hostIP="127.0.0.1", hostIPs=[{"ip": "127.0.0.1"}])
    if run.start_time:
        status["startTime"] = run.start_time
    return status


def _pending_status(pod: JsonObj, run: PodRun, reason: str, message: str, *, scheduled: bool) -> JsonObj:
    status = _base_status("Pending", run)
    if not scheduled:
        status["conditions"] = [_pod_condition("PodScheduled", False, reason, message)]
        return status
    waiting = {"reason": reason, **({"message": message} if message else {})}
    status["conditions"] = [
        _pod_condition("PodReadyToStartContainers", reason != "ContainerCreating"),
        _pod_condition("Initialized", True),
        _pod_condition(
            "Ready", False, "ContainersNotReady", f"containers with unready status: [{_container(pod).get('name')}]"
        ),
        _pod_condition("ContainersReady", False, "ContainersNotReady"),
        _pod_condition("PodScheduled", True),
    ]
    status["containerStatuses"] = [_container_status(pod, run, {"waiting": waiting}, ready=False)]
    return _with_init_containers(pod, status)


def _running_status(pod: JsonObj, run: PodRun) -> JsonObj:
    status = _base_status("Running", run)
    status.update(podIP="127.0.0.1", podIPs=[{"ip": "127.0.0.1"}])
    status["conditions"] = [
        _pod_condition(kind, True)
        for kind in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")
    ]
    running = {"running": {"startedAt": run.started_at}}
    status["containerStatuses"] = [_container_status(pod, run, running, ready=True)]
    return _with_init_containers(pod, status)


def _terminated_status(pod: JsonObj, run: PodRun, exit_code: int, reason: str) -> JsonObj:
    phase = "Succeeded" if exit_code == 0 else "Failed"
    status = _base_status(phase, run)
    done = "PodCompleted" if exit_code == 0 else "PodFailed"
    status["conditions"] = [
        _pod_condition("PodReadyToStartContainers", False),
        _pod_condition("Initialized", True, done),
        _pod_condition("Ready", False, done),
        _pod_condition("ContainersReady", False, done),
        _pod_condition("PodScheduled", True),
    ]
    terminated = {
        "exitCode": exit_code,
        "reason": reason,
        "startedAt": run.started_at,
        "finishedAt": now_iso(),
    }
    if run.process is not None:
        terminated["containerID"] = f"fake://{run.process.pid}"
    status["containerStatuses"] = [_container_status(pod, run, {"terminated": terminated}, ready=False)]
    return _with_init_containers(pod, status)


def _with_init_containers(pod: JsonObj, status: JsonObj) -> JsonObj:
    """The pod's init containers, reported as having completed (the fake does not run them)."""
    inits = pod["spec"].get("initContainers") or []
    if inits:
        done = {"terminated": {"exitCode": 0, "reason": "Completed"}}
        status["initContainerStatuses"] = [
            {"name": c.get("name", ""), "image": c.get("image", ""), "imageID": "", "ready": True,
             "restartCount": 0, "state": done, "lastState": {}}
            for c in inits
        ]  # fmt: skip
    return status
