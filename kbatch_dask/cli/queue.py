"""``kbatch queue``, which is also the ``kqueue`` command.

Its own module, so that ``kqueue`` imports this command and what it calls, not
every command of ``kbatch`` (the spec's options, completion, the other
commands): the queue is the command people type most.
"""

from __future__ import annotations

import time
from typing import Any

import click

OUTPUT_FORMATS = ("table", "wide", "json", "yaml")
HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}


def render_records(records: list[Any], output: str) -> str:
    from kbatch_dask import render

    if output == "json":
        return render.to_json([r.to_dict() for r in records])
    if output == "yaml":
        return render.to_yaml([r.to_dict() for r in records])
    return render.table(records, wide=output == "wide")


@click.command("queue", context_settings=HELP_OPTIONS)
@click.option("--all", "show_all", is_flag=True, help="Include jobs that ended more than a day ago.")
@click.option("--state", "states", metavar="STATE[,STATE]", help="Only jobs in these states.")
@click.option("-u", "--user", help="Only jobs of this user.")
@click.option("--me", is_flag=True, help="Only your own jobs.")
@click.option("-o", "--output", type=click.Choice(OUTPUT_FORMATS), default="table", show_default=True)
@click.option(
    "--watch",
    is_flag=True,
    help="Redraw every 2 seconds, fitted to the terminal, until interrupted; with -o json, one JSON array per line.",
)
@click.option("--backend", metavar="local|kubernetes", help="Which backend's jobs to list.")
def queue_cmd(
    show_all: bool, states: str | None, user: str | None, me: bool, output: str, watch: bool, backend: str | None
) -> None:
    """List jobs with their state, live Dask workers and dashboard."""
    from kbatch_dask.listing import list_records
    from kbatch_dask.records import JobState
    from kbatch_dask.users import current_user

    wanted = JobState.parse_list(states) if states else ()
    who = current_user() if me else user
    if not watch:
        click.echo(render_records(list_records(all=show_all, states=wanted, user=who, backend=backend), output))
        return
    try:
        while True:
            records = list_records(all=show_all, states=wanted, user=who, backend=backend)
            _draw(records, output)
            time.sleep(2)
    except KeyboardInterrupt:
        return


def _draw(records: list[Any], output: str) -> None:
    """One refresh of ``queue --watch``: a JSON document per line, a YAML document, or
    the screen redrawn to fit the terminal."""
    if output == "json":
        import json

        click.echo(json.dumps([r.to_dict() for r in records]))
    elif output == "yaml":
        click.echo("---\n" + render_records(records, output))
    else:
        import shutil

        from kbatch_dask.cli.screen import fit

        size = shutil.get_terminal_size()
        click.clear()
        text = f"{time.strftime('%H:%M:%S')}  (Ctrl-C to stop)\n{render_records(records, output)}"
        click.echo(fit(text, size.columns, size.lines))
