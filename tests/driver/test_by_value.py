"""What the driver sends to its scheduler — the dead-man's switch, the scheduler's close
once its workers have left, the job's meter and its collection — is pickled by value,
so that a scheduler whose image has no kbatch-dask can load it: here, a Python that
refuses to import kbatch_dask."""

from __future__ import annotations

import subprocess
import sys
from types import ModuleType
from typing import Any

import pytest
from distributed.protocol.pickle import dumps

from kbatch_dask.driver import deadman, meter
from kbatch_dask.driver.deadman import by_value

# A scheduler without kbatch-dask: every import of it fails, whatever sys.path holds.
LOADER = """
import importlib.abc, pickle, sys

class NoKbatchDask(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "kbatch_dask" or name.startswith("kbatch_dask."):
            raise ImportError(f"no {name} on this scheduler")
        return None

sys.meta_path.insert(0, NoKbatchDask())
sent = pickle.loads(sys.stdin.buffer.read())
print(type(sent).__name__, getattr(sent, "__name__", ""))
"""

SENT: dict[str, tuple[ModuleType, Any]] = {
    "the switch": (deadman, deadman.SupervisorWatch("client-1", 5.0, 30.0)),
    "the close once stopped": (deadman, deadman.close_once_workers_left),
    "the meter": (meter, meter.JobMeter(task_stream=True)),
    "the meter's collection": (meter, meter.collect),
}


def load_without_kbatch_dask(data: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-c", LOADER], input=data, capture_output=True, check=False, timeout=60)


@pytest.mark.parametrize("what", list(SENT))
def test_what_the_driver_sends_loads_on_a_scheduler_without_kbatch_dask(what: str) -> None:
    module, sent = SENT[what]
    with by_value(module):
        data = dumps(sent)  # type: ignore[no-untyped-call]
    loaded = load_without_kbatch_dask(data)
    assert loaded.returncode == 0, loaded.stderr.decode()
    name = getattr(sent, "__name__", "")
    assert loaded.stdout.decode().split() == [type(sent).__name__, *([name] if name else [])]


def test_outside_the_block_it_is_pickled_by_reference_and_needs_kbatch_dask() -> None:
    with by_value(deadman):
        pass
    loaded = load_without_kbatch_dask(dumps(deadman.close_once_workers_left))  # type: ignore[no-untyped-call]
    assert loaded.returncode != 0
    assert "no kbatch_dask" in loaded.stderr.decode()
