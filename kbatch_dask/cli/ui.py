"""``kbatch ui``: the queue's web page (:mod:`kbatch_dask.web`) for this user's
jobs, served on 127.0.0.1 at a free port (:mod:`.ui_server`). ``kbatch ui --url``
prints the running page's link (kept, owner-only, in the state directory), or
the service's page when the backend is the hub."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from kbatch_dask.cli.commands import cli
from kbatch_dask.errors import BadInput, KbatchError

URL_FILE = "ui.json"  # in the local state directory: the running page's link and pid


def _url_file() -> Path:
    from kbatch_dask import settings
    from kbatch_dask.backends.local.backend import detect_home

    return Path(detect_home(settings.load().local).value) / URL_FILE


def _running_url(backend: str | None) -> str:
    """The link of the page this user's ``kbatch ui`` serves now (the hub's: the service's root)."""
    from kbatch_dask import settings

    config = settings.load()
    chosen = backend or config.backend
    if chosen == "hub" or (chosen == "auto" and config.service.url):
        if not config.service.url:
            raise BadInput("the hub backend needs kbatch.service.url: the page is at its root")
        return config.service.url.rstrip("/") + "/"
    try:
        kept = json.loads(_url_file().read_text())
        os.kill(int(kept["pid"]), 0)
    except (OSError, ValueError, KeyError):
        raise BadInput("no `kbatch ui` is running: start one with `kbatch ui`") from None
    return str(kept["url"])


@cli.command("ui")
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Port on 127.0.0.1 (default: a free one).")
@click.option("--no-browser", is_flag=True, help="Print the link only; do not open a browser.")
@click.option("--url", "url_only", is_flag=True, help="Print the link of the running page (the hub's: the service's).")
@click.option("--backend", metavar="local|kubernetes")
def ui_cmd(port: int, no_browser: bool, url_only: bool, backend: str | None) -> None:
    """Serve the queue's web page for your jobs on 127.0.0.1: the jobs live, a
    job's log as it grows, cancel. The link holds a token; share it with nobody."""
    if url_only:
        click.echo(_running_url(backend))
        return
    import asyncio

    from kbatch_dask.cli.ui_server import LocalJobs, serve

    try:
        asyncio.run(serve(LocalJobs(backend), port, _url_file(), browser=not no_browser))
    except OSError as exc:
        raise KbatchError(f"cannot serve on 127.0.0.1:{port}: {exc.strerror}") from None
    except KeyboardInterrupt:
        pass
