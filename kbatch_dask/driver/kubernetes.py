"""The driver of a Kubernetes job, PID 1 of the job's pod.

``python -m kbatch_dask.driver --kubernetes JOBDIR [--output PATH] [--error PATH]``

``JOBDIR`` is the job's ConfigMap, mounted (``spec.json``, ``job.json`` and the
script). The job's output goes to the pod's log and, when ``--output`` is
given (the submitter passes it only when the path lies on a volume the
notebook sees too), also to that file. Progress is recorded as annotations on
the job's own Job (:class:`KubeReporter`); without permission to patch it the
driver says so once in its log and carries on. A job of the kbatch-dask service
(its Secret names the service and holds the job's credential) reports to the
service instead (:class:`~kbatch_dask.driver.service.ServiceReporter`), and
uploads its result and files to it as it ends (:mod:`~kbatch_dask.driver.uploads`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping
from typing import IO

from kbatch_dask import settings
from kbatch_dask.backends.hub.protocol import CREDENTIAL_VAR, MAX_LOG_BYTES_VAR, SERVICE_URL_VAR
from kbatch_dask.backends.kubernetes import annotations as names
from kbatch_dask.backends.kubernetes import manifests as m
from kbatch_dask.backends.kubernetes.client import KubeAPI, Timeouts
from kbatch_dask.backends.kubernetes.pod_settings import detect_namespace
from kbatch_dask.backends.kubernetes.status import disruption
from kbatch_dask.driver import metering, timing
from kbatch_dask.driver.leftovers import Leftovers
from kbatch_dask.driver.reporting import Reporter
from kbatch_dask.driver.service import ServiceReporter
from kbatch_dask.driver.supervisor import Supervisor
from kbatch_dask.driver.uploads import KeptTail, Uploads
from kbatch_dask.errors import GatewayError, KubeError
from kbatch_dask.gateway import GatewayClient, configured_gateway
from kbatch_dask.records import JobState, now
from kbatch_dask.spec import JobSpec

log = logging.getLogger("kbatch_dask.driver")


class KubeReporter:
    """Records the job's progress as annotations on its own Job."""

    def __init__(
        self,
        api: KubeAPI | None,
        namespace: str,
        job_name: str,
        say: Callable[[str], None],
        pod_name: str | None = None,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.job_name = job_name
        self.pod_name = pod_name
        self.say = say
        self.warned = api is None

    def _annotate(self, values: Mapping[str, str | None]) -> None:
        if self.api is None:
            return
        try:
            self._patch(values)
        except KubeError as exc:
            if not self.warned:
                self.warned = True
                self.say(f"cannot record progress on Job {self.job_name} ({exc}); the job runs on regardless")

    def _patch(self, values: Mapping[str, str | None]) -> None:
        assert self.api is not None
        self.api.patch_job(self.namespace, self.job_name, {"metadata": {"annotations": dict(values)}})

    def started(self) -> None:
        self._annotate({names.ANN_STARTED: now().isoformat(timespec="seconds")})

    def cluster(self, name: str, dashboard: str | None, worker_limit: int | None) -> None:
        limit = None if worker_limit is None else str(worker_limit)
        self._annotate({names.ANN_CLUSTER: name, names.ANN_DASHBOARD: dashboard, names.ANN_WORKER_LIMIT: limit})

    def owned(self, clusters: tuple[str, ...]) -> None:
        self._annotate({names.ANN_OWNED_CLUSTERS: ",".join(clusters)})

    def finished(self, state: JobState, exit_code: int | None, reason: str | None) -> None:
        """The job's end on its Job; called once its cluster has stopped, so that an
        API that does not answer costs the cluster nothing (each call is bounded by
        ``kbatch.kubernetes.api-*-timeout``)."""
        if self.api is None:
            return
        values = {
            names.ANN_STATE: state.value,
            names.ANN_EXIT_CODE: None if exit_code is None else str(exit_code),
            names.ANN_REASON: reason,
            names.ANN_FINISHED: now().isoformat(timespec="seconds"),
        }
        try:
            self._patch(values)
        except KubeError as exc:
            if exc.status == 404:  # deleted (by a cancel that did not wait, or by hand): nothing to record on
                self.say(f"Job {self.job_name} is gone; the job's end ({state.value}) is not recorded on it")
            elif not self.warned:  # said once
                self.warned = True
                self.say(f"cannot record the job's end ({state.value}) on Job {self.job_name} ({exc})")

    def cancel_requested(self) -> bool:
        """True once the Job is deleted or being deleted (``kbatch cancel``)."""
        if self.api is None:
            return False
        try:
            job = self.api.get_job(self.namespace, self.job_name)
        except KubeError as exc:
            return exc.status == 404
        return bool((job.get("metadata") or {}).get("deletionTimestamp"))

    def failure_requested(self) -> str | None:
        """Never: a pod's gateway is not stopped by kbatch."""
        return None

    def disrupted(self) -> str | None:
        """The reason of this pod's ``DisruptionTarget`` condition (an eviction by a
        drain or the autoscaler, a preemption): the Job replaces the pod without
        counting a retry. None when not disrupted, or when the pod cannot be read."""
        if self.api is None or not self.pod_name:
            return None
        try:
            return disruption(self.api.read_pod(self.namespace, self.pod_name))
        except KubeError:
            return None


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m kbatch_dask.driver")
    parser.add_argument("--kubernetes", dest="job_dir", required=True, help="the job's mounted ConfigMap")
    parser.add_argument("--output", help="also write the job's output to this file")
    parser.add_argument("--error", help="write the job's stderr to this file")
    parser.add_argument("--result", help="write a function job's pickled result to this file")
    return parser.parse_args(argv)


def _connect(context: str | None, timeouts: Timeouts, say: Callable[[str], None]) -> KubeAPI | None:
    try:
        return KubeAPI(context, timeouts)
    except KubeError as exc:
        say(f"cannot reach the Kubernetes API ({exc}); the job runs on without recording its progress")
        return None


def _configured_gateway() -> GatewayClient:
    settings = configured_gateway()
    if settings is None:
        raise GatewayError("no Dask-Gateway configured for this job (gateway.address, DASK_GATEWAY__ADDRESS)")
    return GatewayClient(settings)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s kbatch: %(message)s", stream=sys.stdout)
    args = parse_args(argv)
    config = settings.load()
    with open(os.path.join(args.job_dir, m.SPEC_KEY)) as f:
        spec = JobSpec.from_dict(json.load(f))
    with open(os.path.join(args.job_dir, m.JOB_KEY)) as f:
        job = json.load(f)
    # The pod starts in the submit directory when that is on a volume, else
    # in the image's working directory: the script runs where the pod starts.
    spec = dataclasses.replace(spec, workdir=os.getcwd())
    namespace = os.environ.get("KBATCH_DASK_NAMESPACE") or detect_namespace(None, None).value
    runner_env = {"KBATCH_DASK_RESULT_FILE": args.result} if args.result else {}
    notebook = spec.executed_notebook(job["id"], os.path.dirname(args.output) if args.output else spec.workdir)
    if notebook:
        runner_env["KBATCH_DASK_NOTEBOOK_OUTPUT"] = notebook
    script = os.path.join(args.job_dir, job["script"])
    meter = metering.for_job(job["id"], args.output, spec.kind, script, config.report, log.info)
    reporter: Reporter
    service_url, credential = os.environ.get(SERVICE_URL_VAR), os.environ.pop(CREDENTIAL_VAR, None)
    echo: IO[bytes] = sys.stdout.buffer
    if service_url and credential:
        # A job of the kbatch-dask service: no Kubernetes credentials in this pod. The
        # credential was popped: the job's own code never sees it. It uploads what the
        # service serves once the job has ended (the service sees none of the user's
        # files); without an output file on a volume, the output is the pod log's tail.
        echo = kept = KeptTail(echo, int(os.environ.get(MAX_LOG_BYTES_VAR) or config.service.archive.max_log_bytes))
        uploads = Uploads.of(args.output, args.error, args.result, os.environ, config.service.archive, kept)
        uploads = dataclasses.replace(uploads, report=meter.report if meter else None)
        pod_name = os.environ.get("KBATCH_DASK_POD_NAME")
        reporter = ServiceReporter(service_url, job["id"], credential, log.info, pod_name=pod_name, uploads=uploads)
    else:
        reporter = KubeReporter(
            _connect(config.kubernetes.context, Timeouts.of(config.kubernetes), log.info),
            namespace,
            job["job_name"],
            log.info,
            pod_name=os.environ.get("KBATCH_DASK_POD_NAME"),
        )
    supervisor = Supervisor(
        spec=spec,
        job_id=job["id"],
        script=script,
        environment=os.environ,
        reporter=reporter,
        gateway=_configured_gateway,
        output=args.output,
        error=args.error,
        runner_env=runner_env,
        **timing(config.driver),
        leftovers=Leftovers(grace=config.driver.kill_grace),
        log=log.info,
        echo=echo,
        metering=meter,
    )
    return supervisor.run()
