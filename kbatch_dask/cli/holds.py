"""``kbatch hold`` and ``kbatch release``: keep pending jobs from starting, and
let them start again (Slurm's ``scontrol hold`` / ``release``)."""

from __future__ import annotations

import sys

import click

from kbatch_dask.cli.commands import cli
from kbatch_dask.cli.completion import job_ids
from kbatch_dask.errors import KbatchError


def _each(job_ids: tuple[str, ...], backend: str | None, release: bool) -> None:
    """Hold (or release) each job; one ``Error:`` line for each that cannot be, then exit 2."""
    from kbatch_dask import api

    code = 0
    for job_id in job_ids:
        try:
            job = api.get_job(job_id, backend)
            state = job.release() if release else job.hold()
        except KbatchError as exc:
            click.echo(f"Error: {exc}", err=True)
            code = max(code, exc.exit_code)
            continue
        reason = f" ({job.record.reason})" if job.record.reason else ""
        click.echo(f"Job {job_id} {'released' if release else 'held'}: {state.value}{reason}")
    if code:
        sys.exit(code)


@cli.command("hold")
@click.argument("job_ids", metavar="JOB...", nargs=-1, required=True, shell_complete=job_ids)
@click.option("--backend", metavar="local|hub")
def hold_cmd(job_ids: tuple[str, ...], backend: str | None) -> None:
    """Keep pending jobs from starting until `kbatch release`.

    Only a job still waiting to start (for quota, a dependency, or already
    held) can be held; one that runs or has ended is an error."""
    _each(job_ids, backend, release=False)


@cli.command("release")
@click.argument("job_ids", metavar="JOB...", nargs=-1, required=True, shell_complete=job_ids)
@click.option("--backend", metavar="local|hub")
def release_cmd(job_ids: tuple[str, ...], backend: str | None) -> None:
    """Let held jobs start, once their dependency and the quota allow."""
    _each(job_ids, backend, release=True)
