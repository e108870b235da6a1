"""The Python API; the CLI is a thin layer over it.

Configuration is read here, at the edge, and passed down as values.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kbatch_dask import settings
from kbatch_dask.backends import Backend, get_backend
from kbatch_dask.errors import BackendError, BadInput, KbatchError
from kbatch_dask.gateway import ClusterInfo, ClusterStatus, configured_gateway
from kbatch_dask.job import Job
from kbatch_dask.listing import backend_for
from kbatch_dask.listing import list_records as list_records  # the API's, defined with the queue
from kbatch_dask.listing import show_record as show_record
from kbatch_dask.records import JobRecord
from kbatch_dask.spec import JobSpec, build_spec
from kbatch_dask.spec.environment import exported_environment
from kbatch_dask.spec.options import SPEC_OPTION_NAMES
from kbatch_dask.spec.units import format_size

HUB_BACKEND = "hub"  # the kbatch-dask service's (backends/hub), imported only when used

if TYPE_CHECKING:
    from kbatch_dask.backends.local.backend import LocalBackend
    from kbatch_dask.reaper import GcAction
    from kbatch_dask.settings import Settings


def _config_layer(settings: Settings) -> dict[str, Any]:
    return {
        "output": settings.output,
        "dask_workers": settings.dask.workers,
        "wait_for_workers": settings.driver.wait_for_workers,
        "backend": settings.backend,
        "notebook_output": settings.notebook_output,
    }


def _raw_options(options: dict[str, Any]) -> dict[str, Any]:
    """API keyword arguments as raw option values (``dask_workers=4`` → ``"4"``)."""
    unknown = sorted(set(options) - set(SPEC_OPTION_NAMES))
    if unknown:
        raise BadInput(f"unknown option {unknown[0]!r}; allowed: {', '.join(SPEC_OPTION_NAMES)}")
    raw: dict[str, Any] = {}
    for key, value in options.items():
        if value is None:
            continue
        if key in ("env", "dask_option") and isinstance(value, dict):
            raw[key] = tuple(f"{k}={v}" for k, v in value.items())
        elif key in ("env", "dask_option"):
            raw[key] = tuple(str(v) for v in value)
        elif key == "parameter":
            pairs = value.items() if isinstance(value, dict) else value
            raw[key] = tuple((str(k), str(v)) for k, v in pairs)
        elif key == "dask_workers" and isinstance(value, (tuple, list)):
            raw[key] = ":".join(str(v) for v in value)
        else:
            raw[key] = str(value)
    return raw


def make_spec(script: str | os.PathLike[str], args: Sequence[str] = (), **options: Any) -> JobSpec:
    """Validate a submission without submitting it (what ``--dry-run`` shows)."""
    path = os.fspath(script) if isinstance(script, os.PathLike) else script
    if not isinstance(path, str) or not path:
        raise BadInput(f"submit: the script must be a path (str or os.PathLike), got {script!r}")
    return build_spec(path, tuple(args), _raw_options(options), config=_config_layer(settings.load()))


def submit_spec(spec: JobSpec) -> Job:
    """Submit a validated spec to its backend."""
    config = settings.load()
    backend = get_backend(spec.backend, config)
    cautions = backend.check(spec)
    _check_cluster_options(spec, backend)
    environment = exported_environment(spec.export, spec.env, os.environ)
    from kbatch_dask.hub import tokens as hub

    # Under JupyterHub the job gets a hub token of its own (see hub/tokens.py);
    # the kbatch-dask service (backend "hub") mints its jobs' tokens itself.
    with hub.job_token(
        name=spec.name,
        time_limit=spec.time_limit,
        needs_gateway=bool(spec.workers) and backend.name != HUB_BACKEND,
        environ=os.environ,
        policy=hub.TokenPolicy.from_settings(config.hub, configured_gateway()),
    ) as credentials:
        environment.update(credentials.env)
        record = backend.submit(spec, environment)
    job = Job(record, backend)
    job.warnings = (*cautions, *((credentials.warning,) if credentials.warning else ()))
    return job


def _warned(job: Job) -> Job:
    """Issue the submission's warnings the Python way (the CLI prints them itself)."""
    for warning in job.warnings:
        warnings.warn(warning, stacklevel=3)
    return job


def _check_cluster_options(spec: JobSpec, backend: Backend) -> None:
    """Catch a typo in --dask-option now rather than after the job starts, when
    the gateway can be asked without starting anything."""
    options = spec.cluster_options()
    if not spec.workers or not options:
        return
    from kbatch_dask.gateway import GatewayClient  # here: most submissions ask the gateway nothing
    from kbatch_dask.gateway.options import check_cluster_options

    try:
        settings = backend.gateway()
        if settings is None:
            return
        with GatewayClient(settings) as client:
            declared = client.cluster_options()
    except KbatchError:
        return  # unreachable now: the driver will retry, and report a refusal itself
    said: dict[str, str] = {}
    if spec.worker_memory is not None:
        said["worker_memory"] = f"--worker-memory {format_size(spec.worker_memory)}"
    if spec.worker_cores is not None:
        said["worker_cores"] = f"--worker-cores {spec.worker_cores:g}"
    check_cluster_options(options, declared, said)


def submit(script: str | os.PathLike[str], *args: str, **options: Any) -> Job:
    """Submit ``script`` as a batch job and return at once.

    Options are the submit options of the CLI, by their long names with ``_``
    (``dask_workers="2:10"`` or ``(2, 10)``, ``time="1:00:00"``, ``env={"A": "1"}``).

    >>> job = submit("train.py", "--epochs", "3", dask_workers=4)  # doctest: +SKIP
    >>> job.wait()  # doctest: +SKIP
    <JobState.SUCCEEDED: 'SUCCEEDED'>
    """
    return _warned(submit_spec(make_spec(script, args, **options)))


# Keyword arguments of submit_with_cluster that configure the job; everything
# the function itself takes goes in ``kwargs=``, so the two never mix.
FUNCTION_JOB_OPTIONS = (
    "n_workers", "worker_cores", "worker_memory", "dask_options", "name", "comment", "time", "cpus",
    "memory", "gpus", "env", "export", "image", "output", "error", "chdir", "retries", "backend",
)  # fmt: skip


def submit_with_cluster(
    fn: Callable[..., Any],
    *args: Any,
    kwargs: Mapping[str, Any] | None = None,
    n_workers: int | tuple[int, int] | str | None = None,
    **options: Any,
) -> Job:
    """Run ``fn(*args, **kwargs)`` as a batch job with its own Dask cluster.

    The function is shipped with cloudpickle (by value when it is defined in
    ``__main__``, a notebook, or a module next to your code), called inside the
    job with the cluster's client as the default Dask client, and its return
    value (or exception) stored for :meth:`Job.result`.

    Keyword arguments configure the *job* — ``n_workers`` (``20`` or
    ``(2, 20)`` for adaptive), ``worker_cores``, ``worker_memory``,
    ``dask_options`` (a dict of other gateway options), ``name``, ``time``,
    ``cpus``, ``memory``, ``gpus``, ``env``, ``backend``, …; the function's own
    keyword arguments go in ``kwargs={...}``. An unknown keyword is an error,
    so the two can never be confused.

    >>> def train(path, epochs=1):
    ...     import dask.bag as db
    ...     return db.range(100, npartitions=4).sum().compute()
    >>> job = submit_with_cluster(train, "data/", kwargs={"epochs": 3}, n_workers=2)  # doctest: +SKIP
    >>> job.result()  # doctest: +SKIP
    4950
    """
    from kbatch_dask.driver.payload import pack_function
    from kbatch_dask.spec import PAYLOAD_SUFFIX

    unknown = sorted(set(options) - set(FUNCTION_JOB_OPTIONS))
    if unknown:
        raise BadInput(
            f"submit_with_cluster: unknown job option {unknown[0]!r}; job options are n_workers, "
            f"{', '.join(FUNCTION_JOB_OPTIONS[1:])}; pass the function's keyword arguments as kwargs={{...}}"
        )
    _check_call(fn, kwargs)
    data = pack_function(fn, args, kwargs or {})
    raw = dict(options)
    if n_workers is not None:
        raw["dask_workers"] = n_workers
    raw["dask_option"] = raw.pop("dask_options", None)
    raw.setdefault("name", getattr(fn, "__name__", "function").strip("<>") or "function")
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(raw["name"]))[:64] or "function"
    import tempfile  # here: only a function's submission needs it

    with tempfile.TemporaryDirectory(prefix="kbatch-payload-") as tmp:
        path = os.path.join(tmp, stem + PAYLOAD_SUFFIX)
        with open(path, "wb") as f:
            f.write(data)
        spec = build_spec(path, (), _raw_options(raw), config=_config_layer(settings.load()), payload=True)
        # The backend snapshots the payload before this temporary directory goes.
        return _warned(submit_spec(spec))


def _check_call(fn: Callable[..., Any], kwargs: Mapping[str, Any] | None) -> None:
    """Refuse at submit a call that could only fail in the job."""
    what = getattr(fn, "__name__", repr(fn))
    # The job sends back what the call returns, and a generator or coroutine cannot be pickled.
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        raise BadInput(f"submit_with_cluster: {what} is a generator function; return a list instead")
    if inspect.iscoroutinefunction(fn):
        raise BadInput(f"submit_with_cluster: {what} is an async function; run it with asyncio.run in a plain function")
    if kwargs is None:
        return
    if not isinstance(kwargs, Mapping):
        raise BadInput(f"submit_with_cluster: kwargs must be a dict of keyword arguments, got {type(kwargs).__name__}")
    for key in kwargs:
        if not isinstance(key, str):
            raise BadInput(f"submit_with_cluster: kwargs keys must be the function's parameter names, got {key!r}")


_backend = backend_for


def get_job(job_id: str, backend: str | None = None) -> Job:
    """The job with this id.

    >>> get_job("k3x9q").state  # doctest: +SKIP
    <JobState.RUNNING: 'RUNNING'>
    """
    b = _backend(backend)
    return Job(b.get(job_id), b)


def jobs(**filters: Any) -> list[Job]:
    """This user's jobs (``all=True`` includes ended ones older than a day).

    >>> [j.id for j in jobs(states=[JobState.RUNNING])]  # doctest: +SKIP
    ['k3x9q']
    """
    b = _backend(filters.get("backend"))
    return [Job(r, b) for r in list_records(**filters)]


def gc(*, dry_run: bool = False, all_clusters: bool = False, backend: str | None = None) -> list[GcAction]:
    """Stop this user's clusters whose kbatch job has ended or vanished; with
    ``all_clusters``, also running clusters that belong to no kbatch job.
    Idempotent: a second run finds nothing.

    >>> [a.why for a in gc(dry_run=True)]  # doctest: +SKIP
    ['job k3x9q LOST']
    """
    from kbatch_dask.gateway import GatewayClient
    from kbatch_dask.reaper import stale_clusters

    b = _backend(backend)
    records = b.list(ended_since=None)
    found = b.gateway()
    if found is None:
        return _gc_without_gateway(b, records, dry_run=dry_run, all_clusters=all_clusters)
    with GatewayClient(found) as client:
        actions = stale_clusters(records, client.list_clusters(), all_clusters=all_clusters)
        if dry_run:
            return actions
        for action in actions:
            client.stop_cluster(action.cluster)
    return [dataclasses.replace(action, stopped=True) for action in actions]


def _gc_without_gateway(
    backend: Backend, records: list[JobRecord], *, dry_run: bool, all_clusters: bool
) -> list[GcAction]:
    """No gateway to ask (the embedded one was killed): the clusters whose processes
    still run here, of ended jobs (with ``all_clusters``: of no job too), ended directly."""
    from kbatch_dask.reaper import stale_clusters

    running = backend.clusters_without_gateway()
    clusters = {name: ClusterInfo(name, ClusterStatus.RUNNING, None) for name in running}
    actions = []
    for action in stale_clusters(records, clusters, all_clusters=all_clusters):
        count = running[action.cluster]
        done = "would end" if dry_run else "ended"
        why = f"{action.why}; no gateway runs: {done} its {count} process{'es' if count > 1 else ''}"
        if not dry_run:
            backend.end_cluster(action.cluster)
        actions.append(dataclasses.replace(action, why=why, stopped=not dry_run))
    return actions


def _local() -> LocalBackend:
    from kbatch_dask.backends.local.backend import LocalBackend

    return LocalBackend()


def gateway_start() -> str:
    """Start the embedded gateway if it is not running; say where it listens."""
    configured = configured_gateway()
    if configured is not None:
        return f"A gateway is configured (gateway.address = {configured.address}); nothing to start."
    settings = _local().gateway(start=True)
    assert settings is not None
    return f"Embedded Dask-Gateway running at {settings.address}"


FORCED_STOP_REASON = "the embedded Dask-Gateway was stopped by `kbatch gateway stop --force`"


def gateway_stop(force: bool = False) -> str:
    """Stop the embedded gateway (and its clusters). Refused while jobs use it,
    unless ``force``: then those jobs are ended first, FAILED, saying why."""
    from kbatch_dask.backends.local import embedded_gateway as embedded

    backend = _local()
    using = backend.embedded_gateway_jobs()
    if using and not force:
        names = ", ".join(f"{r.id} ({r.name})" for r in using)
        raise BackendError(
            f"{len(using)} running job(s) use the embedded Dask-Gateway: {names}; "
            "stopping it would kill their clusters (wait for them, cancel them, or pass --force to end them FAILED)"
        )
    # The jobs' drivers stop their clusters and record their end while the gateway still answers.
    lines = [f"Job {backend.fail(r.id, FORCED_STOP_REASON).id} ended FAILED" for r in using]
    stopped = embedded.stop(backend.home)
    lines.append("Embedded Dask-Gateway stopped" if stopped else "Embedded Dask-Gateway was not running")
    return "\n".join(lines)


def gateway_status() -> tuple[bool, str]:
    """Whether the embedded gateway runs (or is starting), and a line saying so."""
    from kbatch_dask.backends.local import embedded_gateway as embedded
    from kbatch_dask.spec import current_user

    configured = configured_gateway()
    if configured is not None:
        return True, f"Using the configured gateway at {configured.address} (gateway.address)"
    server = embedded.recorded(_local().home, current_user())
    if server is None:
        return False, "Embedded Dask-Gateway not running (jobs start it when they need it)"
    state = "starting" if embedded.starting(server) else "running"
    return True, f"Embedded Dask-Gateway {state} at {server.address} (pid {server.pid}, log {server.log})"


def dry_run(spec: JobSpec) -> str:
    """What submitting ``spec`` would create, as YAML (``--dry-run``); creates nothing."""
    backend = _backend(spec.backend)
    backend.check(spec)
    return backend.dry_run(spec, exported_environment(spec.export, spec.env, os.environ))
