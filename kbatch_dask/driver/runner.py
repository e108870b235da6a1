"""The runner: runs the user's code with the job's cluster as default client.

``python -m kbatch_dask.driver.runner KIND PATH [ARGS...]``, started by the
supervisor with the gateway's ``DASK_GATEWAY__*`` settings in its environment.
For a job with a cluster it is started *held*, as the cluster starts (see
:mod:`.process`): it imports what connecting to the cluster takes, then waits
for the supervisor's release, a JSON line on ``$KBATCH_DASK_RELEASE_FD`` with
``KBATCH_DASK_CLUSTER`` and the workers to wait for (told the cluster's name
before, it waits for the cluster's start meanwhile); the pipe closed unreleased,
it ends without running the user's code. Once the user's code and its atexit
handlers are done, it says so on ``$KBATCH_DASK_DONE_FD``, so that the cluster's
stop need not wait for this Python's teardown. By the job's KIND
(:attr:`kbatch_dask.spec.JobSpec.kind`):

- a Python script runs as ``__main__`` with ``sys.argv`` set, so a script
  written for local Dask runs on the cluster unchanged;
- a function payload (see :mod:`kbatch_dask.driver.payload`) is called and its return
  value or exception written to ``$KBATCH_DASK_RESULT_FILE``;
- a notebook runs with papermill, its parameters from ``$KBATCH_DASK_PARAMETERS``
  plus ``kbatch_cluster``, written to ``$KBATCH_DASK_NOTEBOOK_OUTPUT``;
- anything else is executed directly.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import runpy
import sys
import tempfile
import traceback
from typing import Any

from kbatch_dask.files import write_atomic


def connect_default_client(cluster: Any = None) -> Any:
    """Connect to the job's cluster (if it has one) and make its client the default;
    ``cluster``: dask-gateway's, connected while the runner was held."""
    if not os.environ.get("KBATCH_DASK_CLUSTER"):
        return None
    from kbatch_dask.driver.session import client_of, get_client

    client = get_client() if cluster is None else client_of(cluster)
    workers = int(os.environ.get("KBATCH_DASK_WAIT_FOR_WORKERS") or 0)
    if workers:  # --wait-for-workers
        timeout = float(os.environ["KBATCH_DASK_WAIT_FOR_WORKERS_TIMEOUT"])
        try:
            client.wait_for_workers(workers, timeout=timeout)
        except TimeoutError:
            # The script starts anyway: workers may still come (a busy Kubernetes
            # cluster adds nodes), Dask code waits for them, and the job's time limit
            # bounds the rest; the note says why it may run slowly.
            came = len(client.scheduler_info(n_workers=-1)["workers"])
            print(
                f"kbatch: {came} of {workers} workers came within {timeout:g} s "
                "(kbatch.driver.wait-for-workers-timeout); the script starts with those",
                file=sys.stderr,
                flush=True,
            )
    return client


def run_script(script: str, args: list[str], cluster: Any = None) -> int:
    client = connect_default_client(cluster)
    sys.argv = [script, *args]
    sys.path.insert(0, os.environ.get("KBATCH_DASK_SCRIPT_DIR") or os.getcwd())
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        return _exit_code(exc)
    except BaseException:
        exc_type, exc_value, tb = sys.exc_info()
        # Drop the runner's own frames: the user wants to see their script's.
        while tb is not None and tb.tb_frame.f_code.co_filename != script:
            tb = tb.tb_next
        traceback.print_exception(exc_type, exc_value, tb)
        return 1
    finally:
        _close(client)
    return 0


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def _close(client: Any) -> None:
    """The script's output flushed; its default client is closed by distributed's atexit
    handler, after this runner said that the code is done (:func:`say_when_done`): the
    cluster's stop need not wait for the close. Should the script have made another client
    the default, the runner's is closed here, as it was before."""
    sys.stdout.flush()
    sys.stderr.flush()
    if client is not None and client is not _default_client():
        client.close()


def _default_client() -> Any:
    from distributed import default_client

    try:
        return default_client()  # type: ignore[no-untyped-call]
    except ValueError:
        return None


def run_function(payload_path: str, cluster: Any = None) -> int:
    from kbatch_dask.driver.payload import format_exception, pack_error, pack_result, unpack_function

    result_path = os.environ.get("KBATCH_DASK_RESULT_FILE") or os.path.join(os.getcwd(), "result.pkl")
    try:
        with open(payload_path, "rb") as f:
            call = unpack_function(f.read())
    except Exception as exc:
        print(f"kbatch: cannot load the function: {exc}", file=sys.stderr)
        write_atomic(result_path, pack_error(exc), 0o600)
        return 1
    client = connect_default_client(cluster)
    try:
        value = call.fn(*call.args, **call.kwargs)
    except BaseException as exc:
        tb = exc.__traceback__
        # From the function's own frame: the user wants to see their code's, not the runner's.
        text = format_exception(exc, tb.tb_next if tb else None, call.files)
        print(text, file=sys.stderr, end="")
        write_atomic(result_path, pack_error(exc, text), 0o600)
        return _exit_code(exc) if isinstance(exc, SystemExit) and exc.code else 1
    finally:
        _close(client)
    write_atomic(result_path, pack_result(value), 0o600)
    return 0


def run_notebook(path: str) -> int:
    try:
        import papermill
    except ImportError:
        print("kbatch: running notebooks needs papermill: pip install 'kbatch-dask[notebooks]'", file=sys.stderr)
        return 1
    from traitlets.config import Config

    parameters = json.loads(os.environ.get("KBATCH_DASK_PARAMETERS") or "{}")
    parameters["kbatch_cluster"] = os.environ.get("KBATCH_DASK_CLUSTER")
    # kbatch_cluster is offered to every notebook: one that does not declare it is no mistake of its author's.
    noise = {"Passed unknown parameter: kbatch_cluster"}
    if len(parameters) == 1:  # no -p: that the notebook has no parameters cell is no news to its user
        noise.add("Input notebook does not contain a cell with tag 'parameters'")
    logging.getLogger("papermill").addFilter(lambda r: r.getMessage() not in noise)
    output = os.environ.get("KBATCH_DASK_NOTEBOOK_OUTPUT") or os.path.splitext(path)[0] + ".out.ipynb"
    with tempfile.TemporaryDirectory(prefix="kbatch-ipython-") as ipython_dir:
        # An IPython startup file makes the cluster's client the default inside
        # the kernel (once it has its workers), without adding a cell to the user's notebook.
        startup = os.path.join(ipython_dir, "profile_default", "startup")
        os.makedirs(startup)
        with open(os.path.join(startup, "00-kbatch-dask.py"), "w") as f:
            f.write("from kbatch_dask.driver.runner import connect_default_client as _c\n_c()\ndel _c\n")
        os.environ["IPYTHONDIR"] = ipython_dir
        # The kernel speaks over Unix sockets in this private directory rather than
        # TCP, which any user of the machine could reach (the kernel warns of that).
        sockets = Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(ipython_dir, "kernel")}})
        try:
            papermill.execute_notebook(
                path, output, parameters=parameters, cwd=os.getcwd(), progress_bar=False, config=sockets
            )
        except papermill.PapermillExecutionError as exc:
            cell = _users_code_cell(output, exc.cell_index)
            print(f"kbatch: the notebook failed in cell {cell}: {exc.ename}: {exc.evalue}", file=sys.stderr)
            print(f"kbatch: the executed notebook is {output}", file=sys.stderr)
            return 1
    print(f"kbatch: executed notebook written to {output}")
    return 0


def _users_code_cell(executed: str, index: int) -> int:
    """Which of the code cells the user wrote the executed notebook's cell ``index`` is
    (from 1, as Jupyter numbers them when run in order): papermill's own count takes in
    the parameters cell it injected."""
    import nbformat
    from papermill.execute import remove_error_markers

    executed_nb = nbformat.read(executed, as_version=4)  # type: ignore[no-untyped-call]
    cells = remove_error_markers(executed_nb).cells[: index + 1]
    return sum(c.cell_type == "code" and "injected-parameters" not in c.metadata.get("tags", []) for c in cells)


def die_with_supervisor() -> None:
    """Ask Linux to kill this process if the supervisor dies: a job whose driver
    is gone is lost, and its code must not run on unsupervised."""
    supervisor = os.environ.get("KBATCH_DASK_SUPERVISOR_PID")
    if not supervisor or not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != int(supervisor):  # it died before prctl took effect
        os._exit(137)


def pin_cpus() -> None:
    """Run on the CPUs the supervisor chose for ``--cpus`` (``$KBATCH_DASK_CPUS``), before
    any user code: what the script starts inherits them."""
    cpus = os.environ.pop("KBATCH_DASK_CPUS", None)
    if cpus:
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})


def say_when_done() -> int | None:
    """Write ``done`` on ``$KBATCH_DASK_DONE_FD`` after the atexit handlers of the user's code
    (Python joins the code's threads before any): the file descriptor. Registered before
    the code runs and after ``distributed`` was imported, it runs after the code's handlers
    and before distributed's, which closes the default client."""
    fd = os.environ.pop("KBATCH_DASK_DONE_FD", None)
    if fd is None:
        return None
    done = int(fd)

    def say() -> None:
        with contextlib.suppress(OSError):  # the supervisor is gone, or the executable closed it
            os.write(done, b"done\n")
            os.close(done)
        # What is left is Python's teardown: it gives way to the cluster's stop, which runs meanwhile.
        with contextlib.suppress(OSError):
            os.nice(10)

    atexit.register(say)
    return done


def wait_for_release(kind: str) -> Any:
    """Held (``$KBATCH_DASK_RELEASE_FD`` set): import, while the cluster starts, what the
    job's KIND needs to run on it, then wait for the release and take in its environment.
    Told the cluster's name meanwhile, a Python job connects dask-gateway's cluster
    (not a client: see :mod:`.process`), which it returns."""
    fd = os.environ.pop("KBATCH_DASK_RELEASE_FD", None)  # not the user's code's, nor its children's
    if fd is None:
        return None
    python = kind in ("python", "function")
    if python:
        import dask_gateway  # noqa: F401
        import distributed  # noqa: F401

        from kbatch_dask.driver.session import warm_client

        warm_client()
    if kind == "function":
        import kbatch_dask.driver.payload  # noqa: F401
    if kind == "notebook":
        with contextlib.suppress(ImportError):  # run_notebook says what to install
            import papermill  # noqa: F401
    cluster = None
    with os.fdopen(int(fd), "rb") as release:
        for line in release:
            message = json.loads(line)
            if "release" in message:
                os.environ.update(message["release"])
                return cluster
            if python and cluster is None:
                cluster = _prepared(message["prepare"])
    sys.exit(0)  # the job stopped before its code was to run


def _prepared(name: str) -> Any:
    """dask-gateway's cluster ``name``, once it runs; None if it could not be had (it is
    tried again at the release, where what goes wrong is the user's to see)."""
    from dask_gateway import Gateway

    try:
        return Gateway().connect(name)
    except Exception:
        return None


def main() -> None:
    die_with_supervisor()
    pin_cpus()
    if len(sys.argv) < 3 or sys.argv[1] not in ("function", "notebook", "python", "executable"):
        sys.exit("usage: python -m kbatch_dask.driver.runner function|notebook|python|executable PATH [ARGS...]")
    kind, path, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    cluster = wait_for_release(kind)
    done = say_when_done()
    if kind == "function":
        sys.exit(run_function(path, cluster))
    if kind == "notebook":
        sys.exit(run_notebook(path))
    if kind == "executable":
        if done is not None:  # not the program's to hold: its exit is the code's end
            os.close(done)
        os.execv(path, [path, *args]) if os.access(path, os.X_OK) else os.execv("/bin/sh", ["/bin/sh", path, *args])
    sys.exit(run_script(path, args, cluster))


if __name__ == "__main__":
    main()
