"""``kbatch history`` (Slurm's ``sacct``): the jobs active at some time in a
window, with elapsed time, state, exit code and requested resources, from any
backend — the local backend's index of ended jobs, the Kubernetes Jobs that
still exist, or the kbatch-dask service's database (``GET /jobs?since=…&until=…``).

The window is ``--since`` (default: midnight today, as sacct) to ``--until``
(default: now); each is an ISO date or time, or an age such as ``2d`` or
``12h`` back from now.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from kbatch_dask import settings
from kbatch_dask.backends import get_backend
from kbatch_dask.errors import BadInput
from kbatch_dask.records import JobRecord, now
from kbatch_dask.spec.units import AGE_UNITS, parse_age


def parse_when(text: str, option: str, at: datetime | None = None) -> datetime:
    """A time of ``--since``/``--until``: an ISO date (its midnight, local time),
    an ISO time (local unless it has an offset), or an age back from ``at``.

    >>> from datetime import timezone
    >>> at = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
    >>> parse_when("2d", "--since", at).isoformat(), parse_when("2026-11-20T08:00+00:00", "--since").isoformat()
    ('2026-11-20T12:00:00+00:00', '2026-11-20T08:00:00+00:00')
    """
    raw = text.strip()
    if raw[-1:].lower() in AGE_UNITS and raw[:-1].isdigit():
        return (at or now()) - timedelta(seconds=parse_age(raw, option))
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise BadInput(
            f"{option} {text!r}: expected an ISO date or time (2026-11-20, 2026-11-20T08:00) or an age (2d, 12h, 30m)"
        ) from None
    return value if value.tzinfo else value.astimezone()  # a naive time is this machine's


def midnight(at: datetime | None = None) -> datetime:
    """The start of ``at``'s day (now's), local time: sacct's default start."""
    local = (at or now()).astimezone()
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def overlapping(records: Sequence[JobRecord], since: datetime, until: datetime | None) -> list[JobRecord]:
    """The records of jobs active at some time between ``since`` and ``until``, oldest first.

    >>> from kbatch_dask.records import JobState
    >>> t = datetime.fromisoformat("2026-11-20T10:00:00+00:00")
    >>> r = JobRecord("a", "n", "u", "local", JobState.SUCCEEDED, t, "s", finished=t + timedelta(hours=1))
    >>> [len(overlapping([r], t + timedelta(hours=s), t + timedelta(hours=u))) for s, u in ((0, 2), (2, 3), (-2, -1))]
    [1, 0, 0]
    """
    kept = [
        r
        for r in records
        if (until is None or r.submitted <= until)
        and (not r.state.is_terminal() or (r.finished or r.submitted) >= since)
    ]
    return sorted(kept, key=lambda r: (r.submitted, r.id))


def records(
    since: datetime | None = None,
    until: datetime | None = None,
    user: str | None = None,
    backend: str | None = None,
) -> list[JobRecord]:
    """The jobs of ``kbatch history`` (``since`` None: midnight today); ``user``: only theirs."""
    start = since or midnight()
    if until is not None and until < start:
        raise BadInput(f"--until {until.isoformat()} is before --since {start.isoformat()}")
    config = settings.load()
    found = get_backend(backend or config.backend, config).list(ended_since=start)
    return [r for r in overlapping(found, start, until) if user is None or r.user == user]
