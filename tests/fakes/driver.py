"""Test doubles for the job's supervisor: a runner process in simulated time, a
gateway and a reporter, all writing to one event log so that a test can check
the order things happened in (the cluster stopped before the record ended).

Time is a :class:`Clock` that moves only while the supervisor waits for the
fake runner, so a job of "100 s" with a time limit of "1 s" runs in no time::

    events: list[str] = []
    clock = Clock()
    runner = FakeRunner(clock, events, runs_for=100, at={2.0: signal_driver(signal.SIGTERM)})
    Supervisor(..., start_runner=runner.start, clock=clock).run()
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Mapping
from typing import IO, Any

from kbatch_dask.errors import GatewayError, GatewayUnreachable
from kbatch_dask.gateway import ClusterInfo, ClusterStatus, GatewayClient, GatewaySettings
from kbatch_dask.records import JobState

ADDRESS = "http://gateway.test"
SETTINGS = GatewaySettings(ADDRESS, None, ADDRESS, "basic", env={"DASK_GATEWAY__ADDRESS": ADDRESS})


class Clock:
    """Simulated monotonic time, in seconds."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def signal_driver(signum: int) -> Callable[[], None]:
    """An action that sends ``signum`` to this process: the supervisor's real handler runs."""
    return lambda: os.kill(os.getpid(), signum)


class FakeRunner:
    """The runner process: started held (``held``), it runs the user's code only once
    released (:meth:`release`, at once when started unheld), the release's
    environment added to ``env``. It ends by itself ``runs_for`` seconds after its
    release with ``returncode`` (``-N``: killed by signal N), ends with ``-SIGTERM``
    when sent SIGTERM unless it ``ignores_sigterm``, and with ``-SIGKILL`` when killed
    (held or not). ``at`` maps times since its release to actions run then (signal
    the driver, stop the cluster, ...); ``fails_to_start`` is raised by :meth:`start`.
    The user's code writes ``output of the script`` as it starts. Once its code ended
    by itself, its Python takes ``exits_for`` seconds more to exit."""

    def __init__(
        self,
        clock: Clock,
        events: list[str],
        runs_for: float = 1.0,
        returncode: int = 0,
        ignores_sigterm: bool = False,
        at: Mapping[float, Callable[[], None]] | None = None,
        fails_to_start: Exception | None = None,
        exits_for: float = 0.0,
    ) -> None:
        self.clock = clock
        self.events = events
        self.runs_for = runs_for
        self.exit = returncode
        self.ignores_sigterm = ignores_sigterm
        self.at = dict(at or {})
        self.fails_to_start = fails_to_start
        self.exits_for = exits_for
        self.code_ended = False
        self.pid = 4242  # what the supervisor measures the memory of
        self.env: Mapping[str, str] | None = None  # its environment: as started, plus the release's
        self.held = False  # started held, not yet released
        self.prepared: str | None = None  # the cluster it was told of while held
        self.released: Mapping[str, str] | None = None  # what the release added to its environment
        self.stdout: IO[bytes] | None = None
        self.signals: list[int] = []
        self.killed = False
        self.returncode: int | None = None
        self.ends_at = float("inf")  # until released
        self.pending: dict[float, Callable[[], None]] = {}

    def start(
        self,
        argv: list[str],
        *,
        cwd: str,
        env: Mapping[str, str],
        stdout: IO[bytes] | None,
        stderr: IO[bytes] | None,
        held: bool,
    ) -> FakeRunner:
        if self.fails_to_start is not None:
            raise self.fails_to_start
        self.events.append("runner started held" if held else "runner started")
        self.env = dict(env)
        self.stdout = stdout
        self.held = True
        if not held:
            self.release({})
        return self

    def prepare(self, cluster: str) -> None:
        if self.held and self.returncode is None:
            self.prepared = cluster

    def release(self, env: Mapping[str, str]) -> None:
        if not self.held or self.returncode is not None:  # released already, or ended while held
            return
        self.held = False
        self.events.append("runner released")
        self.released = dict(env)
        self.env = {**(self.env or {}), **env}
        self.ends_at = self.clock.now + self.runs_for
        self.pending = {self.clock.now + t: action for t, action in self.at.items()}
        if self.stdout is not None:
            self.stdout.write(b"output of the script\n")

    def _run_until(self, until: float) -> None:
        """Let time pass to ``until``: the actions due meanwhile, the code's end, the exit."""
        for when in sorted(t for t in self.pending if t <= until):
            if self.returncode is not None or self.code_ended:
                break
            self.clock.now = max(self.clock.now, when)
            self.pending.pop(when)()
        if self.returncode is None:
            self.clock.now = max(self.clock.now, until)
            if self.clock.now >= self.ends_at and not self.code_ended:
                self.code_ended = True
                self.events.append("runner's code ended")
            if self.clock.now >= self.ends_at + self.exits_for:
                self.returncode = self.exit
                self.events.append("runner ended")

    def finished(self, timeout: float) -> bool:
        self._run_until(min(self.clock.now + timeout, self.ends_at))
        return self.code_ended or self.returncode is not None

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        exit_at = self.ends_at + self.exits_for
        self._run_until(exit_at if timeout is None else min(self.clock.now + timeout, exit_at))
        if self.returncode is None:
            raise subprocess.TimeoutExpired("runner", timeout or 0)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)
        if sig == signal.SIGTERM and not self.ignores_sigterm and self.returncode is None:
            self.returncode = -signal.SIGTERM
            self.events.append("runner ended")

    def kill(self) -> None:
        self.killed = True
        if self.returncode is None:
            self.returncode = -signal.SIGKILL
            self.events.append("runner ended")


class _NoTransport:
    """The fake gateway answers every call itself: reaching its transport is a bug."""

    def request(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
        raise AssertionError(f"FakeGateway sent {method} {path}: a GatewayClient method is not faked")

    def close(self) -> None:
        pass


class FakeGateway(GatewayClient):
    """A gateway with one switch per fault: ``unreachable`` (every call raises
    :class:`GatewayUnreachable`), ``status`` (what it reports of a created cluster;
    None: it does not know it), ``error`` (its refusal of a status request).
    ``while_creating`` runs once the gateway made the cluster, before its name is
    answered; ``while_starting`` runs while the cluster starts."""

    def __init__(self, events: list[str]) -> None:
        super().__init__(SETTINGS, transport=_NoTransport())
        self.events = events
        self.unreachable = False
        self.status: ClusterStatus | None = ClusterStatus.RUNNING
        self.error: GatewayError | None = None
        self.while_creating: Callable[[], None] | None = None
        self.while_starting: Callable[[], None] | None = None
        self.created: list[str] = []
        self.stopped: list[str] = []
        self.sizes: list[tuple[str, int, int]] = []  # (cluster, minimum, maximum) as scaled or adapted
        self.closed = False

    def _answer(self, event: str) -> None:
        if self.unreachable:
            raise GatewayUnreachable(f"the Dask-Gateway at {ADDRESS} did not answer")
        self.events.append(event)

    def create_cluster(self, options: Mapping[str, Any]) -> str:
        self._answer("cluster created")
        self.created.append(f"cluster-{len(self.created) + 1}")
        if self.while_creating is not None:
            self.while_creating()
        return self.created[-1]

    def wait_running(self, name: str, timeout: float) -> ClusterInfo:
        self._answer("cluster running")
        if self.while_starting is not None:
            self.while_starting()
        return ClusterInfo(name, ClusterStatus.RUNNING, f"{ADDRESS}/clusters/{name}/status")

    def scale(self, name: str, workers: int) -> str | None:
        self._answer("cluster scaled")
        self.sizes.append((name, workers, workers))
        return None

    def adapt(self, name: str, minimum: int, maximum: int) -> str | None:
        self._answer("cluster adapted")
        self.sizes.append((name, minimum, maximum))
        return None

    def cluster_info(self, name: str, timeout: float = 10.0) -> ClusterInfo | None:
        self._answer("cluster checked")
        if self.error is not None:
            raise self.error
        return None if self.status is None else ClusterInfo(name, self.status, None)

    def stop_cluster(self, name: str, timeout: float = 10.0) -> None:
        self._answer("cluster stopped")
        self.stopped.append(name)

    def dask_gateway(self) -> Any:
        return NoDaskGateway()

    def close(self) -> None:
        self.closed = True


class NoDaskGateway:
    """The ``dask_gateway.Gateway`` of :class:`FakeGateway`: made and closed, but with no
    scheduler behind it to connect a client to."""

    def close(self) -> None:
        pass

    @property
    def proxy_address(self) -> str:
        raise AssertionError("the fake gateway has no scheduler to connect to: run with switch_grace=None")

    def connect(self, name: str) -> Any:
        raise AssertionError("the fake gateway has no scheduler to connect to: run with switch_grace=None")


class FakeReporter:
    """Keeps the job's record: ``final`` is what :meth:`finished` was told."""

    def __init__(self, events: list[str], cancel: bool = False, failure: str | None = None) -> None:
        self.events = events
        self.cancel = cancel
        self.failure = failure
        self.clusters: list[tuple[str, str | None]] = []
        self.owned_clusters: list[tuple[str, ...]] = []  # what each call of :meth:`owned` was told
        self.final: tuple[JobState, int | None, str | None] | None = None
        self.disruption: str | None = None  # what disrupted() answers

    def started(self) -> None:
        self.events.append("record started")

    def cluster(self, name: str, dashboard: str | None, worker_limit: int | None) -> None:
        self.clusters.append((name, dashboard))

    def owned(self, clusters: tuple[str, ...]) -> None:
        self.events.append("record owns " + " ".join(clusters))
        self.owned_clusters.append(clusters)

    def finished(self, state: JobState, exit_code: int | None, reason: str | None) -> None:
        self.events.append("record ended")
        self.final = (state, exit_code, reason)

    def cancel_requested(self) -> bool:
        return self.cancel

    def failure_requested(self) -> str | None:
        return self.failure

    def disrupted(self) -> str | None:
        return self.disruption
