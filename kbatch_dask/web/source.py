"""What a host gives the page: a :class:`JobSource` bound to the person asking."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class JobList:
    """A list's JSON (``{"jobs": [...]}``, as the API answers) and its ETag, so
    that a polling page gets a 304 while nothing changed."""

    body: bytes
    etag: str

    @classmethod
    def of(cls, jobs: list[dict[str, Any]]) -> JobList:
        """The list of ``jobs`` (``JobRecord.to_dict()`` each), its ETag a hash of the body.

        >>> JobList.of([]).etag
        '"921e8f3293fce936"'
        """
        body = json.dumps({"jobs": jobs}, sort_keys=True).encode()
        return cls(body, f'"{hashlib.sha256(body).hexdigest()[:16]}"')

    def jobs(self) -> list[dict[str, Any]]:
        return list(json.loads(self.body)["jobs"])


class JobSource(Protocol):
    """The jobs one person may see, as the CLI's JSON. ``user`` is another
    user's name (admins only); ``everyone`` every user's jobs (admins only).
    Errors are :class:`~kbatch_dask.errors.KbatchError`: ``JobNotFound`` for a
    job that is missing or someone else's, ``BadInput`` for a bad request."""

    @property
    def user(self) -> str:
        """Who is asking."""

    @property
    def admin(self) -> bool:
        """Whether they may see every user's jobs."""

    def listing(self, *, everyone: bool, user: str | None) -> JobList: ...

    def job(self, job_id: str, user: str | None) -> dict[str, Any]: ...

    def logs(self, job_id: str, user: str | None, *, follow: bool) -> Iterator[bytes]:
        """The job's output as its backend reads it, bytes never decoded (the page serves them as they are)."""

    def cancel(self, job_id: str, user: str | None) -> dict[str, Any]: ...

    def resubmit(self, job_id: str) -> dict[str, Any]:
        """The asker's own job submitted again (``kbatch resubmit``): the new job."""
