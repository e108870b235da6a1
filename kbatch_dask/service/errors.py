"""Every error of the API as ``{"error": "<one line>"}`` with its status, in
one place: kbatch's errors mapped to HTTP statuses, anything unexpected a 500
whose traceback goes to the service's log, never to the client."""

from __future__ import annotations

import logging
from typing import Any, NoReturn

from tornado import web

from kbatch_dask.errors import BadInput, Conflict, JobNotFound, KbatchError, KubeError, Refused
from kbatch_dask.service.logs import about

log = logging.getLogger("kbatch_dask.service")


def status_of(exc: KbatchError) -> int:
    """The HTTP status of one of kbatch's errors.

    >>> status_of(Refused("image 'x' is not allowed")), status_of(KubeError("down", None))
    (403, 503)
    """
    if isinstance(exc, Refused):
        return 403
    if isinstance(exc, Conflict):
        return 409
    if isinstance(exc, BadInput):
        return 400
    if isinstance(exc, JobNotFound):
        return 404
    if isinstance(exc, KubeError):
        return 503 if exc.status is None or exc.status >= 500 else 502
    return 500


def one_line(text: str) -> str:
    return " ".join(text.split()) or "error"


def refuse(status: int, message: str) -> NoReturn:
    """Answer ``status`` with ``message`` (one line)."""
    raise web.HTTPError(status, log_message=one_line(message).replace("%", "%%"))


class JsonErrors(web.RequestHandler):
    """A handler whose every error is a JSON object with one line."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, KbatchError):
            self.set_status(status_of(exc))
            message = one_line(str(exc))
        elif isinstance(exc, web.HTTPError):
            message = one_line((exc.log_message % exc.args if exc.log_message else None) or self._reason)
        else:
            message = "internal error of the service (its log says more)" if status_code >= 500 else self._reason
        self.clear_header("Content-Type")
        self.finish({"error": message})

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, KbatchError | web.HTTPError):
            log.info("%s %s: %s", self.request.method, self.request.path, one_line(str(value)), extra=about(self))
        else:
            super().log_exception(typ, value, tb)
