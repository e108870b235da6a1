"""Every way a job ends, through the real supervisor with a fake runner, gateway
and reporter (tests/fakes/driver.py): no process, no gateway, simulated time.

Each test checks what a user sees: the record's final (state, exit code,
reason), the driver's exit code, kbatch's last line in the job's output, and
that the cluster was stopped, before the record ended, exactly when one was
created.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes.driver import Clock, FakeGateway, FakeReporter, FakeRunner, signal_driver

from kbatch_dask.driver.leftovers import Leftovers
from kbatch_dask.driver.supervisor import Supervisor
from kbatch_dask.errors import GatewayError
from kbatch_dask.gateway import ClusterStatus
from kbatch_dask.hub import tokens as hub
from kbatch_dask.records import JobState
from kbatch_dask.spec import JobSpec, Workers

JOB = "job-1"
ONE_WORKER = Workers(1, 1)
SCRIPT_LINE = "output of the script"


@pytest.fixture(autouse=True)
def signal_handlers() -> Iterator[None]:
    """The supervisor takes SIGTERM and SIGINT (and ignores them once done): give them back."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


class LeftBehind(Leftovers):
    """Something the job's code started still runs when it ended; it is ended with the job."""

    def __init__(self, events: list[str]) -> None:
        super().__init__()
        self.events = events

    def watch(self) -> None:
        pass

    def only(self, pid: int) -> bool:
        return False

    def end(self, log: Callable[[str], None]) -> int:
        self.events.append("leftovers ended")
        return 1


class Job:
    """One job's supervisor and its fakes; :meth:`run` runs it to its end."""

    def __init__(self, tmp_path: Path, **runner: Any) -> None:
        self.events: list[str] = []
        self.clock = Clock()
        self.runner = FakeRunner(self.clock, self.events, **runner)
        self.gateway = FakeGateway(self.events)
        self.reporter = FakeReporter(self.events)
        self.output = tmp_path / "job.out"
        self.workdir = tmp_path
        self.connects = 0
        self.log: list[str] = []

    def _connect(self) -> FakeGateway:
        self.connects += 1
        return self.gateway

    def run(
        self,
        workers: Workers | None = ONE_WORKER,
        time_limit: int | None = None,
        error: str | None = None,
        retries: int = 0,
        **more: Any,
    ) -> int:
        spec = JobSpec(
            script=str(self.workdir / "job.py"),
            name="job",
            user="me",
            workdir=str(self.workdir),
            output=str(self.output),
            workers=workers,
            time_limit=time_limit,
            retries=retries,
        )
        self.supervisor = supervisor = Supervisor(
            spec=spec,
            job_id=JOB,
            script=spec.script,
            environment={},
            reporter=self.reporter,
            gateway=self._connect,
            output=str(self.output),
            error=error,
            kill_grace=2.0,
            gateway_retry=0.0,  # an unreachable gateway fails the job at once
            switch_grace=None,  # the switch connects to a real scheduler
            log=self.log.append,
            start_runner=self.runner.start,
            poll=0.1,
            cluster_check_period=1.0,
            cluster_lost_after=10.0,
            clock=self.clock,
            sleep=self.clock.sleep,
            **more,
        )
        return supervisor.run()

    def note(self) -> str:
        """The last line of the job's output: kbatch's note, or the script's own line when kbatch had nothing to say."""
        return self.output.read_text().splitlines()[-1]

    def assert_cluster_stopped(self) -> None:
        assert self.gateway.created == self.gateway.stopped == ["cluster-1"]
        assert self.gateway.closed

    def assert_no_user_code_ran(self) -> None:
        """The runner was never released; one started held was ended before the record was."""
        assert "runner released" not in self.events
        assert SCRIPT_LINE not in (self.output.read_text() if self.output.is_file() else "")
        if "runner started held" in self.events:
            assert self.runner.killed
            assert self.events.index("runner ended") < self.events.index("record ended")

    def assert_cluster_stopped_before_the_record_ended(self) -> None:
        assert self.gateway.created == self.gateway.stopped == ["cluster-1"]
        assert self.events.index("cluster stopped") < self.events.index("record ended")
        assert self.gateway.closed


def test_success_ends_succeeded_with_the_cluster_stopped(tmp_path: Path) -> None:
    job = Job(tmp_path, runs_for=3.0)
    assert job.run(workers=Workers(2, 2)) == 0
    assert job.reporter.final == (JobState.SUCCEEDED, 0, None)
    assert job.events[:6] == [
        "record started",
        "runner started held",  # its start overlaps the cluster's
        "cluster created",
        "cluster running",
        "cluster scaled",
        "runner released",
    ]
    assert job.gateway.sizes == [("cluster-1", 2, 2)]
    assert job.reporter.clusters == [
        ("cluster-1", None),
        ("cluster-1", "http://gateway.test/clusters/cluster-1/status"),
    ]
    job.assert_cluster_stopped_before_the_record_ended()
    assert job.note() == SCRIPT_LINE  # no word from kbatch on success
    assert job.runner.env is not None
    assert job.runner.env["KBATCH_DASK_CLUSTER"] == "cluster-1"
    assert job.runner.env["DASK_GATEWAY__ADDRESS"] == "http://gateway.test"
    assert job.runner.signals == []


def test_the_cluster_s_name_and_workers_reach_the_runner_at_its_release(tmp_path: Path) -> None:
    """Started before the cluster exists, the runner learns it at its release; what does
    not depend on the cluster is in its environment from its start."""
    job = Job(tmp_path)
    assert job.run(workers=Workers(2, 2)) == 0
    assert job.runner.released == {
        "KBATCH_DASK_CLUSTER": "cluster-1",
        "KBATCH_DASK_WAIT_FOR_WORKERS": str(job.supervisor.spec.required_workers()),
        "KBATCH_DASK_WAIT_FOR_WORKERS_TIMEOUT": "300.0",
    }
    assert job.runner.env is not None
    assert job.runner.env["KBATCH_DASK_JOB_ID"] == JOB


def test_a_job_without_cluster_starts_its_runner_unheld(tmp_path: Path) -> None:
    job = Job(tmp_path)
    assert job.run(workers=None) == 0
    assert job.events[:3] == ["record started", "runner started", "runner released"]
    assert job.runner.released == {}


def test_the_cluster_stops_while_the_runner_s_python_exits(tmp_path: Path) -> None:
    """The user's code said it ended: its Python's teardown is no reason to keep the cluster."""
    job = Job(tmp_path, exits_for=1.0)  # within the kill grace (2 s)
    assert job.run() == 0
    assert job.reporter.final == (JobState.SUCCEEDED, 0, None)
    order = ["runner's code ended", "cluster stopped", "runner ended", "record ended"]
    assert [e for e in job.events if e in order] == order
    job.assert_cluster_stopped_before_the_record_ended()


def test_what_the_job_left_running_ends_before_its_cluster_stops(tmp_path: Path) -> None:
    job = Job(tmp_path, exits_for=1.0)
    assert job.run(leftovers=LeftBehind(job.events)) == 0
    order = ["runner's code ended", "runner ended", "leftovers ended", "cluster stopped", "record ended"]
    assert [e for e in job.events if e in order] == order


def test_a_runner_whose_python_does_not_exit_after_its_code_is_killed(tmp_path: Path) -> None:
    job = Job(tmp_path, exits_for=100.0)
    assert job.run() == 137  # kill_grace 2 s after its code ended
    assert job.runner.killed
    assert job.reporter.final == (JobState.FAILED, 137, "killed by signal 9 (SIGKILL)")
    job.assert_cluster_stopped_before_the_record_ended()


def test_a_signal_while_the_cluster_starts_ends_the_runner_started_held(tmp_path: Path) -> None:
    job = Job(tmp_path)
    job.gateway.while_starting = signal_driver(signal.SIGTERM)
    assert job.run() == 1
    assert job.events.index("runner started held") < job.events.index("cluster running")
    assert job.runner.killed and "runner released" not in job.events
    assert SCRIPT_LINE not in job.output.read_text()
    assert job.events.index("runner ended") < job.events.index("record ended")


def test_the_cluster_is_recorded_before_it_runs(tmp_path: Path) -> None:
    """A driver killed while its cluster starts leaves a record naming the cluster, for `kbatch gc`."""
    job = Job(tmp_path)
    recorded_while_starting: list[list[tuple[str, str | None]]] = []
    job.gateway.while_starting = lambda: recorded_while_starting.append(list(job.reporter.clusters))
    assert job.run() == 0
    assert recorded_while_starting == [[("cluster-1", None)]]
    assert "cluster cluster-1 created; waiting for it to start" in job.log


def test_adaptive_cluster_is_adapted_not_scaled(tmp_path: Path) -> None:
    job = Job(tmp_path)
    assert job.run(workers=Workers(1, 5, adaptive=True)) == 0
    assert "cluster adapted" in job.events and "cluster scaled" not in job.events
    assert job.gateway.sizes == [("cluster-1", 1, 5)]


def test_job_without_cluster_never_calls_the_gateway(tmp_path: Path) -> None:
    job = Job(tmp_path)
    assert job.run(workers=None) == 0
    assert job.reporter.final == (JobState.SUCCEEDED, 0, None)
    assert job.connects == 0 and job.gateway.created == job.gateway.stopped == []
    assert job.runner.env is not None and "KBATCH_DASK_CLUSTER" not in job.runner.env


def test_exit_code_n_fails_with_that_code(tmp_path: Path) -> None:
    job = Job(tmp_path, returncode=3)
    assert job.run() == 3
    assert job.reporter.final == (JobState.FAILED, 3, "exit code 3")
    job.assert_cluster_stopped_before_the_record_ended()
    assert job.note() == f"kbatch: job {JOB} FAILED: exit code 3"


def test_killed_by_a_signal_fails_with_128_plus_the_signal(tmp_path: Path) -> None:
    job = Job(tmp_path, returncode=-signal.SIGSEGV)
    assert job.run() == 139
    assert job.reporter.final == (JobState.FAILED, 139, "killed by signal 11 (SIGSEGV)")
    job.assert_cluster_stopped_before_the_record_ended()
    assert job.note() == f"kbatch: job {JOB} FAILED: killed by signal 11 (SIGSEGV)"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_to_the_driver_while_the_script_runs_stops_it(tmp_path: Path, signum: int) -> None:
    job = Job(tmp_path, runs_for=100, at={2.0: signal_driver(signum)})
    name = signal.Signals(signum).name
    assert job.run() == 143
    assert job.runner.signals == [signal.SIGTERM]  # passed on to the runner as SIGTERM
    assert job.reporter.final == (JobState.FAILED, 143, f"driver received {name}")
    job.assert_cluster_stopped_before_the_record_ended()
    assert job.note() == f"kbatch: job {JOB} FAILED: driver received {name}"


def test_signal_to_the_driver_while_the_cluster_starts_runs_no_user_code(tmp_path: Path) -> None:
    job = Job(tmp_path)
    job.gateway.while_starting = signal_driver(signal.SIGTERM)
    assert job.run() == 1
    job.assert_no_user_code_ran()
    assert job.reporter.final == (JobState.FAILED, None, "driver received SIGTERM")
    job.assert_cluster_stopped_before_the_record_ended()
    assert job.note() == f"kbatch: job {JOB} FAILED: driver received SIGTERM"


def test_signal_while_the_gateway_creates_the_cluster_stops_the_cluster_it_made(tmp_path: Path) -> None:
    """``kbatch cancel`` right after a submit lands while the create request is in flight:
    the request is let finish, so that the cluster it made is known and stopped at once
    (not left to the gateway's attach timeout)."""
    job = Job(tmp_path)
    job.gateway.while_creating = signal_driver(signal.SIGTERM)
    assert job.run() == 1
    job.assert_no_user_code_ran()
    assert job.gateway.created == ["cluster-1"]
    assert job.gateway.stopped == ["cluster-1"]
    assert job.reporter.final == (JobState.FAILED, None, "driver received SIGTERM")
    job.assert_cluster_stopped_before_the_record_ended()


def test_signal_whose_interruption_the_cluster_start_swallowed_runs_no_user_code(tmp_path: Path) -> None:
    """Code under the cluster's start (a client library) may catch every exception,
    the handler's interruption included: the recorded signal still stops the job."""

    def swallowed() -> None:
        with contextlib.suppress(Exception):
            signal_driver(signal.SIGTERM)()

    job = Job(tmp_path)
    job.gateway.while_starting = swallowed
    assert job.run() == 1
    job.assert_no_user_code_ran()
    assert job.reporter.final == (JobState.FAILED, None, "driver received SIGTERM")
    job.assert_cluster_stopped_before_the_record_ended()


def test_cancel_while_the_script_runs_ends_cancelled(tmp_path: Path) -> None:
    job = Job(tmp_path, runs_for=100, at={2.0: signal_driver(signal.SIGTERM)})
    job.reporter.cancel = True  # kbatch cancel marks the record, then signals the driver
    assert job.run() == 143
    assert job.reporter.final == (JobState.CANCELLED, 143, "cancelled by user")
    job.assert_cluster_stopped_before_the_record_ended()
    assert job.note() == f"kbatch: job {JOB} CANCELLED: cancelled by user"


def test_cancel_while_the_cluster_starts_ends_cancelled(tmp_path: Path) -> None:
    job = Job(tmp_path)
    job.reporter.cancel = True
    job.gateway.while_starting = signal_driver(signal.SIGTERM)
    assert job.run() == 1
    job.assert_no_user_code_ran()
    assert job.reporter.final == (JobState.CANCELLED, None, "cancelled by user")
    job.assert_cluster_stopped_before_the_record_ended()


@pytest.mark.parametrize(
    ("ignores_sigterm", "exit_code"), [(False, 143), (True, 137)], ids=["ends-on-sigterm", "killed-after-grace"]
)
def test_time_limit_ends_timeout(tmp_path: Path, ignores_sigterm: bool, exit_code: int) -> None:
    job = Job(tmp_path, runs_for=100, ignores_sigterm=ignores_sigterm)
    assert job.run(time_limit=1) == exit_code
    assert job.runner.signals == [signal.SIGTERM]
    assert job.runner.killed is ignores_sigterm
    assert job.reporter.final == (JobState.TIMEOUT, exit_code, "time limit of 1 s reached")
    job.assert_cluster_stopped_before_the_record_ended()
    assert job.note() == f"kbatch: job {JOB} TIMEOUT: time limit of 1 s reached"


def test_first_reason_wins_a_signal_during_the_time_limits_grace_is_no_new_reason(tmp_path: Path) -> None:
    job = Job(tmp_path, runs_for=100, ignores_sigterm=True, at={1.5: signal_driver(signal.SIGTERM)})
    assert job.run(time_limit=1) == 137
    assert job.reporter.final == (JobState.TIMEOUT, 137, "time limit of 1 s reached")


@pytest.mark.parametrize(
    ("status", "how"),
    [(ClusterStatus.STOPPED, "stopped"), (ClusterStatus.FAILED, "failed"), (None, "unknown to the gateway")],
    ids=["stopped", "failed", "unknown"],
)
def test_cluster_lost_mid_job_fails_the_job(tmp_path: Path, status: ClusterStatus | None, how: str) -> None:
    job = Job(tmp_path, runs_for=100)
    job.runner.at = {2.5: lambda: setattr(job.gateway, "status", status)}
    reason = f"the Dask cluster cluster-1 stopped while the job ran ({how})"
    assert job.run() == 143
    assert job.runner.signals == [signal.SIGTERM]
    assert job.reporter.final == (JobState.FAILED, 143, reason)
    assert f"{reason}; stopping the job" in job.log
    job.assert_cluster_stopped_before_the_record_ended()
    assert job.note() == f"kbatch: job {JOB} FAILED: {reason}"


def test_cluster_refused_by_the_gateway_mid_job_fails_the_job(tmp_path: Path) -> None:
    job = Job(tmp_path, runs_for=100)
    job.runner.at = {2.5: lambda: setattr(job.gateway, "error", GatewayError("HTTP 403 Forbidden", 403))}
    assert job.run() == 143
    assert job.reporter.final == (JobState.FAILED, 143, "the Dask cluster cluster-1 is gone (HTTP 403 Forbidden)")
    job.assert_cluster_stopped_before_the_record_ended()


def test_cluster_stopped_by_a_cancel_ends_cancelled(tmp_path: Path) -> None:
    """On Kubernetes `kbatch cancel` deletes the Job and stops its cluster: the
    driver may see the cluster gone before its pod's SIGTERM arrives."""
    job = Job(tmp_path, runs_for=100)
    job.reporter.cancel = True
    job.runner.at = {2.5: lambda: setattr(job.gateway, "status", ClusterStatus.STOPPED)}
    assert job.run() == 143
    assert job.reporter.final == (JobState.CANCELLED, 143, "cancelled by user")


def test_gateway_unreachable_mid_job_does_not_stop_the_job(tmp_path: Path) -> None:
    job = Job(tmp_path, runs_for=10)
    job.runner.at = {1.5: lambda: setattr(job.gateway, "unreachable", True)}
    job.runner.at[6.5] = lambda: setattr(job.gateway, "unreachable", False)
    assert job.run() == 0
    assert job.runner.signals == []
    assert job.reporter.final == (JobState.SUCCEEDED, 0, None)
    job.assert_cluster_stopped_before_the_record_ended()


def test_gateway_unreachable_mid_job_longer_than_the_bound_fails_the_job(tmp_path: Path) -> None:
    """A gateway killed for good: the job ends FAILED saying so, rather than SUCCEEDED on a dead cluster."""
    job = Job(tmp_path, runs_for=100)
    job.runner.at = {1.5: lambda: setattr(job.gateway, "unreachable", True)}
    assert job.run() == 143
    assert job.runner.signals == [signal.SIGTERM]
    reason = (
        "the Dask cluster cluster-1 is lost: its gateway has not answered for 10 s (kbatch.driver.cluster-lost-after): "
        "the Dask-Gateway at http://gateway.test did not answer"
    )
    assert job.reporter.final == (JobState.FAILED, 143, reason)
    assert job.note() == f"kbatch: job {JOB} FAILED: {reason}"
    assert job.gateway.stopped == [] and "could not stop cluster cluster-1" in job.log


def test_gateway_down_at_start_beyond_the_retry_window_fails_without_a_cluster(tmp_path: Path) -> None:
    job = Job(tmp_path)
    job.gateway.unreachable = True
    assert job.run() == 1
    reason = "the Dask-Gateway at http://gateway.test did not answer (gave up retrying)"
    assert job.reporter.final == (JobState.FAILED, None, reason)
    job.assert_no_user_code_ran()
    assert job.gateway.created == job.gateway.stopped == []
    assert job.output.read_text() == f"kbatch: job {JOB} FAILED: {reason}\n"


def test_driver_error_fails_the_job_and_still_stops_the_cluster(tmp_path: Path) -> None:
    job = Job(tmp_path)

    def fails() -> None:
        raise FileNotFoundError(2, "No such file or directory")

    job.gateway.while_starting = fails
    assert job.run() == 1
    reason = "driver error: FileNotFoundError(2, 'No such file or directory')"
    assert job.reporter.final == (JobState.FAILED, None, reason)
    assert reason in job.log
    job.assert_cluster_stopped_before_the_record_ended()
    job.assert_no_user_code_ran()
    assert job.note() == f"kbatch: job {JOB} FAILED: {reason}"


def test_a_runner_that_cannot_start_fails_the_job_before_its_cluster_is_made(tmp_path: Path) -> None:
    job = Job(tmp_path, fails_to_start=FileNotFoundError(2, "No such file or directory"))
    assert job.run() == 1
    reason = "driver error: FileNotFoundError(2, 'No such file or directory')"
    assert job.reporter.final == (JobState.FAILED, None, reason)
    assert job.gateway.created == [] and job.gateway.closed


def test_output_file_that_cannot_be_opened_fails_the_job_before_the_cluster(tmp_path: Path) -> None:
    job = Job(tmp_path)
    job.output.mkdir()  # made a directory after submit: only the driver can find out
    assert job.run() == 1
    reason = f"cannot write the output file {job.output}: Is a directory"
    assert job.reporter.final == (JobState.FAILED, None, reason)
    assert reason in job.log
    job.assert_no_user_code_ran()
    assert job.connects == 0 and job.gateway.created == []


def test_error_file_that_cannot_be_opened_fails_the_job(tmp_path: Path) -> None:
    job = Job(tmp_path)
    (tmp_path / "notes.txt").write_text("a file, not a folder\n")
    error = tmp_path / "notes.txt" / "job.err"
    assert job.run(error=str(error)) == 1
    state, _, reason = job.reporter.final
    assert state is JobState.FAILED
    assert reason == f"cannot write the error file {error}: Not a directory"
    assert job.output.read_text() == ""  # opened, then closed unwritten
    job.assert_no_user_code_ran()


# -- --memory: the runner's memory, measured at every poll ----------------------

LIMIT = 200_000_000


class Memory:
    """The runner's resident memory as the supervisor measures it: ``over`` bytes
    from ``at`` seconds on, little before; remembers whose memory it was asked."""

    def __init__(self, clock: Clock, at: float, over: int = 300_000_000) -> None:
        self.clock, self.at, self.over = clock, at, over
        self.pids: set[int] = set()

    def __call__(self, pid: int) -> int:
        self.pids.add(pid)
        return self.over if self.clock.now >= self.at else 10_000_000


def test_memory_over_the_limit_kills_the_runner_at_once_and_ends_oom(tmp_path: Path) -> None:
    job = Job(tmp_path, runs_for=100)
    memory = Memory(job.clock, at=2.0)
    assert job.run(memory_limit=LIMIT, memory_used=memory) == 137
    assert job.runner.killed and job.runner.signals == []  # no grace for a process still allocating
    assert memory.pids == {job.runner.pid}
    reason = "memory limit of 200M exceeded"
    assert job.reporter.final == (JobState.OOM, 137, reason)
    job.assert_cluster_stopped_before_the_record_ended()
    assert job.note() == f"kbatch: job {JOB} OOM: {reason}"


def test_memory_under_the_limit_leaves_the_job_alone(tmp_path: Path) -> None:
    job = Job(tmp_path, runs_for=10)
    assert job.run(memory_limit=LIMIT, memory_used=Memory(job.clock, at=11.0)) == 0
    assert job.reporter.final == (JobState.SUCCEEDED, 0, None)
    assert not job.runner.killed


# -- --retries: each attempt is a run of its own ------------------------------------


@pytest.fixture
def revoked(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, str]]:
    """The environments whose job token the supervisor revoked."""
    calls: list[dict[str, str]] = []
    monkeypatch.setattr(hub, "revoke_at_end", lambda environ, log, timeout=10.0: calls.append(dict(environ)) or True)
    return calls


def output_lines(job: Job) -> list[str]:
    return job.output.read_text().splitlines()


def test_failed_attempt_with_retries_left_runs_again_with_its_token(tmp_path: Path, revoked: list) -> None:
    job = Job(tmp_path, returncode=3)
    assert job.run(retries=2, attempt=1) == 3
    assert job.supervisor.again
    assert job.reporter.final is None  # the next attempt's driver records the retry
    assert revoked == []
    job.assert_cluster_stopped()
    assert output_lines(job) == [
        f"kbatch: job {JOB} attempt 1 of 3",
        SCRIPT_LINE,
        f"kbatch: job {JOB} FAILED: exit code 3 (attempt 1 of 3; retrying)",
    ]


def test_memory_limit_is_a_failure_that_is_retried(tmp_path: Path, revoked: list) -> None:
    job = Job(tmp_path, runs_for=100)
    assert job.run(retries=1, attempt=1, memory_limit=LIMIT, memory_used=Memory(job.clock, at=1.0)) == 137
    assert job.supervisor.again and revoked == []


def test_last_attempt_ends_the_job_and_revokes_its_token(tmp_path: Path, revoked: list) -> None:
    job = Job(tmp_path, returncode=3)
    assert job.run(retries=2, attempt=3) == 3
    assert not job.supervisor.again
    assert job.reporter.final == (JobState.FAILED, 3, "exit code 3")
    assert len(revoked) == 1
    assert output_lines(job) == [
        f"kbatch: job {JOB} attempt 3 of 3",
        SCRIPT_LINE,
        f"kbatch: job {JOB} FAILED: exit code 3",
    ]


@pytest.mark.parametrize(
    ("at", "cancel", "time_limit", "state"),
    [
        ({}, False, 1, JobState.TIMEOUT),
        ({2.0: signal_driver(signal.SIGTERM)}, True, None, JobState.CANCELLED),
        ({2.0: signal_driver(signal.SIGTERM)}, False, None, JobState.FAILED),
    ],
    ids=["time-limit", "cancel", "driver-signalled"],
)
def test_ends_that_are_not_retried_end_the_job_with_retries_left(
    tmp_path: Path, revoked: list, at: dict, cancel: bool, time_limit: int | None, state: JobState
) -> None:
    job = Job(tmp_path, runs_for=100, at=at)
    job.reporter.cancel = cancel
    job.run(time_limit=time_limit, retries=2, attempt=1)
    assert not job.supervisor.again
    assert job.reporter.final is not None and job.reporter.final[0] is state
    assert len(revoked) == 1


def test_a_pod_that_does_not_know_its_attempt_records_its_end_and_keeps_its_token(
    tmp_path: Path, revoked: list
) -> None:
    """On Kubernetes the Job runs the next pod: the driver records its end, and the
    token lives on while the Job may retry."""
    job = Job(tmp_path, returncode=3)
    assert job.run(retries=2) == 3
    assert not job.supervisor.again
    assert job.reporter.final == (JobState.FAILED, 3, "exit code 3")
    assert revoked == []
    assert job.note() == f"kbatch: job {JOB} FAILED: exit code 3"


def test_a_cancel_asked_between_attempts_runs_no_further_attempt(tmp_path: Path, revoked: list) -> None:
    job = Job(tmp_path)
    job.reporter.cancel = True  # marked while the last attempt wound down, its signal ignored
    assert job.run(retries=2, attempt=2) == 1
    assert "runner started held" not in job.events and job.gateway.created == []
    assert job.reporter.final == (JobState.CANCELLED, None, "cancelled by user")
    assert not job.supervisor.again


def test_each_attempt_gets_the_whole_time_limit(tmp_path: Path) -> None:
    """--time is per attempt, as Slurm's is for a requeued job (and as a pod's driver counts it)."""
    job = Job(tmp_path, runs_for=100)
    job.clock.now = 50.0  # the first attempts took 50 s
    assert job.run(time_limit=60, retries=2, attempt=3) == 143
    assert job.reporter.final == (JobState.TIMEOUT, 143, "time limit of 60 s reached")
    assert job.clock.now >= 50.0 + 60  # 60 s from this attempt's start


def test_an_evicted_pod_leaves_the_job_to_its_replacement(tmp_path: Path, revoked: list) -> None:
    """Evicted (SIGTERM, and a DisruptionTarget on its pod), the driver stops its
    cluster but records no end and keeps the token: the Job's next pod runs the job."""
    job = Job(tmp_path, runs_for=100, at={2.0: signal_driver(signal.SIGTERM)})
    job.reporter.disruption = "EvictionByEvictionAPI"
    assert job.run() == 143
    assert job.reporter.final is None and revoked == []
    job.assert_cluster_stopped()
    assert job.note() == (
        f"kbatch: job {JOB} interrupted: pod disrupted (EvictionByEvictionAPI); a new pod runs the job again"
    )


def test_a_job_without_a_cluster_logs_nothing_of_its_own(tmp_path: Path) -> None:
    """On Kubernetes the driver's log is the pod's log with the job's output: a job
    without a cluster has nothing to say there beside its output and its end."""
    job = Job(tmp_path)
    assert job.run(workers=None) == 0
    assert job.log == []
