"""``--dependency``: when a job may start, with Slurm's meanings.

=====================  =================================================  ===========================
kind                   the job starts once                                never, once
=====================  =================================================  ===========================
``afterok:ID[:ID…]``   every ID has ended SUCCEEDED                       one ended otherwise
``afterany:ID[:ID…]``  every ID has ended, however                        —
``afternotok:ID…``     every ID has ended, none SUCCEEDED                 one ended SUCCEEDED
``singleton``          no earlier job of the user with its name is active —
=====================  =================================================  ===========================

Pure: the spec holds the dependency as its normal text (``afterok:k3x9q:m7p2r``),
:func:`outcome` judges it from the states the backend knows. A predecessor the
backend no longer knows (its record gone) counts as ended in an unknown state:
enough for ``afterany``, never for the others.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kbatch_dask.errors import BadInput

if TYPE_CHECKING:  # records imports the gateway client: not for `kbatch --help`
    from kbatch_dask.records import JobState

KINDS = ("afterok", "afterany", "afternotok", "singleton")
NEVER = "dependency never satisfied"  # the reason of a job cancelled for it
WAITING = "dependency"  # the reason of a job waiting for it
_ID_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")  # job ids of every backend (backends/ids.py)


class Outcome(enum.Enum):
    MET = "met"
    WAIT = "wait"
    NEVER = "never"


@dataclass(frozen=True)
class Dependency:
    kind: str
    ids: tuple[str, ...] = ()

    def __str__(self) -> str:
        return ":".join((self.kind, *self.ids))

    @classmethod
    def parse(cls, text: str) -> Dependency:
        """``afterok:ID[:ID…]``, ``afterany:…``, ``afternotok:…`` or ``singleton``
        (BadInput saying what is allowed).

        >>> str(Dependency.parse("afterok:k3x9q:m7p2r")), Dependency.parse("singleton").ids
        ('afterok:k3x9q:m7p2r', ())
        """
        raw = str(text).strip()
        kind, _, rest = raw.partition(":")
        ids = tuple(rest.split(":")) if rest else ()
        hint = "expected afterok:ID[:ID...], afterany:ID[:ID...], afternotok:ID[:ID...] or singleton"
        if kind not in KINDS:
            raise BadInput(f"--dependency {raw!r}: {hint}")
        if kind == "singleton" and ids:
            raise BadInput(f"--dependency {raw!r}: singleton takes no job ids")
        if kind != "singleton" and not ids:
            raise BadInput(f"--dependency {raw!r}: {kind} needs at least one job id ({hint})")
        for job_id in ids:
            if not job_id or not set(job_id) <= _ID_CHARACTERS:
                raise BadInput(f"--dependency {raw!r}: {job_id!r} is not a job id (like k3x9q)")
        return cls(kind, tuple(dict.fromkeys(ids)))

    def check_known(self, known: Callable[[str], bool]) -> None:
        """BadInput naming the first id that ``known`` does not know (another
        user's job is as unknown as a missing one)."""
        for job_id in self.ids:
            if not known(job_id):
                raise BadInput(f"--dependency {self}: no job {job_id!r} (see `kbatch queue --all` for known jobs)")

    def outcome(self, states: Mapping[str, JobState | None], earlier_same_name_active: bool = False) -> Outcome:
        """Whether the job may start, given its predecessors' states (None: no longer
        known) and, for ``singleton``, whether an earlier job of the user with the
        same name is still pending or running.

        >>> from kbatch_dask.records import JobState
        >>> Dependency("afterok", ("a", "b")).outcome({"a": JobState.SUCCEEDED, "b": JobState.RUNNING})
        <Outcome.WAIT: 'wait'>
        >>> Dependency("afterok", ("a",)).outcome({"a": JobState.FAILED})
        <Outcome.NEVER: 'never'>
        """
        from kbatch_dask.records import JobState

        if self.kind == "singleton":
            return Outcome.WAIT if earlier_same_name_active else Outcome.MET
        found = [states.get(job_id) for job_id in self.ids]
        ended = [s for s in found if s is None or s.is_terminal()]
        if self.kind == "afterok" and any(s is not JobState.SUCCEEDED for s in ended):
            return Outcome.NEVER
        if self.kind == "afternotok" and any(s is None or s is JobState.SUCCEEDED for s in ended):
            return Outcome.NEVER
        return Outcome.MET if len(ended) == len(found) else Outcome.WAIT


def parse_dependency(text: str) -> str:
    """The normal text of ``--dependency text`` (the converter of the option)."""
    return str(Dependency.parse(text))
