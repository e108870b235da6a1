"""The embedded gateway's wait for a process's exit (kbatch_dask/backends/local/process_stop.py)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading

from kbatch_dask.backends.local import process_stop


def test_an_exited_process_is_seen_gone() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    reaper = threading.Thread(target=proc.wait)  # as the gateway's child watcher reaps its processes
    reaper.start()
    assert asyncio.run(process_stop.wait_is_shutdown(proc.pid, timeout=60)) is True
    reaper.join()


def test_a_running_process_is_not_gone_when_the_timeout_is_up() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert asyncio.run(process_stop.wait_is_shutdown(proc.pid, timeout=0.2)) is False
    finally:
        proc.kill()
        proc.wait()


def test_install_replaces_the_local_backends_wait() -> None:
    from dask_gateway_server.backends import local

    original = local.wait_is_shutdown
    try:
        process_stop.install()
        assert local.wait_is_shutdown is process_stop.wait_is_shutdown
    finally:
        local.wait_is_shutdown = original
