"""The local backend: each job's driver is a detached process on this machine.

The driver runs in its own session with stdin from /dev/null, so it survives
the terminal or notebook that submitted it. ``cancel`` escalates SIGTERM →
grace → SIGKILL to the job's process group. A driver that vanished without
recording an end is reported ``LOST``.

What only submitting needs (the spec's helpers, the machine's limits,
``subprocess``) is imported in :meth:`LocalBackend.check` and
:meth:`LocalBackend.submit`, and the report's module in :meth:`LocalBackend.report`:
the queue, which reads this module on every ``kqueue``, does without.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kbatch_dask import settings
from kbatch_dask.backends import Detected
from kbatch_dask.backends.local import cluster_processes, embedded_gateway, reads
from kbatch_dask.backends.local.store import JobDir, JobStore
from kbatch_dask.backends.outputs import LogStream, check_writable, log_files, read_files
from kbatch_dask.errors import BackendError, BadInput, Conflict, GatewayError, JobNotFound, KbatchWarning
from kbatch_dask.gateway import GatewayClient, GatewaySettings, configured_gateway
from kbatch_dask.procs import killpg, pid_alive
from kbatch_dask.records import DaskInfo, JobRecord, JobState, now
from kbatch_dask.settings import Settings
from kbatch_dask.users import current_user

if TYPE_CHECKING:
    from kbatch_dask.report import Saved
    from kbatch_dask.spec import JobSpec

DRIVER_MODULE = "kbatch_dask.driver"


def detect_home(local: settings.Local) -> Detected[str]:
    """The state directory: ``kbatch.local.home``, else ``$KBATCH_DASK_HOME``,
    else ``$XDG_DATA_HOME/kbatch-dask``, else ``~/.local/share/kbatch-dask``."""
    if local.home:
        return Detected(os.path.abspath(os.path.expanduser(local.home)), "kbatch.local.home")
    if os.environ.get("KBATCH_DASK_HOME"):
        return Detected(os.path.abspath(os.path.expanduser(os.environ["KBATCH_DASK_HOME"])), "$KBATCH_DASK_HOME")
    if os.environ.get("XDG_DATA_HOME"):
        return Detected(os.path.join(os.environ["XDG_DATA_HOME"], "kbatch-dask"), "$XDG_DATA_HOME")
    return Detected(os.path.join(os.path.expanduser("~"), ".local", "share", "kbatch-dask"), "the default")


class LocalBackend:
    name = "local"

    def __init__(self, home: str | None = None, config: Settings | None = None) -> None:
        self.config = config or settings.load()
        self.home = home or detect_home(self.config.local).value
        self.store = JobStore(self.home)

    def gateway(self, *, start: bool = False, probe: bool = True) -> GatewaySettings | None:
        """The configured gateway, else the embedded one of this state directory
        (started if needed with ``start``; None when it does not run). Without
        ``probe``, the embedded gateway whose process runs, not asked for its
        health: the caller's request, refused or failed, tells as well."""
        configured = configured_gateway()
        if configured is not None:
            return configured
        user = current_user()
        if not (probe or start):
            running = embedded_gateway.recorded(self.home, user)
            return running.settings() if running else None
        server = embedded_gateway.status(self.home, user)
        if start and server is None:
            started = embedded_gateway.ensure_running(self.home, user, self.config.embedded_gateway).settings()
            self._stop_clusters_of_ended_jobs(started)
            return started
        return server.settings() if server else None

    def _stop_clusters_of_ended_jobs(self, settings: GatewaySettings) -> None:
        """A (re)started gateway finds the clusters of its database whose processes
        survived it, and would run them on: stop those whose job has ended."""
        from kbatch_dask.reaper import stale_clusters

        try:
            with GatewayClient(settings) as client:
                for action in stale_clusters(self.list(), client.list_clusters()):
                    client.stop_cluster(action.cluster)
        except GatewayError:
            pass  # the next `kbatch gc` stops them

    def clusters_without_gateway(self) -> dict[str, int]:
        if configured_gateway() is not None:
            return {}
        return {name: len(procs) for name, procs in self._cluster_processes().items()}

    def end_cluster(self, name: str) -> None:
        cluster_processes.end(self._cluster_processes().get(name, []))

    def _cluster_processes(self) -> dict[str, list[Any]]:
        return cluster_processes.find(os.path.join(embedded_gateway.gateway_dir(self.home), "clusters"))

    # -- submit ---------------------------------------------------------------

    def check(self, spec: JobSpec) -> tuple[KbatchWarning, ...]:
        from kbatch_dask.backends.local import limits
        from kbatch_dask.gateway.options import check_worker_count
        from kbatch_dask.spec.dependency import Dependency
        from kbatch_dask.spec.environment import exported_environment
        from kbatch_dask.spec.mail import unsent

        if spec.kind == "notebook" and importlib.util.find_spec("papermill") is None:
            raise BadInput(f"{spec.script}: running notebooks needs papermill: pip install 'kbatch-dask[notebooks]'")
        if spec.dependency:  # waited for by the job's driver (driver/queue.py)
            Dependency.parse(spec.dependency).check_known(self._known)
        if spec.workers and configured_gateway() is None:  # the embedded gateway, whose limit is ours
            limit = self.config.embedded_gateway.cluster_max_workers
            check_worker_count(str(spec.workers), spec.workers.maximum, limit)
        # The driver finds the machine as the job's environment shows it (CUDA_VISIBLE_DEVICES).
        machine = limits.this_machine(exported_environment(spec.export, spec.env, os.environ))
        warnings = (limits.warning(limits.placement(spec, machine).unenforced), unsent(spec.mail_type, self.name))
        return tuple(w for w in warnings if w)

    def dry_run(self, spec: JobSpec, environment: Mapping[str, str]) -> str:
        """The validated spec a submission would store (the environment is not shown)."""
        import yaml

        document = {"backend": self.name, "spec": spec.to_dict()}
        return str(yaml.safe_dump(document, sort_keys=False, default_flow_style=False)).rstrip("\n")

    def submit(self, spec: JobSpec, environment: dict[str, str]) -> JobRecord:
        return self._submit(spec, environment)

    def resubmit(self, job_id: str, credentials: Mapping[str, str], environ: Mapping[str, str]) -> JobRecord:
        old = self.store.job(job_id)
        spec = old.load_spec()
        self.check(spec)  # a dependency on a job since removed, a papermill since uninstalled
        return self._submit(spec, {**old.load_environment(), **credentials}, script=old.script_path)

    def _submit(self, spec: JobSpec, environment: dict[str, str], script: str | None = None) -> JobRecord:
        """Submit ``spec``, its script snapshotted from ``script`` (a resubmission's: the old
        job's snapshot), else from ``spec.script``."""
        import subprocess

        from kbatch_dask.spec import expand_pattern
        from kbatch_dask.spec.dependency import WAITING

        def first_record(job_id: str) -> JobRecord:
            # The files are known once the id is: refused now, before the job exists, if unwritable.
            output = expand_pattern(spec.output, job_id, spec.name, spec.user, spec.workdir)
            error = expand_pattern(spec.error, job_id, spec.name, spec.user, spec.workdir) if spec.error else None
            check_writable("--output", output)
            if error:
                check_writable("--error", error)
            return JobRecord(
                id=job_id,
                name=spec.name,
                user=spec.user,
                backend=self.name,
                state=JobState.PENDING,
                reason=WAITING if spec.dependency else None,
                submitted=now(),
                script=spec.script,
                args=spec.args,
                output=output,
                comment=spec.comment,
                host=os.uname().nodename,  # socket.gethostname(), without importing socket
                dask=DaskInfo(str(spec.workers), worker_cores=spec.worker_cores, worker_memory=spec.worker_memory)
                if spec.workers
                else None,
                error=error,
                workdir=spec.workdir,
                time_limit=spec.time_limit,
                notebook_output=spec.executed_notebook(job_id, os.path.dirname(output)),
                cpus=spec.cpus,
                memory=spec.memory,
                gpus=spec.gpus,
                dependency=spec.dependency,
            )

        jobdir = self.store.create(spec, environment, first_record, script)
        env = dict(environment)
        env["KBATCH_DASK_HOME"] = self.home
        try:
            with open(jobdir.file("driver.log"), "ab") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", DRIVER_MODULE, jobdir.path],
                    # Not the job's working directory (its runner's): ``-m`` puts the
                    # directory it starts in first on sys.path, and a user's copy.py
                    # there would be the driver's. The job's directory holds no module.
                    cwd=jobdir.path,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        except OSError as exc:
            self.store.remove(jobdir)
            raise BackendError(f"could not start the job's driver: {exc}") from None
        # The driver may already be updating the record: merge under the lock.
        with jobdir.locked():
            record = jobdir.read_record()
            if record.pid is None:
                record = record.replace(pid=proc.pid)
                jobdir.write_record(record)
        return record

    # -- read -----------------------------------------------------------------

    def get(self, job_id: str) -> JobRecord:
        return self._checked(self.store.job(job_id))

    def list(self, *, ended_since: datetime | None = None) -> list[JobRecord]:
        # Ended jobs come from the index (only the days asked for); records are
        # read only for the other directories: active jobs, and any whose end the
        # index missed, which are indexed now (see index.py). Which directories
        # there are is kept between calls (see listing_cache.py).
        dirs = self.store.job_dirs()  # before the index: a job that ends meanwhile is in one or the other
        ended = self.store.index.records(ended_since)
        read = reads.active(dirs, ended, self.store.jobs_dir, self._checked)
        if read is None:  # a kept listing's job has ended since: list again
            dirs = self.store.job_dirs(fresh=True)
            read = reads.active(dirs, ended, self.store.jobs_dir, self._checked)
            assert read is not None
        found, unindexed, still_active = read
        with contextlib.suppress(OSError):  # a read-only state directory: index another time
            self.store.index.add(unindexed)
            self.store.keep(dirs, still_active)
        records = [r for i, r in ended.items() if i not in dirs.gone]  # a removed directory's job is gone
        for record in found:
            if ended_since and record.state.is_terminal() and (record.finished or record.submitted) < ended_since:
                continue
            records.append(record)
        records.sort(key=lambda r: (r.submitted, r.id))
        return records

    def _checked(self, jobdir: JobDir, record: JobRecord | None = None) -> JobRecord:
        """The record (read now unless given), with a vanished driver turned into LOST."""
        record = record or jobdir.read_record()
        if record.state.is_terminal() or record.pid is None or pid_alive(record.pid):
            return record
        # Re-read under the lock: the driver may have finished just now.
        with jobdir.locked():
            record = jobdir.read_record()
            if record.state.is_terminal() or record.pid is None or pid_alive(record.pid):
                return record
            record = record.replace(state=JobState.LOST, reason="driver process vanished", finished=now())
            jobdir.write_record(record)
            return record

    def logs(
        self, job_id: str, follow: bool = False, stream: LogStream = "output", tail: int | None = None
    ) -> Iterator[bytes]:
        jobdir = self.store.job(job_id)
        record = self._checked(jobdir)
        paths = log_files(job_id, record.output, record.error, stream)
        return read_files(paths, tail=tail, follow=follow, ended=lambda: self._checked(jobdir).state.is_terminal())

    def report(self, record: JobRecord) -> Saved | None:
        """The report the driver wrote beside the job's output file."""
        from kbatch_dask.report import saved_beside

        return saved_beside(record)

    def result(self, job_id: str) -> bytes | None:
        jobdir = self.store.job(job_id)
        try:
            with open(jobdir.file("result.pkl"), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def _known(self, job_id: str) -> bool:
        try:
            self.store.job(job_id)
        except JobNotFound:
            return False
        return True

    # -- hold -----------------------------------------------------------------

    def hold(self, job_id: str) -> JobRecord:
        return self._hold(job_id, True)

    def release(self, job_id: str) -> JobRecord:
        return self._hold(job_id, False)

    def _hold(self, job_id: str, held: bool) -> JobRecord:
        """Hold or release a job whose driver still waits (its dependency, or a hold);
        under the job's lock, which the driver takes to decide to start."""
        jobdir = self.store.job(job_id)
        self._checked(jobdir)  # a vanished driver's job is LOST, not held
        verb = "held" if held else "released"
        with jobdir.locked():
            record = jobdir.read_record()
            if record.state is not JobState.PENDING or jobdir.admitted:
                started = "has started" if record.state is JobState.PENDING else f"is {record.state.value}"
                raise Conflict(f"job {job_id} {started}: only a job still waiting to start can be {verb}")
            if not held and not jobdir.held:
                raise Conflict(f"job {job_id} is not held (it is PENDING: {record.reason or 'starting'})")
            jobdir.set_held(held)
            from kbatch_dask.spec.dependency import WAITING

            waiting = WAITING if jobdir.load_spec().dependency else None
            record = record.replace(reason="held" if held else waiting)
            jobdir.write_record(record)
            return record

    # -- cancel ---------------------------------------------------------------

    def cancel(self, job_id: str) -> JobRecord:
        jobdir = self.store.job(job_id)
        record = self._checked(jobdir)
        if record.state.is_terminal():
            return record
        jobdir.request_cancel()
        return self._end(jobdir, record, JobState.CANCELLED, "cancelled by user")

    def fail(self, job_id: str, reason: str) -> JobRecord:
        """End a running job FAILED for ``reason`` (its gateway is about to stop): its
        driver stops its cluster and records the end, as for a cancel."""
        jobdir = self.store.job(job_id)
        record = self._checked(jobdir)
        if record.state.is_terminal():
            return record
        jobdir.request_failure(reason)
        return self._end(jobdir, record, JobState.FAILED, reason)

    def embedded_gateway_jobs(self) -> tuple[JobRecord, ...]:
        """The jobs of this state directory that have not ended and have a Dask
        cluster on the embedded gateway: every job with Dask workers, when no
        gateway is configured (a gateway is configured: jobs use that one)."""
        if configured_gateway() is not None:
            return ()
        return tuple(r for r in self.list(ended_since=now()) if not r.state.is_terminal() and r.dask is not None)

    def _end(self, jobdir: JobDir, record: JobRecord, state: JobState, reason: str) -> JobRecord:
        """Signal the job's driver to end (SIGTERM, grace, SIGKILL to its process group)
        and return its final record; recorded here as ``state`` for ``reason`` when the
        driver could not record its end."""
        import signal  # here: its enums cost the queue, which reads this module, a few ms

        pid = record.pid
        if pid is not None and pid_alive(pid):
            killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + self.config.local.cancel_timeout
            while time.monotonic() < deadline and pid_alive(pid):
                time.sleep(0.1)
            if pid_alive(pid):
                killpg(pid, signal.SIGKILL)
        record = jobdir.read_record()
        if record.state.is_terminal():
            return record
        # The driver could not record its end: stop the cluster and record it here.
        # The job's cluster and those its code made (see kbatch_dask.driver.owned).
        clusters = [*([record.dask.cluster] if record.dask and record.dask.cluster else []), *record.owned_clusters]
        if clusters:
            try:
                settings = self.gateway()
                if settings:
                    with GatewayClient(settings) as client:
                        for name in clusters:
                            client.stop_cluster(name)
            except GatewayError as exc:
                reason = f"{reason}; the cluster could not be stopped: {exc}"
        return jobdir.update_record(state=state, reason=reason, finished=now())
