"""The runner: runs the user's code with the job's cluster as default client.

``python -m kbatch_dask.runner SCRIPT [ARGS...]``, started by the supervisor
with ``KBATCH_DASK_CLUSTER`` (when the job has a cluster) and the gateway's
``DASK_GATEWAY__*`` settings in its environment. A Python script runs as
``__main__`` with ``sys.argv`` set, so a script written for local Dask runs on
the cluster unchanged; any other script is executed directly.
"""

from __future__ import annotations

import os
import runpy
import sys
import traceback


def connect_default_client(cluster_name: str) -> object:
    """Connect to the job's cluster and make its client the default one."""
    from dask_gateway import Gateway

    cluster = Gateway().connect(cluster_name)
    return cluster.get_client(set_as_default=True)


def run_script(script: str, args: list[str]) -> int:
    if not script.endswith(".py"):
        if not os.access(script, os.X_OK):
            os.execv("/bin/sh", ["/bin/sh", script, *args])
        os.execv(script, [script, *args])
    cluster_name = os.environ.get("KBATCH_DASK_CLUSTER")
    client = connect_default_client(cluster_name) if cluster_name else None
    sys.argv = [script, *args]
    sys.path.insert(0, os.getcwd())
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return 1
    except BaseException:
        exc_type, exc_value, tb = sys.exc_info()
        # Drop the runner's own frames: the user wants to see their script's.
        while tb is not None and tb.tb_frame.f_code.co_filename != script:
            tb = tb.tb_next
        traceback.print_exception(exc_type, exc_value, tb)
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        if client is not None:
            client.close()  # type: ignore[attr-defined]
    return 0


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python -m kbatch_dask.runner SCRIPT [ARGS...]")
    sys.exit(run_script(sys.argv[1], sys.argv[2:]))


if __name__ == "__main__":
    main()
