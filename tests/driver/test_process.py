"""The runner's two pipes with the real runner process (no cluster, no gateway):
held until released with its cluster's environment, never run when ended held,
and its word that the user's code ended before its Python exits."""

from __future__ import annotations

from pathlib import Path

from kbatch_dask.driver.process import runner_command, start_process

SHELL_JOB = 'echo "cluster $KBATCH_DASK_CLUSTER" > "$1"\n'


def _start(tmp_path: Path, kind: str, script: str, held: bool, *args: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "job"
    path.write_text(script)
    out = (tmp_path / "out").open("wb")
    argv = runner_command(kind, str(path), args)
    return start_process(argv, cwd=str(tmp_path), env={"PATH": "/usr/bin:/bin"}, stdout=out, stderr=out, held=held)


def test_a_held_runner_runs_the_code_once_released_with_the_release_s_environment(tmp_path: Path) -> None:
    runner = _start(tmp_path, "executable", SHELL_JOB, True, str(tmp_path / "ran"))
    runner.release({"KBATCH_DASK_CLUSTER": "c-1"})
    assert runner.wait(timeout=60) == 0
    assert (tmp_path / "ran").read_text() == "cluster c-1\n"


def test_a_held_runner_ended_before_its_release_runs_no_code(tmp_path: Path) -> None:
    runner = _start(tmp_path, "executable", SHELL_JOB, True, str(tmp_path / "ran"))
    runner.kill()
    runner.wait(timeout=60)
    assert not (tmp_path / "ran").exists()
    assert (tmp_path / "out").read_bytes() == b""


def test_the_runner_says_its_code_ended_after_its_atexit_handlers_before_its_python_exits(tmp_path: Path) -> None:
    # A finalizer that never returns: the process cannot exit; the code's end is said all the same.
    script = (
        "import atexit, time\n"
        f"atexit.register(lambda: open({str(tmp_path / 'atexit')!r}, 'w').close())\n"
        "class Slow:\n"
        "    def __del__(self):\n"
        "        time.sleep(600)\n"
        "slow = Slow()\n"
    )
    runner = _start(tmp_path, "python", script, False)
    try:
        assert runner.finished(timeout=60)
        assert runner.poll() is None
        assert (tmp_path / "atexit").exists()
    finally:
        runner.kill()
        runner.wait()


def test_a_held_runner_told_of_a_cluster_it_cannot_reach_runs_its_code_once_released(tmp_path: Path) -> None:
    # No gateway is configured: dask-gateway's connection fails while held, silently; the
    # release (no cluster in its environment) runs the script as it would have.
    runner = _start(tmp_path, "python", "print('ran')\n", True)
    runner.prepare("no-such-cluster")
    runner.release({})
    assert runner.wait(timeout=60) == 0
    assert (tmp_path / "out").read_bytes() == b"ran\n"
