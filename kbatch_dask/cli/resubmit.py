"""``kbatch resubmit``: a job again, as a new job, from its own spec and the
script snapshotted when it was submitted (:mod:`kbatch_dask.resubmit`)."""

from __future__ import annotations

import click

from kbatch_dask.cli.commands import cli
from kbatch_dask.cli.completion import job_ids
from kbatch_dask.errors import BadInput


@cli.command("resubmit")
@click.argument("job_id", metavar="JOB", shell_complete=job_ids)
@click.option("-W", "--wait", is_flag=True, help="Wait for the new job to end; exit with its exit code.")
@click.option("--parsable", is_flag=True, help="Print only the new job's id.")
@click.option("--backend", metavar="local|kubernetes|hub")
def resubmit_cmd(job_id: str, wait: bool, parsable: bool, backend: str | None) -> None:
    """Submit a job again, as a new job with a new id.

    The new job runs the script as it was when JOB was submitted (not the
    file as it is now), with JOB's options; JOB itself is left as it is. On
    Kubernetes and the hub its environment is this session's, as a submit
    makes it; `--env` values given to JOB are not kept there."""
    from kbatch_dask.resubmit import resubmit

    if not job_id.strip():
        raise BadInput("resubmit: give the id of the job to submit again (kbatch queue --all lists them)")
    job = resubmit(job_id.strip(), backend)
    if parsable:
        click.echo(job.id)
    else:
        click.echo(f"Submitted job {job.id} ({job.record.name}); output: {job.record.output}")  # as submit says it
    for warning in job.warnings:
        click.echo(f"Warning: {warning}", err=True)
    if wait:
        from kbatch_dask.cli.waiting import exit_with_job

        exit_with_job(job)
