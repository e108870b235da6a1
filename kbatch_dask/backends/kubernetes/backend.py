"""The Kubernetes backend: each job is a ``batch/v1`` Job whose pod runs the driver.

Submitting creates three objects (:mod:`kbatch_dask.backends.kubernetes.manifests`): the Job, and
a ConfigMap (spec + script) and a Secret (environment) owned by it. Reading
jobs lists Jobs by label selector (paginated) and their pods once, as raw JSON
(:mod:`kbatch_dask.backends.kubernetes.status` turns them into records). ``kubernetes`` is
imported only when a client is first needed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

from kbatch_dask import settings
from kbatch_dask.backends import Detected
from kbatch_dask.backends.ids import new_job_id
from kbatch_dask.backends.kubernetes import annotations as names
from kbatch_dask.backends.kubernetes import manifests as m
from kbatch_dask.backends.kubernetes import pod_settings as session
from kbatch_dask.backends.kubernetes.claims import ClaimPlan, read_attach_errors
from kbatch_dask.backends.kubernetes.client import KubeAPI, Timeouts
from kbatch_dask.backends.kubernetes.dry_run import dry_run_yaml
from kbatch_dask.backends.kubernetes.pod_logs import pod_logs
from kbatch_dask.backends.kubernetes.slugs import is_dns_label
from kbatch_dask.backends.kubernetes.snapshot import gone, read_snapshot
from kbatch_dask.backends.kubernetes.status import job_record, pods_by_job
from kbatch_dask.backends.outputs import LogStream, log_files, read_files, read_whole
from kbatch_dask.errors import BackendError, BadInput, GatewayError, JobNotFound, KbatchWarning, KubeError
from kbatch_dask.gateway import GatewayClient, GatewaySettings, configured_gateway
from kbatch_dask.records import JobRecord, JobState, now
from kbatch_dask.report import Saved, saved_beside
from kbatch_dask.settings import Settings
from kbatch_dask.spec import JobSpec, current_user, expand_pattern
from kbatch_dask.spec.environment import exported_environment
from kbatch_dask.spec.mail import unsent
from kbatch_dask.spec.script import read_script

NAME = "kubernetes"
ID_ATTEMPTS = 5
Objects = list[dict[str, Any]]  # raw API objects (`list` is a method name below)


def job_options(config: Settings) -> m.JobOptions:
    """Site settings for every job, from the ``kbatch.kubernetes`` settings."""
    from kbatch_dask.spec.units import parse_size

    kube = config.kubernetes
    return m.JobOptions(
        ttl_seconds=round(kube.ttl_days * 86400),
        # The driver must get SIGTERM → grace → SIGKILL of the script done, and
        # then stop the cluster, before the kubelet kills it.
        termination_grace=max(kube.termination_grace, int(config.driver.kill_grace) + 30),
        cpus=kube.cpus or None,
        memory=parse_size(kube.memory, "kubernetes.memory") if kube.memory else None,
        service_account=kube.service_account or None,
        start_margin=kube.start_margin,
        queue_name=kube.queue_name or None,
    )


class KubernetesBackend:
    name = NAME
    # Whether submit resumes the Job itself; the kbatch-dask service's admission
    # (service/admission.py) resumes its jobs when their turn comes.
    resumes = True

    def __init__(self, api: KubeAPI | None = None, user: str | None = None, config: Settings | None = None) -> None:
        self._api = api
        self._api_error: KubeError | None = None
        self.user = user or current_user()
        self.config = config or settings.load()
        self.context = self.config.kubernetes.context or None
        self.page_size = self.config.kubernetes.page_size
        self._namespace: Detected[str] | None = None
        self._notebook: session.NotebookSession | None = None

    @property
    def api(self) -> KubeAPI:
        """The client, made on first use (importing ``kubernetes`` then)."""
        if self._api is None:
            if self._api_error is not None:
                raise self._api_error
            try:
                self._api = KubeAPI(self.context, Timeouts.of(self.config.kubernetes))
            except KubeError as exc:
                self._api_error = exc  # no credentials now means none for this backend's life
                raise
        return self._api

    @property
    def namespace(self) -> str:
        return self.detected_namespace.value

    @property
    def detected_namespace(self) -> Detected[str]:
        """The namespace jobs go to, and where that came from."""
        if self._namespace is None:
            configured = self.config.kubernetes.namespace or None
            context_namespace = context_name = None
            if not configured:
                with contextlib.suppress(KubeError):
                    context_namespace, context_name = self.api.context_namespace, self.api.context_name
            self._namespace = session.detect_namespace(configured, context_namespace, context_name)
        return self._namespace

    # -- what a job takes from this session -----------------------------------

    def notebook_session(self) -> session.NotebookSession:
        """The notebook pod this session runs in (or why it cannot be read: then only
        the admin's pod template applies to jobs) and the claims it mounts, read once."""
        if self._notebook is None:
            pod = self.notebook_pod()
            claims = session.notebook_claims(pod, lambda ns, name: self.api.read_claim(ns, name))
            self._notebook = session.NotebookSession(pod, claims, self.config.kubernetes.rwo_home)
        return self._notebook

    def notebook_pod(self) -> session.NotebookPod:
        """The pod this session runs in (by ``$HOSTNAME``), or why it cannot be read."""
        return session.read_notebook_pod(self.namespace, os.environ, lambda ns, name: self.api.read_pod(ns, name))

    def detect_image(self, option: str | None, pod: session.NotebookPod) -> Detected[str]:
        """The image of a job submitted with ``--image option`` from ``pod``, and where it came from."""
        return session.detect_image(option, os.environ, self.config.kubernetes.image or None, pod.image)

    def job_mounts(self, pod: session.NotebookPod, plan: ClaimPlan | None = None) -> list[Mapping[str, Any]]:
        """The volume mounts a job submitted from ``pod`` gets (``plan`` applied)."""
        return session.job_mounts(pod, self._pod_template(), self.config.kubernetes.service_account or None, plan)

    def cloud_identity(self, pod: session.NotebookPod) -> tuple[str | None, str | None, list[str]]:
        """The notebook's service account, the one configured for jobs, and the
        session's variables a job from ``pod`` would not get (they point at its files)."""
        configured = self.config.kubernetes.service_account or None
        settings = session.settings_from_pod(pod.pod, configured)
        return (
            settings.get("service_account"),
            configured,
            session.unshared_variables(os.environ, settings["unshared_paths"]),
        )

    def _pod_template(self) -> Mapping[str, Any]:
        return self.config.kubernetes.pod_template

    def _pod_settings(self, spec: JobSpec) -> m.PodSettings:
        notebook = self.notebook_session()
        pod, plan = notebook.pod, notebook.plan
        return session.detect(
            namespace=self.namespace,
            image=self.detect_image(spec.image, pod).value,
            template=self._pod_template(),
            workdir=spec.workdir,
            pod=pod,
            service_account=self.config.kubernetes.service_account or None,
            plan=plan,
        )

    # -- submit ---------------------------------------------------------------

    def manifests(
        self,
        spec: JobSpec,
        environment: Mapping[str, str],
        job_id: str,
        pod: m.PodSettings | None = None,
        script: str | bytes | None = None,
    ) -> m.Manifests:
        """The objects :meth:`submit` would create (the Job created suspended);
        ``pod``: the session's settings, detected unless given; ``script``: the
        script's snapshot (a resubmission's), else read from ``spec.script``."""
        self.check(spec)
        pod = pod or self._pod_settings(spec)
        output = expand_pattern(spec.output, job_id, spec.name, spec.user, spec.workdir)
        error = expand_pattern(spec.error, job_id, spec.name, spec.user, spec.workdir) if spec.error else None
        result = None
        if spec.kind == "function":
            if script is None:
                with open(spec.script, "rb") as f:
                    script = f.read()
            # The pod writes the result where this session can read it: next to the output file.
            result = session.output_on_volume(os.path.join(os.path.dirname(output), f".kbatch-{job_id}.result"), pod)
            if result is None:
                raise BadInput(
                    f"a function job's result must be written where you can read it: {output} is not on a volume "
                    "the job's pod shares with this session; pass output= a path on your home volume"
                )
        elif script is None:
            script = read_script(spec.script)
        return m.build_manifests(
            spec,
            job_id,
            pod,
            job_options(self.config),
            env=session.job_environment(environment, os.environ, pod.unshared_paths),
            script=script,
            submitted=now().isoformat(timespec="seconds"),
            output=session.output_on_volume(output, pod),
            error=session.output_on_volume(error, pod),
            result=result,
            suspend=True,
        )

    def check(self, spec: JobSpec) -> tuple[KbatchWarning, ...]:
        if spec.workers and configured_gateway() is None:
            raise BadInput(
                "a Kubernetes job's Dask cluster needs a Dask-Gateway the cluster can reach: "
                "set gateway.address (e.g. DASK_GATEWAY__ADDRESS), or use --dask-workers 0"
            )
        if spec.dependency and self.resumes:
            raise BadInput(
                f"--dependency {spec.dependency}: the direct Kubernetes backend has nothing to wait with; "
                "use the kbatch-dask service (--backend hub) or the local backend"
            )
        # The pod's resources enforce --cpus, --memory and --gpus; what is said is
        # about the volumes the job cannot share with the notebook.
        mail = unsent(spec.mail_type, self.name)  # the service, which mails its jobs, drops these warnings
        return (*(KbatchWarning(w) for w in self.notebook_session().plan.warnings), *((mail,) if mail else ()))

    def gateway(self, *, start: bool = False, probe: bool = True) -> GatewaySettings | None:
        """The configured gateway: pods cannot reach a gateway on this machine."""
        return configured_gateway()

    def clusters_without_gateway(self) -> dict[str, int]:
        """None: the configured gateway's clusters are the gateway's to tell."""
        return {}

    def end_cluster(self, name: str) -> None:
        raise BackendError(f"cluster {name}: the Kubernetes backend stops clusters only through their gateway")

    def dry_run(self, spec: JobSpec, environment: Mapping[str, str]) -> str:
        """What :meth:`submit` would create, as YAML documents; creates nothing.

        Exactly the objects sent, except that Secret values are redacted, and
        the ownerReferences (which need the created Job's uid) are not shown.
        """
        objects = self.manifests(spec, environment, new_job_id()).all()
        resumed = (
            "by Kueue when its queue has quota"
            if self.config.kubernetes.queue_name
            else "once the ConfigMap and Secret exist"
        )
        return dry_run_yaml(objects, resumed)

    def resubmit(self, job_id: str, credentials: Mapping[str, str], environ: Mapping[str, str]) -> JobRecord:
        job = self._job(job_id)  # JobNotFound for no such job
        try:
            config_map = self.api.read_config_map(self.namespace, m.job_name(self.user, job_id))
        except KubeError as exc:
            raise gone(job_id) if exc.status == 404 else exc from None
        old = read_snapshot(job_id, config_map, job)  # checked as any spec by manifests()
        environment = exported_environment(old.spec.export, old.spec.env, environ)  # as a submit makes it
        return self.submit(old.spec, {**environment, **credentials}, old.script)

    def submit(self, spec: JobSpec, environment: dict[str, str], script: str | bytes | None = None) -> JobRecord:
        """Submit ``spec``; ``script``: its snapshot (a resubmission's), else read from ``spec.script``."""
        # The Job is created suspended, so that its pod cannot start before the
        # ConfigMap and Secret it mounts exist; those are created next, owned by
        # the Job (they need its uid), and only then is the Job resumed. If any
        # step fails, everything created so far is deleted again; if the
        # submitter itself dies half-way, what remains is a suspended Job that
        # `kbatch queue` shows (PENDING, Suspended) and `kbatch cancel` removes.
        # Where Kueue manages the namespace (kbatch.kubernetes.queue-name), Kueue
        # owns `suspend`: it resumes the Job when the queue has quota, and a pod
        # started before its ConfigMap and Secret exist waits for them.
        pod = self._pod_settings(spec)
        for _ in range(ID_ATTEMPTS):
            objects = self.manifests(spec, environment, new_job_id(), pod, script)  # BadInput before anything exists
            api, namespace = self.api, self.namespace
            try:
                job = api.create_job(namespace, objects.job)
                break
            except KubeError as exc:
                if exc.status != 409:  # 409: that name is taken; draw another id
                    raise
        else:
            raise KubeError(f"could not find a free job name in namespace {namespace!r}")
        name = job["metadata"]["name"]
        # Owned objects are deleted explicitly too: nothing is left even where
        # garbage collection is slow or off.
        undo: list[Callable[[], None]] = [lambda: api.delete_job(namespace, name)]
        try:
            api.create_config_map(namespace, m.owned_by(objects.config_map, job))
            undo.append(lambda: api.delete_config_map(namespace, name))
            api.create_secret(namespace, m.owned_by(objects.secret, job))
            undo.append(lambda: api.delete_secret(namespace, name))
            if self.resumes and not self.config.kubernetes.queue_name:
                job = api.patch_job(namespace, name, {"spec": {"suspend": False}})
        except BaseException:
            for step in reversed(undo):
                with contextlib.suppress(KubeError):
                    step()
            raise
        return job_record(job, [])

    # -- read -----------------------------------------------------------------

    def list(self, *, ended_since: datetime | None = None) -> list[JobRecord]:
        selector = m.user_selector(self.user)
        jobs = self.api.list_jobs(self.namespace, selector, self.page_size)
        listed = self.api.list_pods(self.namespace, selector) if jobs else []
        pods, attach = pods_by_job(listed), self._attach_errors(listed)
        records = []
        for job in jobs:
            job_id = ((job.get("metadata") or {}).get("labels") or {}).get(names.LABEL_JOB_ID, "")
            record = job_record(job, pods.get(job_id, []), attach)
            if ended_since and record.state.is_terminal() and (record.finished or record.submitted) < ended_since:
                continue
            records.append(record)
        records.sort(key=lambda r: r.submitted)
        return records

    def _job(self, job_id: str) -> dict[str, Any]:
        if not is_dns_label(job_id):
            raise JobNotFound(job_id)  # not an id this backend makes
        try:
            return self.api.get_job(self.namespace, m.job_name(self.user, job_id))
        except KubeError as exc:
            if exc.status == 404:
                raise JobNotFound(job_id) from None
            raise

    def _pods(self, job_id: str) -> Objects:
        selector = f"{m.user_selector(self.user)},{names.LABEL_JOB_ID}={job_id}"
        return self.api.list_pods(self.namespace, selector)

    def get(self, job_id: str) -> JobRecord:
        pods = self._pods(job_id)
        return job_record(self._job(job_id), pods, self._attach_errors(pods))

    def _attach_errors(self, pods: Objects) -> dict[str, str]:
        return read_attach_errors(pods, lambda selector: self.api.list_events(self.namespace, selector))

    # -- logs -----------------------------------------------------------------

    def logs(
        self, job_id: str, follow: bool = False, stream: LogStream = "output", tail: int | None = None
    ) -> Iterator[bytes]:
        """The driver pod's log, which holds the job's stdout and stderr (``output``
        and ``all`` alike: a pod has one log), each attempt's, with ``follow`` until
        the job ends; the output file when the pod is gone and the file is readable.
        ``error``: the error file the pod writes on a volume this session shares."""
        record = self.get(job_id)
        if stream == "error":
            paths = log_files(job_id, record.output, record.error, stream)  # BadInput now, without an error file
            return read_files(paths, tail=tail, follow=follow, ended=lambda: self._ended(job_id))
        return pod_logs(self.api, self.namespace, record, follow, stream, tail, self.get, self._pods)

    def _ended(self, job_id: str) -> bool:
        try:
            return self.get(job_id).state.is_terminal()
        except JobNotFound:
            return True

    def report(self, record: JobRecord) -> Saved | None:
        """The report the driver wrote beside the job's output file."""
        return saved_beside(record)

    def result(self, job_id: str) -> bytes | None:
        """A function job's pickled result, from the file its pod wrote on a shared volume."""
        return read_whole((self._job(job_id)["metadata"].get("annotations") or {}).get(names.ANN_RESULT))

    def hold(self, job_id: str) -> JobRecord:
        raise BadInput(
            "kbatch hold: the direct Kubernetes backend starts every job at once; "
            "use the kbatch-dask service (--backend hub) or the local backend"
        )

    def release(self, job_id: str) -> JobRecord:
        raise BadInput("kbatch release: the direct Kubernetes backend holds no job (see kbatch hold)")

    # -- cancel ---------------------------------------------------------------

    def cancel(self, job_id: str) -> JobRecord:
        record = self.get(job_id)
        if record.state.is_terminal():
            return record
        try:
            # Foreground: the Job stays (CANCELLED in the queue) while its pod stops the
            # script and the cluster, and the driver records the end on it.
            self.api.delete_job(self.namespace, m.job_name(self.user, job_id), "Foreground")
        except KubeError as exc:
            if exc.status != 404:
                raise
        reason = "cancelled by user"
        # The driver stops the cluster when its pod is terminated; stopping it
        # here too covers a driver that cannot (killed, node gone).
        if record.dask and record.dask.cluster:
            try:
                settings = self.gateway()
                if settings:
                    with GatewayClient(settings) as client:
                        client.stop_cluster(record.dask.cluster)
            except GatewayError as exc:
                reason = f"cancelled by user; the cluster could not be stopped: {exc}"
        return record.replace(state=JobState.CANCELLED, reason=reason, finished=now())
