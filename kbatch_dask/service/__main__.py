"""``python -m kbatch_dask.service`` (``kbatch-dask-service``): run the service."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sys
from datetime import timedelta
from typing import TYPE_CHECKING

from kbatch_dask import settings
from kbatch_dask.errors import KbatchError

if TYPE_CHECKING:
    from kbatch_dask.service.cache import JobCache
    from kbatch_dask.service.driver_events import DriverEvents
    from kbatch_dask.service.history import Recorder
    from kbatch_dask.service.jobs import JobService

SWEEP_PERIOD = 60.0
STUCK_PERIOD = 30.0
RETENTION_PERIOD = 3600.0  # seconds between two deletions of the records past kbatch.service.history.retention


async def serve() -> None:
    from kbatch_dask.service.logs import configure

    config = settings.load()
    # Before the imports: JupyterHub's log lines at import are in the format too.
    configure(config.service.log_format, config.service.log_level)

    from kbatch_dask.backends.kubernetes.client import KubeAPI, Timeouts
    from kbatch_dask.service.app import Listen, make_app, namespace
    from kbatch_dask.service.archive import forget
    from kbatch_dask.service.cache import JobCache
    from kbatch_dask.service.history import History, Recorder
    from kbatch_dask.spec.units import parse_age

    retention = config.service.history.retention
    keep = timedelta(seconds=parse_age(retention, "kbatch.service.history.retention")) if retention else None
    # The database first, migrated to this version's schema: the cache tells it every change from its first list.
    records = Recorder(await asyncio.to_thread(History, config.service.database_url)).start()
    listen = Listen.from_environ(os.environ, config.service.name)
    # Bounded calls: an unreachable API server is a 503 within the api-*-timeout settings, never a hung request.
    api = KubeAPI(config.kubernetes.context or None, Timeouts.of(config.kubernetes))
    # The watches have a client of their own: a silent API server is noticed (and
    # /health says so) instead of waited on for ever. Per-user namespaces are
    # watched all at once (one watch each for Jobs and pods, across namespaces).
    watching = KubeAPI(config.kubernetes.context or None, Timeouts.of(config.kubernetes))
    watched = "" if config.service.namespace_mode == "per-user" else namespace(config, api)
    cache = JobCache(watching, watched, listener=records).start()
    records.touch = cache.touch
    app = make_app(config, api, listen, cache, records)
    # Bodies over the limit are answered 413 by the handler, in JSON; tornado's
    # own limit (which drops the connection) only stops the absurd.
    archive = config.service.archive
    largest = max(4 * config.service.max_body_size, 2 * archive.max_log_bytes, 2 * archive.max_result_bytes)
    app.listen(listen.port, listen.host, max_body_size=largest + 65536)
    log = logging.getLogger("kbatch_dask.service")
    log.info("listening on %s:%s%s (job records: %s)", listen.host, listen.port, listen.prefix, records.history.url)
    jobs = app.settings["kbatch_jobs"]
    records.on_expired = functools.partial(forget, jobs.archive)  # a job's uploads go with its record
    try:
        await asyncio.gather(
            sweep_tokens(jobs.driver_events, cache, log), fail_stuck(jobs, cache, log), expire(records, keep, log)
        )
    finally:
        records.stop()


async def expire(records: Recorder, keep: timedelta | None, log: logging.Logger) -> None:
    """Forever, unless records are kept for ever: delete those of jobs that ended
    more than ``keep`` ago (at start, then every :data:`RETENTION_PERIOD` seconds)."""
    while keep is not None:
        try:
            await asyncio.to_thread(records.expire, keep)
        except KbatchError as exc:  # the database unreachable: next time
            log.warning("could not delete old job records: %s", exc)
        await asyncio.sleep(RETENTION_PERIOD)


async def sweep_tokens(events: DriverEvents, cache: JobCache, log: logging.Logger) -> None:
    """Forever: revoke the hub tokens of jobs that ended without saying so, and
    mail their ends (once the watch cache is up, then every :data:`SWEEP_PERIOD` seconds)."""
    while True:
        if cache.up:
            try:
                await asyncio.to_thread(events.sweep, cache.all_jobs())
            except KbatchError as exc:  # the hub unreachable: next time
                log.warning("could not revoke ended jobs' hub tokens: %s", exc)
        await asyncio.sleep(SWEEP_PERIOD if cache.up else 1.0)


async def fail_stuck(jobs: JobService, cache: JobCache, log: logging.Logger) -> None:
    """Forever: fail the jobs whose pods can never start, looking a few times
    per ``start-timeout`` (in the cache's memory; no API request to look)."""
    period = min(STUCK_PERIOD, max(1.0, jobs.config.service.start_timeout / 4))
    while True:
        if cache.up:
            try:
                await asyncio.to_thread(jobs.fail_stuck)
            except KbatchError as exc:  # Kubernetes unreachable: next time
                log.warning("could not fail the jobs that can never start: %s", exc)
        await asyncio.sleep(period)


def main() -> None:
    try:
        asyncio.run(serve())
    except KbatchError as exc:
        sys.exit(f"Error: {exc}")
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
