"""The kbatch-dask service's HTTP API v1 as calls: plain ``urllib`` (nothing to
import on the CLI path), the hub token in the header, and each refusal turned
into kbatch's error for it, in one place (:func:`error_for`)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from typing import IO, Any

from kbatch_dask.errors import BackendError, BadInput, Conflict, HubError, JobNotFound, KbatchError, Refused
from kbatch_dask.versions import user_agent

API = "api/v1"
CHUNK = 1 << 20  # the most of a streamed answer taken at a time (what has come, up to this)
Query = Mapping[str, Any] | None  # query parameters; None values are left out


def error_for(status: int, message: str, job_id: str | None = None) -> KbatchError:
    """The error the service's answer ``status`` means.

    >>> error_for(403, "image 'x' is not allowed here")
    Refused("image 'x' is not allowed here")
    """
    if status == 404 and job_id is not None:
        return JobNotFound(job_id)
    if status == 401:
        return HubError(f"the kbatch-dask service refused the token: {message}", status)
    if status == 403:
        return Refused(message)
    if status == 409:
        return Conflict(message)
    if status in (400, 413):
        return BadInput(message)
    return BackendError(f"the kbatch-dask service answered {status}: {message}")


class ServiceClient:
    """Requests to the service at ``url`` (its prefix, e.g. ``http://proxy-public/services/kbatch-dask/``)."""

    def __init__(self, url: str, token: str | None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/") + "/"
        self.token = token
        self.timeout = timeout

    def _open(
        self,
        method: str,
        path: str,
        query: Query = None,
        body: Any = None,
        job_id: str | None = None,
    ) -> IO[bytes]:
        query = {k: v for k, v in (query or {}).items() if v is not None}
        url = f"{self.url}{API}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        headers = {"User-Agent": user_agent()}  # the service tells an incompatible client what to install
        if self.token:
            headers["Authorization"] = f"token {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)  # type: ignore[no-any-return]
        except urllib.error.HTTPError as exc:
            raise error_for(exc.code, _message(exc), job_id) from None
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise BackendError(f"the kbatch-dask service at {self.url} cannot be reached: {reason}") from None

    def json(
        self,
        method: str,
        path: str,
        query: Query = None,
        body: Any = None,
        job_id: str | None = None,
    ) -> Any:
        with self._open(method, path, query, body, job_id) as answer:
            return json.loads(answer.read())

    def raw(self, path: str, query: Query = None, job_id: str | None = None) -> bytes:
        with self._open("GET", path, query, job_id=job_id) as answer:
            return answer.read()

    def stream(self, path: str, query: Query = None, job_id: str | None = None) -> Iterator[bytes]:
        """The answer's body in chunks as they come (``?follow=1`` logs)."""
        with self._open("GET", path, query, job_id=job_id) as answer:
            while chunk := answer.read1(CHUNK) if hasattr(answer, "read1") else answer.read(CHUNK):
                yield chunk


def _message(exc: urllib.error.HTTPError) -> str:
    """The one line of the service's ``{"error": ...}`` (or the HTTP reason from elsewhere, e.g. the proxy)."""
    try:
        return str(json.loads(exc.read())["error"])
    except (ValueError, KeyError, TypeError, OSError):
        return str(exc.reason)
