"""The service's own log: one line per event, plain text or, with
``kbatch.service.log-format: json``, one JSON object per line (what log
collectors such as Loki or Cloud Logging parse).

Every line about a job carries its ``user`` and ``job`` (the JSON's keys; text
lines end with ``user=… job=…``): the access line of each request
(:func:`access_log`, tornado's ``log_function``) and what the handlers log
with ``extra=about(handler)``. Nothing logs a request's body, so the
environment values of a submission (the job's Secret) never reach the log.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from tornado import web

from kbatch_dask.errors import BadInput

FORMATS = ("text", "json")
LEVELS = ("debug", "info", "warning")
READS = ("GET", "HEAD")
FIELDS = ("user", "job")  # what a line about a job is about, when known
# What tornado's own access lines hold; ours (access_log) replaces them.
ACCESS_FIELDS = ("method", "path", "status", "duration_ms", "handler", "client")
log = logging.getLogger("kbatch_dask.service")
access = logging.getLogger("kbatch_dask.service.access")


class JsonFormatter(logging.Formatter):
    """A record as one JSON object: time, level, logger, message, and its fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in FIELDS + ACCESS_FIELDS:
            if getattr(record, key, None) is not None:
                line[key] = getattr(record, key)
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The usual text line, then ``user=… job=…`` when the record is about a job."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(name)s %(levelname)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        about = " ".join(f"{k}={getattr(record, k)}" for k in FIELDS if getattr(record, k, None) is not None)
        return f"{text} {about}" if about else text


def configure(log_format: str, level: str = "info") -> None:
    """Send every log record at ``level`` or above to stderr in ``log_format`` (``text`` or ``json``)."""
    if log_format not in FORMATS:
        raise BadInput(f"config kbatch.service.log-format = {log_format!r}: expected one of {', '.join(FORMATS)}")
    if level not in LEVELS:
        raise BadInput(f"config kbatch.service.log-level = {level!r}: expected one of {', '.join(LEVELS)}")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def access_level(method: str, status: int) -> int:
    """The level of a request's access line. A read that succeeded (or a 304) is
    DEBUG, as in Jupyter Server: queues and pages are polled, and a line each
    cost an eighth of the service's CPU under load. Writes, refusals and
    failures are always written.

    >>> answered = [("GET", 200), ("GET", 304), ("POST", 201), ("GET", 404), ("GET", 503)]
    >>> [logging.getLevelName(access_level(*r)) for r in answered]
    ['DEBUG', 'DEBUG', 'INFO', 'INFO', 'ERROR']
    """
    if status >= 500:
        return logging.ERROR
    if method in READS and (status < 300 or status == 304):
        return logging.DEBUG
    return logging.INFO


def about(handler: web.RequestHandler) -> dict[str, str]:
    """The ``user`` and ``job`` a request is about, as far as it is known (for ``extra=``)."""
    fields = {}
    # tornado's cache, set once a hub user was authenticated; or the owner of the job whose driver it is
    user = getattr(handler, "_current_user", None) or getattr(handler, "job_owner", None)
    if isinstance(user, dict) and user.get("name"):
        fields["user"] = str(user["name"])
    if handler.path_args and getattr(handler, "about_job", False):
        fields["job"] = str(handler.path_args[0])[:63]  # a DNS label at most; anything longer was refused
    return fields


def access_log(observe: Callable[[web.RequestHandler], None]) -> Callable[[web.RequestHandler], None]:
    """Tornado's ``log_function``: one line per request (no query string: nothing
    a user typed beyond the path), and ``observe`` (the request metrics)."""

    def log_request(handler: web.RequestHandler) -> None:
        observe(handler)
        status = handler.get_status()
        request = handler.request
        level = access_level(request.method or "", status)
        if not access.isEnabledFor(level):
            return
        fields: dict[str, Any] = {
            "method": request.method,
            "path": request.path,
            "status": status,
            "duration_ms": round(1000 * request.request_time(), 1),
            "handler": type(handler).__name__,
            "client": request.headers.get("User-Agent", "")[:80] or None,
            **about(handler),
        }
        access.log(level, "%s %s %s %.1fms", request.method, request.path, status, fields["duration_ms"], extra=fields)

    return log_request
