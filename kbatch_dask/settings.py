"""The one typed settings object: the ``kbatch`` namespace of dask config.

:func:`load` builds a frozen :class:`Settings` at the edge (the API, the CLI,
a driver's ``main``) and passes it, or the section a part needs, down. The
defaults live only in ``kbatch.yaml`` (shipped in the package, a comment on
every key); each field here is a key there, spelled with ``_`` for ``-``
(``tests/test_settings.py`` holds the two, and docs/configuration.md, in step).
Values are checked and converted once, here::

    >>> load().driver.kill_grace
    10.0

Each class has a docstring: a dataclass without one gets its signature as one,
computed with ``inspect`` when the class is made, on every command's start.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from typing import Any

from kbatch_dask import config
from kbatch_dask.errors import BadInput
from kbatch_dask.frozen import FrozenMethods


@dataclasses.dataclass(frozen=True, repr=False, eq=False)  # FrozenMethods'
class Dask(FrozenMethods):
    """``kbatch.dask``: a job's cluster when the submission does not say."""

    workers: str  # N, MIN:MAX or 0, as --dask-workers


@dataclasses.dataclass(frozen=True, repr=False, eq=False)  # FrozenMethods'
class Driver(FrozenMethods):
    """``kbatch.driver``: how a job's driver waits, retries and stops."""

    kill_grace: float
    gateway_retry: float
    dead_mans_switch_grace: float
    dead_mans_switch_silence: float
    cluster_lost_after: float
    wait_for_workers: str  # N or "all", as --wait-for-workers
    wait_for_workers_timeout: float


@dataclasses.dataclass(frozen=True, repr=False, eq=False)  # FrozenMethods'
class Report(FrozenMethods):
    """``kbatch.report``: the report a job writes at its end, and its prices."""

    enabled: bool
    html: bool
    core_hour_price: float | None
    gb_hour_price: float | None
    currency: str


@dataclasses.dataclass(frozen=True, repr=False, eq=False)  # FrozenMethods'
class Queue(FrozenMethods):
    """``kbatch.queue``: which ended jobs the queue shows, how long it asks for live counts."""

    recent_hours: float
    live_timeout: float


@dataclasses.dataclass(frozen=True, repr=False, eq=False)  # FrozenMethods'
class Local(FrozenMethods):
    """``kbatch.local``: the local backend's state directory and cancel."""

    home: str | None
    cancel_timeout: float


@dataclasses.dataclass(frozen=True, repr=False, eq=False)  # FrozenMethods'
class EmbeddedGatewayLimits(FrozenMethods):
    """``kbatch.embedded-gateway``: the local backend's own gateway and its limits."""

    cluster_max_workers: int
    worker_cores: int
    worker_cores_max: int
    worker_memory: float
    worker_memory_max: float
    start_timeout: float
    attach_timeout: float


@dataclasses.dataclass(frozen=True, repr=False, eq=False)  # FrozenMethods'
class Hub(FrozenMethods):
    """``kbatch.hub``: the JupyterHub tokens of jobs, and the hub's address."""

    job_tokens: bool
    token_scopes: tuple[str, ...]
    revoke_at_end: bool
    token_margin: int
    token_lifetime: int
    timeout: float
    public_url: str | None


@dataclasses.dataclass(frozen=True, repr=False, eq=False)  # FrozenMethods'
class Kubernetes(FrozenMethods):
    """``kbatch.kubernetes``: the Kubernetes backend's jobs and pods."""

    namespace: str | None
    context: str | None
    image: str | None
    service_account: str | None
    cpus: float | None
    memory: str | None
    ttl_days: float
    termination_grace: int
    page_size: int
    pod_template: dict[str, Any]
    api_connect_timeout: float
    api_read_timeout: float
    start_margin: int
    queue_name: str | None
    rwo_home: str  # pin, without or refuse (checked where it is used: pod_settings.plan_claims)


@dataclasses.dataclass(frozen=True, repr=False, eq=False)  # FrozenMethods'
class ServiceLimits(FrozenMethods):
    """``kbatch.service.limits``: what each user (and all) may run at once."""

    max_running_jobs: int
    max_running_jobs_total: int | None
    max_queued_jobs: int | None
    max_dask_workers: int | None
    max_time: str | None  # a time limit as --time takes it
    max_cpus: float | None
    max_memory: str | None  # a size as --memory takes it
    max_gpus: int | None


@dataclasses.dataclass(frozen=True, repr=False, eq=False)  # FrozenMethods'
class ServiceArchive(FrozenMethods):
    """``kbatch.service.archive``: where the service keeps ended jobs' files."""

    directory: str
    max_log_bytes: int
    max_result_bytes: int


@dataclasses.dataclass(frozen=True, repr=False, eq=False)  # FrozenMethods'
class ServiceMail(FrozenMethods):
    """``kbatch.service.mail``: how the service mails its jobs' users."""

    smtp_host: str | None  # None: the service sends no mail (--mail-type is refused)
    smtp_port: int | None  # None: the security's usual port
    security: str  # "starttls", "ssl" or "plain"
    username: str | None
    password_env: str | None  # the name of the variable holding the password, never the password
    password_file: str | None
    from_address: str | None
    address_template: str | None  # "{username}@example.org"
    retries: int
    timeout: float
    log_lines: int


@dataclasses.dataclass(frozen=True, repr=False, eq=False)  # FrozenMethods'
class ServiceHistory(FrozenMethods):
    """``kbatch.service.history``: how long the service keeps job records."""

    retention: str | None  # how long job records are kept, e.g. "90d"; None: for ever


@dataclasses.dataclass(frozen=True, repr=False, eq=False)  # FrozenMethods'
class Service(FrozenMethods):
    """``kbatch.service``: the kbatch-dask service and the jobs it runs."""

    url: str | None
    token: str | None
    name: str
    namespace: str | None
    namespace_mode: str
    namespace_template: str
    service_account: str
    jobs_cluster_role: str
    allowed_images: tuple[str, ...]
    admin_groups: tuple[str, ...]
    pod_template: dict[str, Any]
    max_body_size: int
    driver_url: str | None
    log_format: str  # "text" or "json"
    log_level: str  # "debug", "info" or "warning"
    start_timeout: float  # seconds a pod may wait for a fatal reason before its job fails
    database_url: str
    history: ServiceHistory
    limits: ServiceLimits
    archive: ServiceArchive
    mail: ServiceMail


@dataclasses.dataclass(frozen=True, repr=False, eq=False)  # FrozenMethods'
class Settings(FrozenMethods):
    """The ``kbatch`` namespace, one field per section of ``kbatch.yaml``."""

    backend: str
    output: str
    notebook_output: str
    dask: Dask
    driver: Driver
    report: Report
    queue: Queue
    local: Local
    embedded_gateway: EmbeddedGatewayLimits
    hub: Hub
    kubernetes: Kubernetes
    service: Service


def load() -> Settings:
    """The settings now in force (config files, ``DASK_KBATCH__*`` variables,
    ``dask.config.set``), over the defaults of ``kbatch.yaml``."""
    return typing.cast(Settings, _build(Settings, _namespace(), "kbatch"))


def _namespace() -> Mapping[str, Any]:
    """The ``kbatch`` config over the shipped defaults (merged here too: a
    ``dask.config.set`` that ran before the defaults were registered removes
    them from dask's config when it exits)."""
    data = config.dask_get("kbatch", {})
    shipped = copy.deepcopy(config.defaults().get("kbatch", {}))
    return config.update(shipped, data) if isinstance(data, Mapping) else shipped


def all_keys(cls: type = Settings, prefix: str = "") -> list[str]:
    """Every key of the settings, dotted and spelled as in ``kbatch.yaml``.

    >>> all_keys()[:3]
    ['backend', 'output', 'notebook-output']
    """
    out = []
    for field in dataclasses.fields(cls):
        key = prefix + field.name.replace("_", "-")
        kind = _hints(cls)[field.name]
        out += all_keys(kind, key + ".") if isinstance(kind, type) and dataclasses.is_dataclass(kind) else [key]
    return out


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """The fields' types (what ``typing.get_type_hints`` gives), each distinct annotation
    evaluated once: get_type_hints compiles all hundred of them, most of ``load``'s time."""
    return {f.name: _evaluated(f.type) if isinstance(f.type, str) else f.type for f in dataclasses.fields(cls)}


@functools.cache
def _evaluated(annotation: str) -> Any:
    return eval(annotation, globals())  # an annotation of this module's own classes


def _build(cls: type, data: Mapping[str, Any], path: str) -> Any:
    values = {}
    for field in dataclasses.fields(cls):
        key = config.canonical_name(field.name.replace("_", "-"), data)
        where = f"{path}.{field.name.replace('_', '-')}"
        if key not in data:
            raise BadInput(f"config {where} is missing (its default is in kbatch.yaml)")
        kind = _hints(cls)[field.name]
        value = data[key]
        if dataclasses.is_dataclass(kind):
            values[field.name] = _build(kind, value if isinstance(value, Mapping) else {}, where)  # type: ignore[arg-type]
        else:
            values[field.name] = _convert(value, kind, where)
    return cls(**values)


def _convert(value: Any, kind: Any, where: str) -> Any:
    """``value`` as ``kind`` (a field's type); BadInput naming the key if it cannot be."""
    if isinstance(kind, types.UnionType):  # X | None
        if value is None:
            return None
        (kind,) = (k for k in typing.get_args(kind) if k is not type(None))
    origin = typing.get_origin(kind)
    if origin is tuple:
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise BadInput(f"config {where} = {value!r}: expected a list")
        return tuple(str(v) for v in value)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise BadInput(f"config {where} = {value!r}: expected a mapping")
        return dict(value)
    if kind is bool:
        if not isinstance(value, bool):
            raise BadInput(f"config {where} = {value!r}: expected true or false")
        return value
    if kind in (int, float):
        try:
            if isinstance(value, bool):
                raise ValueError
            number = kind(value)
        except (TypeError, ValueError):
            word = "a whole number" if kind is int else "a number"
            raise BadInput(f"config {where} = {value!r}: expected {word}") from None
        if kind is int and float(value) != number:
            raise BadInput(f"config {where} = {value!r}: expected a whole number")
        return number
    return str(value)
