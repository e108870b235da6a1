"""What a local job gets of ``--cpus``, ``--gpus`` and ``--memory``: as much as this
machine can enforce, and a warning at submit for the rest (no option is ignored
in silence).

- ``--cpus N``: the runner is pinned to the first ``ceil(N)`` of the CPUs the
  driver may use (``sched_setaffinity``), so the script and all it starts share them;
- ``--gpus N``: ``CUDA_VISIBLE_DEVICES`` names N of the session's GPUs (its own
  ``CUDA_VISIBLE_DEVICES`` if set, else the NVIDIA driver's), none when it has none;
- ``--memory``: the supervisor measures the resident memory of the runner and its
  descendants at every poll and ends the job ``OOM`` when it is over (no cgroup:
  a process the script detaches from its tree is not counted).

:func:`placement` is pure: the facts about the machine come in as a :class:`Machine`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

from kbatch_dask.errors import KbatchWarning
from kbatch_dask.spec import JobSpec
from kbatch_dask.spec.units import format_size

CPUS_VAR = "KBATCH_DASK_CPUS"  # the CPUs the runner pins itself to, "0,1"
GPUS_VAR = "CUDA_VISIBLE_DEVICES"
NVIDIA_GPUS = "/proc/driver/nvidia/gpus"  # one entry per GPU the NVIDIA driver sees


@dataclass(frozen=True)
class Machine:
    """What this machine offers a job."""

    cpus: tuple[int, ...] | None  # the CPUs this process may run on; None: affinity cannot be set here
    gpus: tuple[str, ...]  # the GPU devices a job may be given
    measures_memory: bool  # /proc tells each process's resident memory


@dataclass(frozen=True)
class Placement:
    env: dict[str, str]  # for the runner's environment
    unenforced: tuple[str, ...]  # what cannot be enforced, one phrase per option


def this_machine(environ: Mapping[str, str]) -> Machine:
    """The machine as a job with environment ``environ`` finds it."""
    cpus = tuple(sorted(os.sched_getaffinity(0))) if hasattr(os, "sched_setaffinity") else None
    visible = environ.get(GPUS_VAR)
    if visible is not None:
        gpus = tuple(d.strip() for d in visible.split(",") if d.strip())
    else:
        try:
            gpus = tuple(str(i) for i in range(len(os.listdir(NVIDIA_GPUS))))
        except OSError:
            gpus = ()
    return Machine(cpus=cpus, gpus=gpus, measures_memory=os.path.exists("/proc/self/statm"))


def placement(spec: JobSpec, machine: Machine) -> Placement:
    """The runner's CPUs and GPUs, and what of the request cannot be enforced.

    >>> p = placement(JobSpec("s.py", "n", "u", "/", "o", cpus=1.5, gpus=1), Machine((0, 1, 2), ("0", "1"), True))
    >>> p.env, p.unenforced
    ({'KBATCH_DASK_CPUS': '0,1', 'CUDA_VISIBLE_DEVICES': '0'}, ('--cpus 1.5 (whole CPUs only: the job gets 2)',))
    """
    env: dict[str, str] = {}
    unenforced: list[str] = []
    if spec.cpus is not None:
        asked = f"--cpus {spec.cpus:g}"
        wanted = math.ceil(spec.cpus)
        if machine.cpus is None:
            unenforced.append(f"{asked} (CPU affinity cannot be set on this system)")
        else:
            given = machine.cpus[:wanted]
            env[CPUS_VAR] = ",".join(map(str, given))
            if wanted > len(given):
                unenforced.append(f"{asked} (this machine has {len(given)} CPU(s): the job gets them all)")
            elif wanted != spec.cpus:
                unenforced.append(f"{asked} (whole CPUs only: the job gets {wanted})")
    if spec.gpus:
        given_gpus = machine.gpus[: spec.gpus]
        env[GPUS_VAR] = ",".join(given_gpus)
        if not given_gpus:
            unenforced.append(f"--gpus {spec.gpus} (this machine has no GPU)")
        elif spec.gpus > len(given_gpus):
            unenforced.append(f"--gpus {spec.gpus} (this machine has {len(given_gpus)} GPU(s): the job gets them all)")
    if spec.memory is not None and not machine.measures_memory:
        unenforced.append(f"--memory {format_size(spec.memory)} (memory use cannot be measured on this system)")
    return Placement(env, tuple(unenforced))


def warning(unenforced: tuple[str, ...]) -> KbatchWarning | None:
    """The one line that says what of a submission cannot be enforced, if anything."""
    return KbatchWarning(f"not enforced here: {', '.join(unenforced)}") if unenforced else None
