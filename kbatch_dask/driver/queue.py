"""What a local job's driver waits for before it starts the job: its
``--dependency`` and a hold (``kbatch hold``). No daemon: the driver itself
waits, reading the ended states the local store keeps, and shows why in its
record (``PENDING``, reason ``dependency`` or ``held``). A dependency that can
never be met ends the job ``CANCELLED (dependency never satisfied)``.

The decision to start is taken under the job's lock, where ``kbatch hold``
takes it too: a hold comes before it (and keeps the job waiting) or is
refused as too late.
"""

from __future__ import annotations

import contextlib
import time

from kbatch_dask.backends.local.backend import LocalBackend
from kbatch_dask.backends.local.store import JobDir
from kbatch_dask.errors import JobNotFound
from kbatch_dask.records import JobRecord, JobState, now
from kbatch_dask.spec import JobSpec
from kbatch_dask.spec.dependency import NEVER, WAITING, Dependency, Outcome

POLL = 0.5  # seconds between looks at the other jobs' records
HELD = "held"


def wait_to_start(jobdir: JobDir, spec: JobSpec, backend: LocalBackend, poll: float = POLL) -> bool:
    """Wait until the job may start (True), or until it ended before starting (False:
    cancelled, or its dependency can never be met, which is recorded here)."""
    dependency = Dependency.parse(spec.dependency) if spec.dependency else None
    while True:
        outcome = _outcome(dependency, jobdir, backend) if dependency else Outcome.MET
        with jobdir.locked():
            record = jobdir.read_record()
            if record.state.is_terminal() or jobdir.cancel_requested:
                return False  # the canceller records the end
            if jobdir.held:
                reason = HELD
            elif outcome is Outcome.NEVER:
                jobdir.write_record(record.replace(state=JobState.CANCELLED, reason=NEVER, finished=now()))
                return False
            elif outcome is Outcome.WAIT:
                reason = WAITING
            else:
                jobdir.admit()
                return True
            if record.reason != reason:
                jobdir.write_record(record.replace(reason=reason))
        time.sleep(poll)


def _outcome(dependency: Dependency, jobdir: JobDir, backend: LocalBackend) -> Outcome:
    states: dict[str, JobState] = {}
    for job_id in dependency.ids:
        with contextlib.suppress(JobNotFound):  # its directory was removed: ended, in a state no longer known
            states[job_id] = backend.get(job_id).state
    mine = jobdir.read_record()
    return dependency.outcome(states, dependency.kind == "singleton" and _namesake_active(mine, backend))


def _namesake_active(mine: JobRecord, backend: LocalBackend) -> bool:
    """Whether a job with this job's name, submitted before it, is pending or running."""
    earlier = (mine.submitted, mine.id)
    return any(
        r.name == mine.name and r.id != mine.id and not r.state.is_terminal() and (r.submitted, r.id) < earlier
        for r in backend.list(ended_since=now())
    )
