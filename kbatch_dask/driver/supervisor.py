"""The supervisor: creates the job's cluster, runs the runner, always cleans up.

It is the driver's first process (PID 1 of a pod, the detached local process).
User code runs in a separate runner process, so that a segfault, an OOM kill
or ``os._exit`` there cannot take the cluster's cleanup with it. For a job with a
cluster, the runner is started held (:mod:`.process`) once the gateway answers,
before the cluster is asked for: its start overlaps the cluster's, and it is
released — the cluster's name in its environment — once the cluster runs and the
dead-man's switch is armed; a job that stops before that ends it unreleased.

Its state is why the job is stopping (:class:`~kbatch_dask.driver.ending.StopReason`,
recorded once by the first cause); the job's outcome is computed from it at the
end by :func:`~kbatch_dask.driver.ending.outcome`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import types
from collections.abc import Callable, Iterator, Mapping
from typing import IO

from kbatch_dask.driver import owned
from kbatch_dask.driver.cluster import Interrupted, JobCluster
from kbatch_dask.driver.ending import Outcome, Stop, StopReason, outcome, retried
from kbatch_dask.driver.leftovers import Leftovers, resident_memory
from kbatch_dask.driver.metering import Metering
from kbatch_dask.driver.process import Runner, StartRunner, runner_command, start_process
from kbatch_dask.driver.reporting import Reporter
from kbatch_dask.driver.switch import GRACE, DeadMansSwitch, Grace, switch_factory
from kbatch_dask.driver.tee import OutputUnwritable, note, open_outputs
from kbatch_dask.errors import GatewayError
from kbatch_dask.gateway import GatewayClient
from kbatch_dask.gateway.options import worker_limit
from kbatch_dask.hub import tokens as hub
from kbatch_dask.records import JobState
from kbatch_dask.spec import JobSpec
from kbatch_dask.spec.units import format_size


class Supervisor:
    def __init__(
        self,
        spec: JobSpec,
        job_id: str,
        script: str,
        environment: Mapping[str, str],
        reporter: Reporter,
        gateway: Callable[[], GatewayClient],
        output: str | None,
        error: str | None,
        kill_grace: float = 10.0,
        gateway_retry: float = 60.0,
        start_timeout: float = 120.0,
        runner_env: Mapping[str, str] | None = None,
        switch_grace: Grace | None = GRACE,  # None: no switch
        wait_for_workers_timeout: float = 300.0,
        log: Callable[[str], None] = print,
        echo: IO[bytes] | None = None,
        start_runner: StartRunner = start_process,
        poll: float = 0.2,
        cluster_check_period: float = 5.0,
        cluster_lost_after: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        leftovers: Leftovers | None = None,
        sleep: Callable[[float], None] = time.sleep,
        attempt: int | None = None,
        memory_limit: int | None = None,
        memory_used: Callable[[int], int] = resident_memory,
        metering: Metering | None = None,
    ) -> None:
        self.spec = spec
        self.job_id = job_id
        self.script = script
        self.environment = dict(environment)
        self.reporter = reporter
        self.connect_gateway = gateway
        self.output = output
        self.error = error
        self.kill_grace = kill_grace
        self.gateway_retry = gateway_retry
        self.start_timeout = start_timeout
        self.extra_runner_env = dict(runner_env or {})
        self.switch_grace = switch_grace
        self.wait_for_workers_timeout = wait_for_workers_timeout
        self.log = log
        self.echo = echo  # also copy the job's output here (a pod's log)
        self.start_runner = start_runner
        self.poll = poll  # seconds between looks at the runner and the clock
        self.cluster_check_period = cluster_check_period  # seconds between checks that the cluster still runs
        self.clock = clock
        self.leftovers = leftovers  # what the user's code leaves running ends with the job
        self.sleep = sleep  # between retries of the gateway
        self.attempt = attempt  # of a job with --retries; None: not known (a Kubernetes Job's next pod)
        self.memory_limit = memory_limit  # bytes the runner's process tree may use
        self.memory_used = memory_used  # of a runner, by its pid
        self.metering = metering  # the job's report, armed and saved through the switch's client
        self.end: Outcome | None = None  # once run: how this attempt ended
        self.again = False  # once run: this attempt failed and another follows (see ending.retried)
        self.stop: StopReason | None = None  # why the job is stopping: set once, by the first cause
        self.cluster = JobCluster(log, lambda: self.stop is not None, cluster_lost_after, clock, sleep)
        self.held: Runner | None = None  # started, not yet released: no user code runs
        self.runner: Runner | None = None  # released: the user's code runs
        self.deferring = False  # in _signals_deferred
        self.owned = owned.OwnedClusters(job_id, reporter.owned, gateway, switch_factory(switch_grace), log)

    # -- entry ------------------------------------------------------------------

    def run(self) -> int:
        """Run the job to its end; returns the driver's exit code."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        if (self.attempt or 1) > 1 and (self.reporter.failure_requested() or self.reporter.cancel_requested()):
            # Asked while the last attempt wound down, its signal ignored: the request stops this one.
            self._record(StopReason(Stop.SIGNALLED, signal.SIGTERM.name))
        self.reporter.started()
        # Per attempt from the driver's start, cluster start included, as Slurm's; a pod's scheduling
        # and image pull are left to the Job's activeDeadlineSeconds, a backstop with margin.
        limit = self.spec.time_limit
        deadline = self.clock() + limit if limit else None
        out: IO[bytes] | None = None
        err: IO[bytes] | None = None
        returncode: int | None = None
        try:
            # Before the cluster: output that cannot be written fails the job.
            out, err = open_outputs(self.output, self.error, self.echo)
            if self._attempt_label():
                note(err or out, f"kbatch: job {self.job_id} {self._attempt_label()}")
            if self.spec.workers and self.stop is None:
                capped = self._start_cluster(out, err)
                if capped:
                    note(err or out, f"kbatch: {capped}")
            returncode = self._run_runner(out, err, deadline)
        except Interrupted:
            pass  # the signal handler recorded why
        except OutputUnwritable as exc:
            self._record(StopReason(Stop.OUTPUT_ERROR, str(exc)))
            self.log(str(exc))
        except GatewayError as exc:
            self._record(StopReason(Stop.GATEWAY_ERROR, str(exc)))
        except Exception as exc:  # the driver's own failure must still clean up
            self._record(StopReason(Stop.DRIVER_ERROR, repr(exc)))
            self.log(f"driver error: {exc!r}")
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            self._end_held()
            if self.leftovers is not None:
                self.leftovers.end(self.log)  # before the cluster they may use goes
            self.owned.release()  # the clusters the job's code made, then the runner's private files
            self.cluster.release()  # before the record says the job ended (unless released as the runner exited)
            self.cluster.close()
            stop = self._stopped_because()
            self.end = end = outcome(stop, returncode)
            self._finish(stop, end, out, err)
        return end.exit_code if end.exit_code is not None else 1

    def _finish(self, stop: StopReason, end: Outcome, out: IO[bytes] | None, err: IO[bytes] | None) -> None:
        """The job's token, kbatch's last word in its output, its record: for an
        attempt another follows, the driver that runs it records the retry."""
        # Unknown which attempt this is, a Kubernetes pod keeps its token while the Job may retry.
        retries_left = self.spec.retries - (self.attempt - 1 if self.attempt else 0)
        retrying = retries_left > 0 and retried(stop, end)
        self.again = retrying and self.attempt is not None
        # A disrupted pod's replacement runs the job again, with the same token and record.
        replaced = stop.kind is Stop.DISRUPTED
        if not (retrying or replaced):
            hub.revoke_at_end(self.environment, self.log)  # the job's own JupyterHub token
        if replaced:
            note(err or out, f"kbatch: job {self.job_id} interrupted: {end.reason}")
        elif end.state is not JobState.SUCCEEDED and end.reason:
            again = f" ({self._attempt_label()}; retrying)" if self.again else ""
            note(err or out, f"kbatch: job {self.job_id} {end.state.value}: {end.reason}{again}")
        for f in {f for f in (out, err) if f is not None}:  # one file when -e is -o's
            f.close()
        if not (self.again or replaced):
            self.reporter.finished(end.state, end.exit_code, end.reason)

    def _attempt_label(self) -> str | None:
        """``attempt 2 of 3`` for a job with retries that knows its attempt."""
        return f"attempt {self.attempt} of {self.spec.retries + 1}" if self.attempt and self.spec.retries else None

    # -- why the job stops ------------------------------------------------------

    def _record(self, reason: StopReason) -> None:
        if self.stop is None:  # the first cause wins: what follows is the job winding down
            self.stop = reason

    def _stop(self, reason: StopReason) -> None:
        """Record why the job stops and ask the runner, if started, to end."""
        self._record(reason)
        if self.runner is not None:
            with contextlib.suppress(ProcessLookupError):
                self.runner.send_signal(signal.SIGTERM)

    def _on_signal(self, signum: int, frame: types.FrameType | None) -> None:
        # No I/O here: asking the reporter about a cancel could re-enter a connection
        # the interrupted code holds. _stopped_because asks, once the job has ended.
        self._stop(StopReason(Stop.SIGNALLED, signal.Signals(signum).name))
        if self.runner is None and not self.deferring:
            raise Interrupted()

    def _stopped_because(self) -> StopReason:
        """The recorded stop reason, a user's cancel told apart: it reaches the driver
        as a signal (``kbatch cancel`` marks the record before it signals) or, on
        Kubernetes, as the cluster stopping (the backend stops it as it deletes the Job)."""
        stop = self.stop or StopReason(Stop.DRIVER_ERROR)  # something past ``except Exception``
        if stop.kind in (Stop.SIGNALLED, Stop.CLUSTER_LOST):
            failure = self.reporter.failure_requested()  # e.g. `kbatch gateway stop --force`
            if failure:
                return StopReason(Stop.FAILURE_REQUESTED, failure)
            if self.reporter.cancel_requested():
                return StopReason(Stop.CANCELLED)
            if stop.kind is Stop.SIGNALLED:
                disruption = self.reporter.disrupted()  # evicted: SIGTERM, and a new pod to come
                if disruption:
                    return StopReason(Stop.DISRUPTED, disruption)
        return stop

    # -- cluster ----------------------------------------------------------------

    def _start_cluster(self, out: IO[bytes] | None, err: IO[bytes] | None) -> str | None:
        """Start the job's cluster, the runner held meanwhile; what to tell the user when the
        gateway gave it fewer workers."""
        workers = self.spec.workers
        assert workers is not None
        deadline = self.clock() + self.gateway_retry
        cluster = self.cluster
        cluster.gateway = gateway = cluster.retrying(self.connect_gateway, deadline)
        with self._signals_deferred():  # a runner started is known, to be ended
            self.held = self._start_runner(out, err, held=True)
        self.log("creating the Dask cluster")
        with self._signals_deferred():  # a cluster the gateway made is known, to be stopped
            name = cluster.retrying(lambda: gateway.create_cluster(self.spec.cluster_options()), deadline)
            cluster.name = name
            # Recorded before it runs: whatever happens to this driver from here on, `kbatch gc` finds the cluster.
            self.reporter.cluster(name, None, None)
        self.log(f"cluster {name} created; waiting for it to start")
        if self.switch_grace is not None or self.metering is not None:  # switch off: only the report's client
            cluster.switch = DeadMansSwitch(gateway, name, self.switch_grace, self.log, self.metering, told=True)
        if self.held is not None:
            self.held.prepare(name)  # it connects as the cluster starts, as a bare script would: no client yet
        info = cluster.retrying(lambda: gateway.wait_running(name, self.start_timeout), deadline)
        if cluster.switch is not None:
            cluster.switch.running(info)
        if workers.adaptive:
            capped = gateway.adapt(name, workers.minimum, workers.maximum)
        else:
            capped = gateway.scale(name, workers.maximum)
        self.log(f"cluster {name} running: {info.dashboard}")
        note = None
        if capped:
            cluster.worker_limit = limit = worker_limit(capped)
            note = f"--dask-workers {workers}: {capped}" if limit is None else workers.capped(limit)
            self.log(note)
        self.reporter.cluster(name, info.dashboard, cluster.worker_limit)
        return note

    @contextlib.contextmanager
    def _signals_deferred(self) -> Iterator[None]:
        """A signal in the block is recorded, and interrupts the job once the block is done."""
        self.deferring = True
        try:
            yield
        finally:
            self.deferring = False
        if self.stop is not None:
            raise Interrupted()

    # -- runner -----------------------------------------------------------------

    def _runner_env(self) -> dict[str, str]:
        """The runner's environment as it starts (for a held runner, before its cluster exists)."""
        env = dict(self.environment)
        env["KBATCH_DASK_JOB_ID"] = self.job_id
        env["PYTHONUNBUFFERED"] = "1"
        env["KBATCH_DASK_SUPERVISOR_PID"] = str(os.getpid())
        env["KBATCH_DASK_SCRIPT_DIR"] = os.path.dirname(self.spec.script)
        if self.spec.parameters:
            env["KBATCH_DASK_PARAMETERS"] = json.dumps(self.spec.notebook_parameters())
        env.update(self.extra_runner_env)
        gateway = self.cluster.gateway
        if gateway:
            env.update(gateway.settings.env)
        env.update(self.owned.prepare(gateway, env.get("PYTHONPATH")))
        return env

    def _cluster_env(self) -> dict[str, str]:
        """What the runner's environment gets at its release, once the cluster runs."""
        if not self.cluster.name:
            return {}
        required = self.spec.required_workers()
        # Not more than the gateway gives: those would never come.
        limit = self.cluster.worker_limit or required
        return {
            "KBATCH_DASK_CLUSTER": self.cluster.name,
            "KBATCH_DASK_WAIT_FOR_WORKERS": str(min(required, limit)),
            "KBATCH_DASK_WAIT_FOR_WORKERS_TIMEOUT": str(self.wait_for_workers_timeout),
        }

    def _start_runner(self, out: IO[bytes] | None, err: IO[bytes] | None, held: bool) -> Runner:
        cmd = runner_command(self.spec.kind, self.script, self.spec.args)
        if self.leftovers is not None:
            self.leftovers.watch()  # before the runner: what it starts is the job's
        env = self._runner_env()
        return self.start_runner(cmd, cwd=self.spec.workdir, env=env, stdout=out, stderr=err or out, held=held)

    def _end_held(self) -> None:
        """End a runner the job stopped before it was released: it never ran user code."""
        held, self.held = self.held, None
        if held is not None:
            held.kill()
            held.wait()

    def _run_runner(self, out: IO[bytes] | None, err: IO[bytes] | None, deadline: float | None) -> int | None:
        """Run the user's code to its end: its return code (``-N``: signal N), None if the job stopped first."""
        if self.stop is not None:  # a signal while the cluster started, its Interrupted swallowed
            return None
        if self.cluster.switch is not None:
            self.cluster.switch.wait_armed()  # no user code on a cluster that would outlive a killed driver
        runner = self.held or self._start_runner(out, err, held=False)
        # Known as released before it is: a signal from here on reaches it, not Interrupted.
        self.runner = runner
        self.held = None
        runner.release(self._cluster_env())
        kill_at: float | None = None
        next_check = self.clock() + self.cluster_check_period
        while not runner.finished(self.poll):
            self.owned.adopt()
            current = self.clock()
            if self.stop is None and deadline is not None and current >= deadline:
                self._stop(StopReason(Stop.TIME_LIMIT, str(self.spec.time_limit)))
            if self.stop is None and current >= next_check:
                next_check = current + self.cluster_check_period
                lost = self.cluster.gone()
                if lost:
                    self.log(f"{lost}; stopping the job")
                    self._stop(StopReason(Stop.CLUSTER_LOST, lost))
            if self.stop is None and self.memory_limit and self.memory_used(runner.pid) > self.memory_limit:
                self._record(StopReason(Stop.MEMORY_LIMIT, format_size(self.memory_limit)))
                self.log(f"the job's code uses more than its memory limit of {format_size(self.memory_limit)}")
                runner.kill()  # at once, as the kernel's OOM killer does: it is still allocating
                kill_at = float("inf")
            if self.stop is not None and kill_at is None:
                kill_at = current + self.kill_grace
            if kill_at is not None and current >= kill_at:
                runner.kill()
                kill_at = float("inf")
        returncode = runner.poll()
        if returncode is None:  # its code ended, its Python is finishing: the cluster need not wait
            alone = self.leftovers is None or self.leftovers.only(runner.pid)  # else they end before it goes
            if self.cluster.name and alone:
                self.log("the job's code ended; stopping its cluster as its Python exits")
                self.cluster.release()
            try:
                returncode = runner.wait(timeout=self.kill_grace)
            except subprocess.TimeoutExpired:
                runner.kill()
                returncode = runner.wait()
        self._record(StopReason(Stop.SCRIPT_ENDED))
        return returncode
