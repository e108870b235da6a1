"""The supervisor: creates the job's cluster, runs the runner, always cleans up.

It is the driver's first process (PID 1 of a pod, the detached local process).
User code runs in a separate runner process, so that a segfault, an OOM kill
or ``os._exit`` there cannot take the cluster's cleanup with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any, Protocol, TypeVar

from kbatch_dask.driver.tee import Tee
from kbatch_dask.errors import GatewayError, GatewayUnreachable
from kbatch_dask.gateway import GatewayClient
from kbatch_dask.hub import tokens as hub
from kbatch_dask.records import JobState
from kbatch_dask.spec import JobSpec

RUNNER_MODULE = "kbatch_dask.driver.runner"
T = TypeVar("T")
CLUSTER_CHECK_PERIOD = 5.0  # seconds between checks that the job's cluster still runs


class Reporter(Protocol):
    """Where the supervisor records the job's progress (state file, Job annotations)."""

    def started(self) -> None: ...

    def cluster(self, name: str, dashboard: str | None) -> None: ...

    def finished(self, state: JobState, exit_code: int | None, reason: str | None) -> None: ...

    def cancel_requested(self) -> bool: ...

    def failure_requested(self) -> str | None:
        """Why the job was ended from outside as FAILED (its gateway was stopped), or None."""
        ...


@dataclass
class Outcome:
    state: JobState
    exit_code: int | None
    reason: str | None


class Cancelled(Exception):
    """SIGTERM/SIGINT arrived before the runner was started."""


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
        switch_grace: float = 5.0,
        log: Callable[[str], None] = print,
        echo: IO[bytes] | None = None,
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
        self._watch: tuple[Any, ...] = ()
        self._arming: threading.Thread | None = None
        self.log = log
        self.echo = echo  # also copy the job's output here (a pod's log)
        self.runner: subprocess.Popen[bytes] | None = None
        self.signalled: int | None = None
        self.timed_out = False
        self.gateway: GatewayClient | None = None
        self.cluster_name: str | None = None
        self.cluster_lost: str | None = None
        self.started_at = time.monotonic()

    # -- entry ------------------------------------------------------------------

    def run(self) -> int:
        """Run the job to its end; returns the driver's exit code."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        self.reporter.started()
        # The time limit covers the whole job, cluster start included (as slurm's
        # and Kubernetes' activeDeadlineSeconds do).
        self.started_at = time.monotonic()
        out, err = self._open_outputs()
        outcome = Outcome(JobState.FAILED, None, "driver error")
        try:
            if self.spec.workers:
                self._start_cluster()
            outcome = self._run_runner(out, err)
        except Cancelled:
            outcome = self._signal_outcome(None)
        except GatewayError as exc:
            outcome = Outcome(JobState.FAILED, None, str(exc))
        except Exception as exc:  # the driver's own failure must still clean up
            outcome = Outcome(JobState.FAILED, None, f"driver error: {exc!r}")
            self.log(f"driver error: {exc!r}")
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            self._finish_arming()
            self._stop_cluster()
            self._disarm()
            if self.gateway is not None:
                self.gateway.close()
            if not hub.keep_token(outcome.state, self.spec.retries):
                hub.revoke_at_end(self.environment, self.log)  # the job's own JupyterHub token
            if outcome.state is not JobState.SUCCEEDED and outcome.reason:
                _note(err or out, f"kbatch: job {self.job_id} {outcome.state.value}: {outcome.reason}")
            for f in {out, err} - {None}:
                assert f is not None
                f.close()
            self.reporter.finished(outcome.state, outcome.exit_code, outcome.reason)
        code = outcome.exit_code
        return code if code is not None else 1

    # -- signals ----------------------------------------------------------------

    def _on_signal(self, signum: int, frame: types.FrameType | None) -> None:
        if self.signalled is None:
            self.signalled = signum
        if self.runner is None:
            raise Cancelled()
        with contextlib.suppress(ProcessLookupError):
            self.runner.send_signal(signal.SIGTERM)

    def _signal_outcome(self, exit_code: int | None) -> Outcome:
        if self.timed_out:
            return Outcome(JobState.TIMEOUT, exit_code, f"time limit of {self.spec.time_limit} s reached")
        failure = self.reporter.failure_requested()
        if failure:
            return Outcome(JobState.FAILED, exit_code, failure)
        if self.reporter.cancel_requested():
            return Outcome(JobState.CANCELLED, exit_code, "cancelled by user")
        name = signal.Signals(self.signalled or signal.SIGTERM).name
        return Outcome(JobState.FAILED, exit_code, f"driver received {name}")

    # -- cluster ----------------------------------------------------------------

    def _start_cluster(self) -> None:
        workers = self.spec.workers
        assert workers is not None
        deadline = time.monotonic() + self.gateway_retry
        gateway = _retrying(self.connect_gateway, deadline, self.log)
        self.gateway = gateway
        name = _retrying(lambda: gateway.create_cluster(self.spec.cluster_options()), deadline, self.log)
        self.cluster_name = name
        self._arm_in_background()
        info = _retrying(lambda: gateway.wait_running(name, self.start_timeout), deadline, self.log)
        if workers.adaptive:
            gateway.adapt(name, workers.minimum, workers.maximum)
        else:
            gateway.scale(name, workers.maximum)
        self.log(f"cluster {name} running: {info.dashboard}")
        self.reporter.cluster(name, info.dashboard)

    def _arm_in_background(self) -> None:
        """Arm the dead-man's switch while the cluster starts: importing dask-gateway and
        distributed takes about as long as a cluster's start, so the two overlap. The
        runner starts only once the switch is armed (see :meth:`_finish_arming`), so no
        user code runs on a cluster that would outlive a killed driver."""
        if self.switch_grace > 0 and self.gateway and self.cluster_name:
            self._arming = threading.Thread(
                target=self._arm_dead_mans_switch,
                args=(self.gateway, self.cluster_name),
                name="dead-mans-switch",
                daemon=True,
            )
            self._arming.start()

    def _finish_arming(self, timeout: float = 60.0) -> None:
        """Wait for the switch to be armed (before the runner starts, and before the
        cluster is stopped and the switch disarmed)."""
        if self._arming is not None:
            self._arming.join(timeout)
            self._arming = None

    def _arm_dead_mans_switch(self, gateway_client: GatewayClient, name: str) -> None:
        """Stay connected to the cluster so its scheduler can tell we are alive (see deadman.py)."""
        try:
            from kbatch_dask.driver import deadman

            gateway = gateway_client.dask_gateway()
            cluster = gateway.connect(name)
            client = cluster.get_client(set_as_default=False)
            deadman.arm(client, self.switch_grace)
            self._watch = (gateway, cluster, client)
            self.log(f"dead-man's switch armed: the cluster stops {self.switch_grace:g} s after this driver dies")
        except Exception as exc:  # the job can run without it; gc is the backstop
            self.log(f"could not arm the dead-man's switch ({type(exc).__name__}: {exc}); continuing without it")

    def _disarm(self) -> None:
        for part in reversed(self._watch):
            with contextlib.suppress(Exception):
                part.close()
        self._watch = ()

    def _cluster_gone(self) -> str | None:
        """Why the job's cluster is no longer usable, or None if it runs (or the gateway is
        unreachable right now: a gateway restart is not a reason to stop the job)."""
        if not self.cluster_name or not self.gateway:
            return None
        try:
            info = self.gateway.cluster_info(self.cluster_name)
        except GatewayUnreachable:
            return None
        except GatewayError as exc:
            return f"the Dask cluster {self.cluster_name} is gone ({exc})"
        if info is None or not info.status.is_active():
            status = info.status.lower() if info else "unknown to the gateway"
            return f"the Dask cluster {self.cluster_name} stopped while the job ran ({status})"
        return None

    def _stop_cluster(self) -> None:
        if not self.cluster_name or not self.gateway:
            return
        for attempt in range(5):
            try:
                self.gateway.stop_cluster(self.cluster_name)
                self.log(f"cluster {self.cluster_name} stopped")
                return
            except GatewayError as exc:
                self.log(f"stopping cluster {self.cluster_name} failed ({exc}); retrying")
                time.sleep(min(2**attempt, 10))
        self.log(f"could not stop cluster {self.cluster_name}")

    # -- runner -----------------------------------------------------------------

    def _open_outputs(self) -> tuple[IO[bytes] | None, IO[bytes] | None]:
        out = _open_append(self.output, self.log)
        err = _open_append(self.error, self.log) if self.error and self.error != self.output else None
        if self.echo is not None:
            out, err = Tee(out, self.echo), Tee(err, self.echo) if err else None
        return out, err

    def _runner_env(self) -> dict[str, str]:
        env = dict(self.environment)
        env["KBATCH_DASK_JOB_ID"] = self.job_id
        env["PYTHONUNBUFFERED"] = "1"
        env["KBATCH_DASK_SUPERVISOR_PID"] = str(os.getpid())
        env["KBATCH_DASK_SCRIPT_DIR"] = os.path.dirname(self.spec.script)
        if self.spec.parameters:
            env["KBATCH_DASK_PARAMETERS"] = json.dumps(self.spec.notebook_parameters())
        env.update(self.extra_runner_env)
        if self.gateway:
            env.update(self.gateway.settings.env)
        if self.cluster_name:
            env["KBATCH_DASK_CLUSTER"] = self.cluster_name
            env["KBATCH_DASK_WAIT_FOR_WORKERS"] = str(self.spec.required_workers())
        return env

    def _run_runner(self, out: IO[bytes] | None, err: IO[bytes] | None) -> Outcome:
        if self.signalled is not None:
            raise Cancelled()
        cmd = [sys.executable, "-m", RUNNER_MODULE, self.spec.kind, self.script, *self.spec.args]
        self._finish_arming()
        self.runner = subprocess.Popen(
            cmd,
            cwd=self.spec.workdir,
            env=self._runner_env(),
            stdin=subprocess.DEVNULL,
            stdout=out or subprocess.DEVNULL,
            stderr=err or out or subprocess.DEVNULL,
        )
        deadline = self.started_at + self.spec.time_limit if self.spec.time_limit else None
        killed_at: float | None = None
        next_check = time.monotonic() + CLUSTER_CHECK_PERIOD
        while True:
            try:
                code = self.runner.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                pass
            current = time.monotonic()
            if deadline and current >= deadline and not self.timed_out:
                self.timed_out = True
                self.runner.send_signal(signal.SIGTERM)
            if current >= next_check and not self.cluster_lost:
                next_check = current + CLUSTER_CHECK_PERIOD
                self.cluster_lost = self._cluster_gone()
                if self.cluster_lost:
                    self.log(f"{self.cluster_lost}; stopping the job")
                    self.runner.send_signal(signal.SIGTERM)
            if (self.timed_out or self.signalled or self.cluster_lost) and killed_at is None:
                killed_at = current + self.kill_grace
            if killed_at is not None and current >= killed_at:
                self.runner.kill()
                killed_at = float("inf")
        exit_code = 128 - code if code < 0 else code
        if self.timed_out or self.signalled is not None:
            return self._signal_outcome(exit_code)
        if self.cluster_lost:
            return Outcome(JobState.FAILED, exit_code, self.cluster_lost)
        if code == 0:
            return Outcome(JobState.SUCCEEDED, 0, None)
        if code < 0:
            name = signal.Signals(-code).name
            return Outcome(JobState.FAILED, exit_code, f"killed by signal {-code} ({name})")
        return Outcome(JobState.FAILED, code, f"exit code {code}")


def _retrying(call: Callable[[], T], deadline: float, log: Callable[[str], None]) -> T:
    """Retry ``call`` while the gateway is unreachable, with backoff, until ``deadline``."""
    delay = 0.5
    while True:
        try:
            return call()
        except GatewayUnreachable as exc:
            if time.monotonic() + delay > deadline:
                raise GatewayError(f"{exc} (gave up retrying)") from None
            log(f"{exc}; retrying in {delay:.1f} s")
            time.sleep(delay)
            delay = min(delay * 2, 10.0)


def _open_append(path: str | None, log: Callable[[str], None]) -> IO[bytes] | None:
    if not path:
        return None
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return open(path, "ab", buffering=0)
    except OSError as exc:
        log(f"cannot open output file {path}: {exc}")
        return None


def _note(f: IO[bytes] | None, line: str) -> None:
    """A line from kbatch itself in the job's output, like slurmstepd's."""
    if f is None:
        return
    with contextlib.suppress(OSError, ValueError):
        f.write(f"{line}\n".encode())
