"""The driver of a local job: reads its job directory, reports into its record.

A job with ``--dependency`` (or held) first waits for it (:mod:`.queue`).
A job with ``--retries N`` runs up to N more times after a failed attempt (see
:func:`~kbatch_dask.driver.ending.retried`), each attempt a complete
:class:`Supervisor` run with a cluster of its own; its record shows the attempt.
"""

from __future__ import annotations

import logging
import os
import socket
import sys

from kbatch_dask import settings
from kbatch_dask.backends.local import limits
from kbatch_dask.backends.local.backend import LocalBackend
from kbatch_dask.backends.local.store import JobDir
from kbatch_dask.driver import metering, timing
from kbatch_dask.driver.leftovers import Leftovers
from kbatch_dask.driver.queue import wait_to_start
from kbatch_dask.driver.supervisor import Supervisor
from kbatch_dask.gateway import GatewayClient
from kbatch_dask.records import DaskInfo, JobState, now

log = logging.getLogger("kbatch_dask.driver")


class LocalReporter:
    """Records progress in the job's ``record.json``."""

    def __init__(self, jobdir: JobDir, attempt: int, attempts: int) -> None:
        self.jobdir = jobdir
        self.attempt = attempt
        self.label = f"attempt {attempt} of {attempts}" if attempts > 1 else None

    def started(self) -> None:
        self.jobdir.update_record(
            state=JobState.RUNNING,
            started=now(),
            pid=os.getpid(),
            host=socket.gethostname(),
            attempt=self.attempt,
            reason=self.label,
        )

    def retrying(self, reason: str | None) -> None:
        """This attempt failed for ``reason``; the next one starts now."""
        self.jobdir.update_record(state=JobState.PENDING, reason=f"retrying after {reason} ({self.label})")

    def cluster(self, name: str, dashboard: str | None, worker_limit: int | None) -> None:
        with self.jobdir.locked():
            record = self.jobdir.read_record()
            dask = record.dask or DaskInfo(workers="?")
            changes = dask.replace(cluster=name, dashboard=dashboard, worker_limit=worker_limit or dask.worker_limit)
            self.jobdir.write_record(record.replace(dask=changes))

    def owned(self, clusters: tuple[str, ...]) -> None:
        self.jobdir.update_record(owned_clusters=clusters)

    def finished(self, state: JobState, exit_code: int | None, reason: str | None) -> None:
        self.jobdir.update_record(state=state, exit_code=exit_code, reason=reason, finished=now())

    def cancel_requested(self) -> bool:
        return self.jobdir.cancel_requested

    def failure_requested(self) -> str | None:
        return self.jobdir.failure_requested

    def disrupted(self) -> str | None:
        return None  # a local job's process is nobody else's to move


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    config = settings.load()
    jobdir = JobDir(os.path.abspath(argv[0]))
    spec = jobdir.load_spec()
    record = jobdir.read_record()
    home = os.environ.get("KBATCH_DASK_HOME") or os.path.dirname(os.path.dirname(jobdir.path))
    if not wait_to_start(jobdir, spec, LocalBackend(home, config)):
        return 0  # ended before it started (cancelled, or a dependency never satisfied)
    record = jobdir.read_record()
    output = record.output or os.path.join(spec.workdir, f"kbatch-{jobdir.id}.out")
    runner_env = {"KBATCH_DASK_RESULT_FILE": jobdir.file("result.pkl")}
    notebook = spec.executed_notebook(jobdir.id, os.path.dirname(output))
    if notebook:
        runner_env["KBATCH_DASK_NOTEBOOK_OUTPUT"] = notebook
    environment = jobdir.load_environment()
    runner_env.update(limits.placement(spec, limits.this_machine(environment)).env)
    for attempt in range(1, spec.retries + 2):
        reporter = LocalReporter(jobdir, attempt, spec.retries + 1)
        supervisor = Supervisor(
            spec=spec,
            job_id=jobdir.id,
            script=jobdir.script_path,
            environment=environment,
            reporter=reporter,
            gateway=lambda: _embedded_or_configured(home, config),
            output=output,
            error=record.error,
            runner_env=runner_env,
            **timing(config.driver),
            leftovers=Leftovers(grace=config.driver.kill_grace),
            log=log.info,
            attempt=attempt,
            memory_limit=spec.memory,
            metering=metering.for_job(jobdir.id, output, spec.kind, jobdir.script_path, config.report, log.info),
        )
        exit_code = supervisor.run()
        if not supervisor.again:
            break
        assert supervisor.end is not None  # run() ended it
        reporter.retrying(supervisor.end.reason)
        log.info(f"attempt {attempt} failed ({supervisor.end.reason}); running the job again")
    return exit_code


def _embedded_or_configured(home: str, config: settings.Settings) -> GatewayClient:
    found = LocalBackend(home, config).gateway(start=True)
    assert found is not None  # with start=True the local backend always has a gateway
    return GatewayClient(found)
