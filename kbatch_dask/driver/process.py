"""The runner as the supervisor sees it: a child process it waits for, signals and
kills (:class:`Runner`), and how it is started (:func:`start_process`; the tests
start a fake in simulated time instead)."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from typing import IO, Protocol

RUNNER_MODULE = "kbatch_dask.driver.runner"


class Runner(Protocol):
    """The process running the user's code as the supervisor drives it, a
    ``subprocess.Popen``: ``wait`` raises ``subprocess.TimeoutExpired`` while it runs."""

    pid: int

    def wait(self, timeout: float | None = None) -> int: ...

    def send_signal(self, sig: int) -> None: ...

    def kill(self) -> None: ...


class StartRunner(Protocol):
    def __call__(
        self, argv: list[str], *, cwd: str, env: Mapping[str, str], stdout: IO[bytes] | None, stderr: IO[bytes] | None
    ) -> Runner: ...


def start_process(
    argv: list[str], *, cwd: str, env: Mapping[str, str], stdout: IO[bytes] | None, stderr: IO[bytes] | None
) -> subprocess.Popen[bytes]:
    """The runner as a child process; without an output file its output is dropped."""
    devnull = subprocess.DEVNULL
    return subprocess.Popen(argv, cwd=cwd, env=env, stdin=devnull, stdout=stdout or devnull, stderr=stderr or devnull)
