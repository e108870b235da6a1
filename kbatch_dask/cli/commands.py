"""The commands of ``kbatch``: each parses its options, calls the API and renders
the answer."""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import click

from kbatch_dask.cli.completion import DefaultSubmitGroup, job_ids, script_files
from kbatch_dask.cli.queue import HELP_OPTIONS, queue_cmd
from kbatch_dask.errors import KbatchError
from kbatch_dask.spec.options import SPEC_OPTIONS
from kbatch_dask.spec.units import parse_seconds


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kbatch-dask")
    except PackageNotFoundError:
        return "unknown"


def _print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    # Looked up only when asked: importlib.metadata would slow every command down.
    if value and not ctx.resilient_parsing:
        click.echo(f"kbatch, version {_version()}")
        ctx.exit()


@click.group(cls=DefaultSubmitGroup, context_settings=HELP_OPTIONS)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version and exit.",
)
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Run scripts as batch jobs with their own Dask cluster.

    \b
      kbatch train.py --dask-workers 20     submit; prints the job id
      kbatch queue                          jobs, states, workers, dashboards
      kbatch logs JOB -f                    follow a job's output

    Shell completion (script files, commands, job ids): add
    eval "$(_KBATCH_COMPLETE=bash_source kbatch)" to ~/.bashrc (zsh_source in
    ~/.zshrc; for fish, _KBATCH_COMPLETE=fish_source kbatch | source).
    """
    ctx.obj = {"debug": debug}


@cli.command(
    "submit",
    context_settings={"allow_interspersed_args": False},
    epilog="\b\nSubmit options go before SCRIPT. After it, only the Dask options\n"
    "(--dask-workers, --dask-option, --worker-cores, --worker-memory,\n"
    "--wait-for-workers) are still kbatch's; every other argument, and\n"
    "everything after --, goes to the script. #KBATCH lines at the top of\n"
    "the script take the same options.",
)
@click.option("-W", "--wait", is_flag=True, help="Wait for the job to end; exit with its exit code.")
@click.option("--parsable", is_flag=True, help="Print only the job id.")
@click.option("--dry-run", is_flag=True, help="Validate and print what would be submitted; create nothing.")
@click.argument("script", shell_complete=script_files)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def submit_cmd(wait: bool, parsable: bool, dry_run: bool, script: str, args: tuple[str, ...], **options: Any) -> None:
    """Submit SCRIPT as a batch job (the default command)."""
    from kbatch_dask import api

    spec = api.make_spec(script, args, **options)
    if dry_run:
        click.echo(api.dry_run(spec))
        return
    job = api.submit_spec(spec)
    if parsable:
        click.echo(job.id)
    else:
        click.echo(f"Submitted job {job.id} ({job.record.name}); output: {job.record.output}")
    for warning in job.warnings:
        click.echo(f"Warning: {warning}", err=True)
    if wait:
        from kbatch_dask.cli.waiting import exit_with_job

        exit_with_job(job)


for _option in reversed(SPEC_OPTIONS):
    submit_cmd.params.insert(0, _option)


cli.add_command(queue_cmd)


@cli.command("show")
@click.argument("job_id", metavar="JOB", shell_complete=job_ids)
@click.option("-o", "--output", type=click.Choice(("table", "json", "yaml")), default="table", show_default=True)
@click.option("--backend", metavar="local|kubernetes")
def show_cmd(job_id: str, output: str, backend: str | None) -> None:
    """Show everything known about one job: state and reason, times, files
    (output, error, executed notebook), working directory, time limit, attempt,
    Dask cluster and its workers' size, and one line of its report."""
    from kbatch_dask import render
    from kbatch_dask.cli.shown import shown, shown_json

    record, found = shown(job_id, backend)
    if output == "json":
        click.echo(render.to_json(shown_json(record, found)))
    elif output == "yaml":
        click.echo(render.to_yaml(shown_json(record, found)))
    else:
        click.echo(render.show(record, found.line() if found else None))


@cli.command("report")
@click.argument("job_id", metavar="JOB", shell_complete=job_ids)
@click.option("-o", "--output", type=click.Choice(("table", "json")), default="table", show_default=True)
@click.option("--backend", metavar="local|kubernetes")
def report_cmd(job_id: str, output: str, backend: str | None) -> None:
    """What the job's Dask cluster did (Slurm's seff): wall time, cluster start
    wait, worker-seconds, CPU and memory efficiency, spill, the task prefixes
    that took the time, a cost estimate where prices are configured, and a hint
    when the job asked for more than it used."""
    from kbatch_dask import api, render

    report = api.get_job(job_id, backend).report()
    click.echo(render.to_json(report.to_dict()) if output == "json" else report.render())


@cli.command("history")
@click.option(
    "--since", metavar="TIME", help="From this time: an ISO date or time, or an age (2d, 12h). [default: midnight]"
)
@click.option("--until", metavar="TIME", help="To this time, as --since. [default: now]")
@click.option("-u", "--user", help="Only jobs of this user.")
@click.option("-o", "--output", type=click.Choice(("table", "json", "yaml")), default="table", show_default=True)
@click.option("--backend", metavar="local|kubernetes|hub")
def history_cmd(since: str | None, until: str | None, user: str | None, output: str, backend: str | None) -> None:
    """List past and present jobs, sacct-like.

    The jobs active between --since and --until, ended or not, with their
    elapsed time, state, exit code and requested resources. The hub backend
    remembers jobs long after Kubernetes deleted them, the local backend every
    job of its state directory, the kubernetes backend those whose Job still
    exists."""
    from kbatch_dask import history, render

    start = history.parse_when(since, "--since") if since else None
    end = history.parse_when(until, "--until") if until else None
    records = history.records(start, end, user, backend)
    if output == "table":
        click.echo(render.history_table(records))
        return
    data = [{**r.to_dict(), "elapsed": r.elapsed()} for r in records]
    click.echo(render.to_json(data) if output == "json" else render.to_yaml(data))


@cli.command("logs")
@click.argument("job_id", metavar="JOB", shell_complete=job_ids)
@click.option("-f", "--follow", is_flag=True, help="Keep printing output until the job ends.")
@click.option("--stderr", "error", is_flag=True, help="Print the error file (-e) instead of the output.")
@click.option("--all", "both", is_flag=True, help="Print the output and the error file, each under ==> FILE <==.")
@click.option("-n", "--tail", type=click.IntRange(min=0), metavar="N", help="Only the last N lines (of each file).")
@click.option("--backend", metavar="local|kubernetes")
def logs_cmd(job_id: str, follow: bool, error: bool, both: bool, tail: int | None, backend: str | None) -> None:
    """Print a job's output: its stdout, and its stderr unless -e gave that a
    file of its own (--stderr prints that file, --all both). A Kubernetes
    job's pod log holds both streams. Big files are printed as they are read."""
    from kbatch_dask import api
    from kbatch_dask.cli.printing import print_chunks

    if error and both:
        raise click.UsageError("--stderr and --all cannot be combined")
    job = api.get_job(job_id, backend)
    chunks = job.log_bytes(follow=follow, stream="all" if both else "error" if error else "output", tail=tail)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends a followed log, quietly
        print_chunks(chunks, sys.stdout.buffer)


@cli.command("cancel")
@click.argument("job_ids", metavar="JOB...", nargs=-1, required=True, shell_complete=job_ids)
@click.option("--backend", metavar="local|kubernetes")
def cancel_cmd(job_ids: tuple[str, ...], backend: str | None) -> None:
    """Cancel jobs; their Dask clusters are stopped."""
    from kbatch_dask import api

    failed = False
    for job_id in job_ids:
        try:
            job = api.get_job(job_id, backend)
            was = job.record.state
            state = job.cancel()
        except KbatchError as exc:
            click.echo(f"Error: {exc}", err=True)
            failed = True
            continue
        if was.is_terminal():
            click.echo(f"Job {job_id} had already ended ({state.value})")
        else:
            click.echo(f"Job {job_id} {state.value}")
    if failed:
        sys.exit(1)


@cli.command("wait")
@click.argument("job_id", metavar="JOB", shell_complete=job_ids)
@click.option(
    "--timeout",
    metavar="SECONDS",
    callback=lambda _ctx, _param, value: None if value is None else parse_seconds(value),
    help="Give up after this many seconds, 0 or more (exit 1).",
)
@click.option("--backend", metavar="local|kubernetes")
def wait_cmd(job_id: str, timeout: float | None, backend: str | None) -> None:
    """Wait for a job to end; exit with its exit code."""
    from kbatch_dask import api
    from kbatch_dask.cli.waiting import exit_with_job

    job = api.get_job(job_id, backend)
    try:
        exit_with_job(job, timeout)
    except TimeoutError as exc:
        raise KbatchError(str(exc)) from None


@cli.command("gc")
@click.option("--dry-run", is_flag=True, help="List what would be stopped; stop nothing.")
@click.option("--all", "all_clusters", is_flag=True, help="Also stop running clusters that belong to no kbatch job.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask before stopping clusters without a job (--all).")
@click.option("--backend", metavar="local|kubernetes")
def gc_cmd(dry_run: bool, all_clusters: bool, yes: bool, backend: str | None) -> None:
    """Stop Dask clusters whose job has ended or vanished."""
    from kbatch_dask import api

    # One look at every running cluster, so that gc can say what it leaves alone too.
    planned = api.gc(dry_run=True, all_clusters=True, backend=backend)
    orphans = [a.cluster for a in planned if a.job_id is None]
    if all_clusters and orphans and not dry_run and not yes:
        click.echo("Running clusters that belong to no kbatch job:")
        for name in orphans:
            click.echo(f"  {name}")
        if not click.confirm("Stop them too?"):
            all_clusters = False  # declined: stop only those of ended jobs, and say so below
    actions = api.gc(dry_run=dry_run, all_clusters=all_clusters, backend=backend)
    for action in actions:
        verb = "stopped" if action.stopped else "would stop"
        click.echo(f"{verb} cluster {action.cluster} ({action.why})")
    left = orphans and not all_clusters
    if not actions and left:
        click.echo("Nothing to stop: no running cluster belongs to an ended or vanished job.")
    elif not actions:
        click.echo("Nothing to stop: every running cluster belongs to a running job.")
    if left:
        click.echo(
            f"Left running: {len(orphans)} cluster(s) that belong to no kbatch job ({', '.join(orphans)}); "
            "`kbatch gc --all` stops them."
        )


@cli.command("doctor")
@click.option("-o", "--output", type=click.Choice(("table", "json")), default="table", show_default=True)
@click.option("--backend", metavar="local|kubernetes", help="Check this backend instead of the configured one.")
def doctor_cmd(output: str, backend: str | None) -> None:
    """Check that jobs can run from here; say how to fix what cannot. Exits 1 if something needed fails."""
    from kbatch_dask.doctor import report
    from kbatch_dask.doctor.probes import diagnose

    checks = diagnose(backend)
    if output == "json":
        click.echo(report.to_json(checks))
    else:
        encoding = getattr(sys.stdout, "encoding", None) or "ascii"
        try:
            "✓✗".encode(encoding)
            unicode = True
        except (UnicodeEncodeError, LookupError):
            unicode = False
        click.echo(report.render(checks, unicode=unicode))
    if not report.passed(checks):
        sys.exit(1)


@cli.group("gateway")
def gateway_group() -> None:
    """The embedded local Dask-Gateway (used when no gateway.address is configured)."""


@gateway_group.command("start")
def gateway_start() -> None:
    """Start the embedded gateway (jobs start it on first need anyway)."""
    from kbatch_dask import api

    click.echo(api.gateway_start())


@gateway_group.command("stop")
@click.option("--force", is_flag=True, help="Stop it under running jobs too: they end FAILED, saying why.")
def gateway_stop(force: bool) -> None:
    """Stop the embedded gateway and the clusters it runs.

    Refused (exit 1) while jobs with a Dask cluster run, naming them; with
    --force their drivers stop their clusters first and record them FAILED.
    """
    from kbatch_dask import api

    click.echo(api.gateway_stop(force=force))


@gateway_group.command("status")
def gateway_status() -> None:
    """Say whether the embedded gateway runs, and where; exit 1 if not.

    A gateway still starting is shown as starting (exit 0): jobs wait for it."""
    from kbatch_dask import api

    running, text = api.gateway_status()
    click.echo(text)
    if not running:
        sys.exit(1)
