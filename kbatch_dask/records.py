"""What a backend knows about a job: :class:`JobState` and :class:`JobRecord`.

Backends turn their native objects (a local state directory, a Kubernetes Job)
into ``JobRecord`` at their boundary; everything above them sees only these.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from kbatch_dask.frozen import FrozenMethods
from kbatch_dask.gateway.status import ClusterStatus


class JobState(str, enum.Enum):
    """The life cycle of a job, slurm-style."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    OOM = "OOM"
    LOST = "LOST"

    def is_terminal(self) -> bool:
        """True once the job has ended and will not change state again."""
        return self not in (JobState.PENDING, JobState.RUNNING)

    @classmethod
    def parse_list(cls, text: str) -> tuple[JobState, ...]:
        """Parse ``"running,pending"`` into states; unknown names are an error.

        >>> JobState.parse_list("running,Failed")
        (<JobState.RUNNING: 'RUNNING'>, <JobState.FAILED: 'FAILED'>)
        """
        from kbatch_dask.errors import BadInput

        states = []
        for word in filter(None, (w.strip().upper() for w in text.split(","))):
            if word not in cls.__members__:
                allowed = " ".join(cls.__members__)
                raise BadInput(f"--state {word!r}: expected one or more of {allowed}")
            states.append(cls[word])
        return tuple(states)


def now() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(timezone.utc)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def _parse_iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True, repr=False, eq=False)  # FrozenMethods'
class DaskInfo(FrozenMethods):
    """The job's Dask cluster, as far as it is known."""

    workers: str  # requested: "2" or "1:10"
    cluster: str | None = None
    cluster_status: ClusterStatus | None = None  # what the gateway says now (the queue's join)
    live_workers: int | None = None
    dashboard: str | None = None
    worker_cores: float | None = None  # as asked (--worker-cores); None: the gateway's default
    worker_memory: int | None = None  # bytes, as asked (--worker-memory); None: the gateway's default
    worker_limit: int | None = None  # the most the gateway gave this cluster, when it capped the request

    def replace(self, **changes: Any) -> DaskInfo:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        status = self.cluster_status
        return {**dataclasses.asdict(self), "cluster_status": status.value if status else None}


@dataclass(frozen=True, repr=False, eq=False)  # FrozenMethods'
class JobRecord(FrozenMethods):
    """One job as a backend reports it; serialises to the JSON of CLI.md."""

    id: str
    name: str
    user: str
    backend: str
    state: JobState
    submitted: datetime
    script: str
    args: tuple[str, ...] = ()
    reason: str | None = None
    exit_code: int | None = None
    started: datetime | None = None
    finished: datetime | None = None
    output: str | None = None
    comment: str | None = None
    host: str | None = None
    pid: int | None = None
    dask: DaskInfo | None = None
    owned_clusters: tuple[str, ...] = ()  # clusters the job's own code made: they end with the job
    # From the job's spec (None when a record written before they were kept does not say).
    error: str | None = None  # the error file; None: stderr goes to the output
    workdir: str | None = None
    time_limit: int | None = None  # seconds; None: no limit
    notebook_output: str | None = None  # where a notebook job's executed notebook goes
    attempt: int = 1  # which run of the job this is (1 + the retries so far)
    # What the driver asked for (--cpus, --memory in bytes, --gpus, or the backend's defaults); None: not said.
    cpus: float | None = None
    memory: int | None = None
    gpus: int | None = None
    dependency: str | None = None  # --dependency as its normal text (spec.dependency), e.g. "afterok:k3x9q"

    def elapsed(self, at: datetime | None = None) -> float | None:
        """Seconds run so far (running) or in total (ended); None if never started."""
        if self.started is None:
            return None
        end = self.finished or (None if self.state.is_terminal() else (at or now()))
        if end is None:
            return None
        return (end - self.started).total_seconds()

    def replace(self, **changes: Any) -> JobRecord:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The public JSON shape (CLI.md)."""
        return {
            "id": self.id,
            "name": self.name,
            "user": self.user,
            "backend": self.backend,
            "state": self.state.value,
            "reason": self.reason,
            "exit_code": self.exit_code,
            "submitted": _iso(self.submitted),
            "started": _iso(self.started),
            "finished": _iso(self.finished),
            "script": self.script,
            "args": list(self.args),
            "output": self.output,
            "comment": self.comment,
            "host": self.host,
            "pid": self.pid,
            "dask": self.dask.to_dict() if self.dask else None,
            "owned_clusters": list(self.owned_clusters),
            "error": self.error,
            "workdir": self.workdir,
            "time_limit": self.time_limit,
            "notebook_output": self.notebook_output,
            "attempt": self.attempt,
            "cpus": self.cpus,
            "memory": self.memory,
            "gpus": self.gpus,
            "dependency": self.dependency,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRecord:
        dask = data.get("dask")
        return cls(
            id=data["id"],
            name=data["name"],
            user=data["user"],
            backend=data["backend"],
            state=JobState(data["state"]),
            reason=data.get("reason"),
            exit_code=data.get("exit_code"),
            submitted=_parse_iso(data["submitted"]) or now(),
            started=_parse_iso(data.get("started")),
            finished=_parse_iso(data.get("finished")),
            script=data["script"],
            args=tuple(data.get("args") or ()),
            output=data.get("output"),
            comment=data.get("comment"),
            host=data.get("host"),
            pid=data.get("pid"),
            dask=_dask_info(dask) if dask else None,
            owned_clusters=tuple(data.get("owned_clusters") or ()),
            error=data.get("error"),
            workdir=data.get("workdir"),
            time_limit=data.get("time_limit"),
            notebook_output=data.get("notebook_output"),
            attempt=data.get("attempt") or 1,
            cpus=data.get("cpus"),
            memory=data.get("memory"),
            gpus=data.get("gpus"),
            dependency=data.get("dependency"),
        )


def _dask_info(data: dict[str, Any]) -> DaskInfo:
    status = data.get("cluster_status")
    return DaskInfo(**{**data, "cluster_status": ClusterStatus(status) if status else None})
