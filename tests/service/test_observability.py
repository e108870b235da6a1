"""The service's log lines and metrics, without a server: formatters and counters."""

from __future__ import annotations

import json
import logging
from unittest.mock import Mock

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tornado import httputil, web

from kbatch_dask.errors import BadInput, KubeError, Refused
from kbatch_dask.records import JobState
from kbatch_dask.service.logs import JsonFormatter, TextFormatter, access_log, configure
from kbatch_dask.service.metrics import Metrics


def record(**extra: str) -> logging.LogRecord:
    line = logging.LogRecord("kbatch_dask.service", logging.INFO, __file__, 1, "submitted job %s", ("k3x9q",), None)
    line.__dict__.update(extra)
    return line


def test_a_json_line_is_one_object_with_the_user_and_the_job() -> None:
    line = JsonFormatter().format(record(user="alice", job="k3x9q"))
    assert "\n" not in line
    data = json.loads(line)
    assert (data["message"], data["user"], data["job"], data["level"]) == (
        "submitted job k3x9q",
        "alice",
        "k3x9q",
        "INFO",
    )


def test_a_text_line_ends_with_the_user_and_the_job() -> None:
    assert (
        TextFormatter().format(record(user="alice", job="k3x9q")).endswith("submitted job k3x9q user=alice job=k3x9q")
    )
    assert TextFormatter().format(record()).endswith("submitted job k3x9q")


def test_an_unknown_log_format_names_the_setting() -> None:
    with pytest.raises(BadInput, match=r"kbatch.service.log-format = 'xml': expected one of text, json"):
        configure("xml")


def samples(
    metrics: Metrics, by_state: dict[JobState, int] | None
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.page(by_state).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_submissions_are_counted_by_outcome_and_refusals_by_limit() -> None:
    metrics = Metrics()
    with metrics.submission():
        pass
    for exc in (Refused("--cpus 8 is over", limit="max-cpus"), BadInput("bad"), KubeError("down")):
        with pytest.raises(type(exc)), metrics.submission():
            raise exc
    got = samples(metrics, {JobState.PENDING: 2, JobState.RUNNING: 1})
    for outcome in ("accepted", "refused", "bad-input", "unavailable"):
        assert got[("kbatch_dask_submissions_total", (("outcome", outcome),))] == 1
    assert got[("kbatch_dask_refusals_total", (("reason", "max-cpus"),))] == 1
    assert got[("kbatch_dask_jobs", (("state", "PENDING"),))] == 2
    assert got[("kbatch_dask_jobs", (("state", "SUCCEEDED"),))] == 0
    assert (got[("kbatch_dask_queue_length", ())], got[("kbatch_dask_kubernetes_up", ())]) == (2, 1)


def test_a_page_without_kubernetes_says_so_and_still_answers() -> None:
    assert samples(Metrics(), None)[("kbatch_dask_kubernetes_up", ())] == 0


def answered(method: str, status: int) -> web.RequestHandler:
    app = web.Application()
    request = httputil.HTTPServerRequest(method=method, uri="/services/kbatch-dask/api/v1/jobs", connection=Mock())
    handler = web.RequestHandler(app, request)
    handler.path_args = []  # what tornado sets before calling the handler
    handler.set_status(status)
    return handler


def test_successful_reads_are_logged_at_debug_and_writes_and_failures_always(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    log_request = access_log(metrics.observe)
    with caplog.at_level(logging.INFO, logger="kbatch_dask.service.access"):
        for method, status in [("GET", 200), ("GET", 304), ("HEAD", 200), ("POST", 201), ("GET", 404), ("GET", 503)]:
            log_request(answered(method, status))
    lines = [(r.levelname, r.method, r.status) for r in caplog.records]  # type: ignore[attr-defined]
    assert lines == [("INFO", "POST", 201), ("INFO", "GET", 404), ("ERROR", "GET", 503)]
    # Every request is still counted, logged or not.
    counted = samples(metrics, {})
    get_200 = (("code", "200"), ("handler", "RequestHandler"), ("method", "GET"))
    assert counted[("kbatch_dask_request_duration_seconds_count", get_200)] == 1
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="kbatch_dask.service.access"):
        log_request(answered("GET", 200))
    assert [(r.levelname, r.status) for r in caplog.records] == [("DEBUG", 200)]  # type: ignore[attr-defined]


def test_an_unknown_log_level_names_the_setting() -> None:
    with pytest.raises(BadInput, match=r"kbatch.service.log-level = 'loud': expected one of debug, info, warning"):
        configure("text", "loud")
