"""The runner as the supervisor sees it: a child process it releases, waits for,
signals and kills (:class:`Runner`), and how it is started (:data:`start_process`;
the tests start a fake in simulated time instead).

A runner for a job with a cluster is started *held*, while the cluster starts:
its Python and the client's imports overlap the cluster's start, and it runs no
user code until :meth:`Runner.release` writes it a JSON line — what of its
environment depends on the cluster (its name, the workers to wait for) — on a
pipe of its own (``$KBATCH_DASK_RELEASE_FD``, read by :mod:`.runner`). A held
runner that is killed, or whose pipe closes unreleased, ends without running any.
Before that, once the cluster is created, :meth:`Runner.prepare` tells it the
cluster's name in a line of its own: it waits for the cluster's start as a bare
dask-gateway script does, with dask-gateway's cluster (a watch of its workers),
not yet a Dask client. A client on the cluster would end its scheduler's attach
watch (:class:`.deadman.AttachWatch`), which stops the cluster of a driver killed
before its switch was armed; the client connects at the release.

Every runner also says when the user's code is over — its atexit handlers run,
its threads joined — on another pipe (``$KBATCH_DASK_DONE_FD``): what is left is
its Python's own teardown, most of a second of garbage collection with Dask
imported, which the cluster's stop need not wait for.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import IO, Protocol

from kbatch_dask.procs import python_m

RUNNER_MODULE = "kbatch_dask.driver.runner"
RELEASE_FD = "KBATCH_DASK_RELEASE_FD"
DONE_FD = "KBATCH_DASK_DONE_FD"


def runner_command(kind: str, path: str, args: Sequence[str]) -> list[str]:
    """The command that starts the runner of ``kind`` on ``path`` with the script's ``args``."""
    return [*python_m(sys.executable, RUNNER_MODULE), kind, path, *args]


class Runner(Protocol):
    """The process running the user's code as the supervisor drives it, a
    ``subprocess.Popen``: ``wait`` raises ``subprocess.TimeoutExpired`` while it runs."""

    pid: int

    def prepare(self, cluster: str) -> None:
        """Let a held runner connect to its cluster as it starts, still held (started unheld: nothing to do)."""
        ...

    def release(self, env: Mapping[str, str]) -> None:
        """Let a held runner run the user's code, with ``env`` added to its environment
        (started unheld: nothing to do)."""
        ...

    def finished(self, timeout: float) -> bool:
        """Whether the user's code ended (the process may still be exiting), waiting up to ``timeout``."""
        ...

    def poll(self) -> int | None: ...  # its return code once it exited

    def wait(self, timeout: float | None = None) -> int: ...

    def send_signal(self, sig: int) -> None: ...

    def kill(self) -> None: ...


class StartRunner(Protocol):
    def __call__(
        self,
        argv: list[str],
        *,
        cwd: str,
        env: Mapping[str, str],
        stdout: IO[bytes] | None,
        stderr: IO[bytes] | None,
        held: bool,
    ) -> Runner: ...


class RunnerProcess(subprocess.Popen[bytes]):
    """The runner as a child process; without an output file its output is dropped."""

    def __init__(
        self,
        argv: list[str],
        *,
        cwd: str,
        env: Mapping[str, str],
        stdout: IO[bytes] | None,
        stderr: IO[bytes] | None,
        held: bool,
    ) -> None:
        self._release: int | None = None  # the pipe's writing end, while held
        self._done: int | None  # the reading end of the runner's word that its code ended, until read
        self._done, done = os.pipe()  # neither inherited but as pass_fds says
        self.code_ended = False
        theirs = [done]
        env = {**env, DONE_FD: str(done)}
        if held:
            read, self._release = os.pipe()
            theirs.append(read)
            env[RELEASE_FD] = str(read)
        devnull = subprocess.DEVNULL
        try:
            super().__init__(
                argv,
                cwd=cwd,
                env=env,
                stdin=devnull,
                stdout=stdout or devnull,
                stderr=stderr or devnull,
                pass_fds=theirs,
            )
        except BaseException:
            self._close_release()
            self._close_done()
            raise
        finally:
            for fd in theirs:
                os.close(fd)

    def prepare(self, cluster: str) -> None:
        self._tell({"prepare": cluster})

    def release(self, env: Mapping[str, str]) -> None:
        self._tell({"release": dict(env)})
        self._close_release()

    def _tell(self, message: Mapping[str, object]) -> None:
        if self._release is None:
            return
        try:
            # Short lines: the pipe's buffer takes them whole, whatever the runner does.
            os.write(self._release, json.dumps(message).encode() + b"\n")
        except BrokenPipeError:
            self._close_release()  # it ended while held: wait() says how

    def finished(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.code_ended and self.poll() is None:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self._done is None:  # closed unsaid (an executable's exec): its exit tells
                time.sleep(min(left, 0.02))
            elif select.select([self._done], [], [], min(left, 0.05))[0]:
                self.code_ended = os.read(self._done, 64).startswith(b"done")
                self._close_done()
        self._close_done()
        return True

    def kill(self) -> None:
        self._close_release()  # a killed runner is never released, and says nothing more
        self._close_done()
        super().kill()

    def _close_done(self) -> None:
        if self._done is not None:
            fd, self._done = self._done, None
            os.close(fd)

    def _close_release(self) -> None:
        if self._release is not None:
            fd, self._release = self._release, None
            os.close(fd)


# Start the runner, ``held`` until :meth:`Runner.release` (see the module's docstring).
start_process: StartRunner = RunnerProcess
