"""The job spec: every user choice about a job, validated once.

:func:`build_spec` merges the layers in CLI.md's precedence (command line >
``KBATCH_*`` variables > ``#KBATCH`` lines > config > built-in defaults) and
turns raw strings into a frozen :class:`JobSpec`. All validation of user input
happens here, with messages that say what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kbatch_dask.errors import BadInput
from kbatch_dask.spec.dependency import parse_dependency
from kbatch_dask.spec.directives import parse_directives
from kbatch_dask.spec.mail import check_address, parse_mail_type
from kbatch_dask.spec.options import MULTIPLE_OPTIONS, env_values, explicit_values
from kbatch_dask.spec.script import read_script
from kbatch_dask.spec.units import is_digits, parse_size, parse_time
from kbatch_dask.users import current_user as current_user  # spec.current_user, as before

MAX_NAME_LEN = 128
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_OPTION_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
BACKENDS = ("auto", "local", "kubernetes", "hub")
PAYLOAD_SUFFIX = ".kbatch-function.pkl"  # a function job's "script": its pickled call (driver/payload.py)


@dataclass(frozen=True)
class Workers:
    """The requested cluster size: fixed (``minimum == maximum``) or adaptive."""

    minimum: int
    maximum: int
    adaptive: bool = False

    def __str__(self) -> str:
        return f"{self.minimum}:{self.maximum}" if self.adaptive else str(self.maximum)

    @classmethod
    def parse(cls, text: str) -> Workers | None:
        """``"4"`` → 4 workers, ``"2:20"`` → adaptive 2..20, ``"0"`` → no cluster (None).

        >>> Workers.parse("2:20"), Workers.parse("0")
        (Workers(minimum=2, maximum=20, adaptive=True), None)
        """
        hint = "expected N (0 for no cluster) or MIN:MAX with 0 <= MIN <= MAX and MAX >= 1"
        raw = str(text).strip()
        parts = raw.split(":")
        if len(parts) > 2 or not all(is_digits(p) for p in parts):
            raise BadInput(f"--dask-workers {text!r}: {hint}")
        if len(parts) == 1:
            n = int(parts[0])
            return cls(n, n) if n else None
        low, high = int(parts[0]), int(parts[1])
        if high < 1 or low > high:
            raise BadInput(f"--dask-workers {text!r}: {hint}")
        return cls(low, high, adaptive=True)

    def capped(self, limit: int) -> str:
        """What the job runs with when the gateway allows at most ``limit`` workers per cluster.

        >>> Workers(2, 20, adaptive=True).capped(8)
        '--dask-workers 2:20: the gateway allows at most 8 workers per cluster; the job runs with 2:8'
        """
        granted = Workers(min(self.minimum, limit), min(self.maximum, limit), self.adaptive)
        allowed = f"{limit} worker" + ("" if limit == 1 else "s")
        return f"--dask-workers {self}: the gateway allows at most {allowed} per cluster; the job runs with {granted}"


@dataclass(frozen=True)
class JobSpec:
    """What to run and how; JSON-serialisable with :meth:`to_dict`."""

    script: str
    name: str
    user: str
    workdir: str
    output: str
    args: tuple[str, ...] = ()
    error: str | None = None
    comment: str | None = None
    cpus: float | None = None
    memory: int | None = None
    gpus: int = 0
    time_limit: int | None = None
    workers: Workers | None = None
    wait_for_workers: str = "0"  # a count, or "all" (see required_workers)
    worker_cores: float | None = None
    worker_memory: int | None = None
    dask_options: tuple[tuple[str, str], ...] = ()
    image: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    export: str = "ALL"
    retries: int = 0
    backend: str = "auto"
    parameters: tuple[tuple[str, str], ...] = ()
    notebook_output: str | None = None
    dependency: str | None = None  # its normal text (spec.dependency.Dependency parses it)
    mail_type: tuple[str, ...] = ()  # of spec.mail.MAIL_TYPES
    mail_user: str | None = None

    def required_workers(self) -> int:
        """Workers the cluster must have before the user's code starts: the
        requested count, capped at the cluster's size at rest (``all``: that
        size): a fixed cluster's count, an adaptive cluster's minimum (it
        grows only once there is work).

        >>> spec = JobSpec("s.py", "s", "me", "/", "o", workers=Workers(2, 10, True), wait_for_workers="all")
        >>> adaptive_from_zero = dataclasses.replace(spec, workers=Workers(0, 10, True), wait_for_workers="1")
        >>> spec.required_workers(), adaptive_from_zero.required_workers()
        (2, 0)
        """
        if self.workers is None:
            return 0
        size = self.workers.minimum if self.workers.adaptive else self.workers.maximum
        return size if self.wait_for_workers == "all" else min(int(self.wait_for_workers), size)

    @property
    def kind(self) -> str:
        """``function`` (a pickled call), ``notebook``, ``python`` or ``executable``."""
        if self.script.endswith(PAYLOAD_SUFFIX):
            return "function"
        if self.script.endswith(".ipynb"):
            return "notebook"
        return "python" if self.script.endswith(".py") else "executable"

    def notebook_parameters(self) -> dict[str, Any]:
        """``-p`` values typed as papermill's CLI types them (numbers, booleans)."""
        return {k: _option_value(v) for k, v in self.parameters}

    def executed_notebook(self, job_id: str, folder: str) -> str | None:
        """Where a notebook job's executed notebook goes (relative paths in ``folder``,
        the output file's: ``%x-%j.ipynb`` by default); None for other jobs."""
        if self.kind != "notebook":
            return None
        return expand_pattern(self.notebook_output or "%x-%j.ipynb", job_id, self.name, self.user, folder)

    def cluster_options(self) -> dict[str, Any]:
        """The gateway cluster options this job asks for.

        ``worker_memory`` is given to the gateway in GiB, as daskhub and the
        embedded gateway declare it.
        """
        options: dict[str, Any] = {k: _option_value(v) for k, v in self.dask_options}
        if self.worker_cores is not None:
            options["worker_cores"] = self.worker_cores
        if self.worker_memory is not None:
            options["worker_memory"] = round(self.worker_memory / 2**30, 3)
        return options

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["workers"] = str(self.workers) if self.workers else "0"
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobSpec:
        values = dict(data)
        values["workers"] = Workers.parse(values.get("workers") or "0")
        values["args"] = tuple(values.get("args") or ())
        values["dask_options"] = tuple(tuple(kv) for kv in values.get("dask_options") or ())
        values["env"] = tuple(tuple(kv) for kv in values.get("env") or ())
        values["parameters"] = tuple(tuple(kv) for kv in values.get("parameters") or ())
        values["mail_type"] = tuple(values.get("mail_type") or ())
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def _option_value(text: str) -> Any:
    """Gateway options are typed; pass numbers and booleans as such."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def build_spec(
    script: str,
    args: tuple[str, ...] | list[str] = (),
    options: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    config: Mapping[str, Any] | None = None,
    cwd: str | None = None,
    payload: bool = False,
) -> JobSpec:
    """Merge option layers and validate them into a :class:`JobSpec`.

    ``options`` are the command line's (or the API's) raw values by option
    name; ``config`` holds defaults read from the ``kbatch`` config namespace
    (keys ``output``, ``dask_workers``, ``backend``, ``notebook_output``).
    With ``payload``, ``script`` is a pickled function call: it has no
    ``#KBATCH`` lines to read.

    >>> spec = build_spec("examples/hello_dask.py", options={"dask_workers": "1:4"})
    >>> spec.name, str(spec.workers)
    ('hello_dask', '1:4')
    """
    environ = os.environ if environ is None else environ
    cwd = cwd or os.getcwd()
    path = os.path.abspath(os.path.join(cwd, os.path.expanduser(script)))
    text = "" if payload else read_script(path)
    from_env = env_values(environ)
    for key, value in from_env.items():
        try:
            check_option(key, value)
        except BadInput as exc:
            raise BadInput(f"KBATCH_{key.upper()}: {exc}") from None
    layers = [
        dict(config or {}),
        parse_directives(text, source=script, check=check_option),
        from_env,
        explicit_values(options or {}),
    ]
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if key in MULTIPLE_OPTIONS:
                merged[key] = tuple(merged.get(key, ())) + tuple(value)
            else:
                merged[key] = value
    return _validate(path, tuple(str(a) for a in args), merged, environ, cwd)


# Each option's converter: validates a raw value and returns it typed.
_CONVERTERS: dict[str, Any] = {
    "name": lambda v: _name(v),
    "output": lambda v: _pattern("--output", v),
    "error": lambda v: _pattern("--error", v),
    "cpus": lambda v: _positive_number("--cpus", v),
    "memory": lambda v: parse_size(v, "--memory"),
    "gpus": lambda v: _count("--gpus", v, 0),
    "time": lambda v: parse_time(v),
    "dask_workers": lambda v: Workers.parse(v),
    "wait_for_workers": lambda v: _wait_for_workers(v),
    "worker_cores": lambda v: _positive_number("--worker-cores", v),
    "worker_memory": lambda v: parse_size(v, "--worker-memory"),
    "dask_option": lambda v: _pairs("--dask-option", v, _OPTION_KEY),
    "env": lambda v: _pairs("--env", v, _ENV_KEY),
    "retries": lambda v: _count("--retries", v, 0),
    "backend": lambda v: _backend(v),
    "export": lambda v: _export(v),
    "dependency": lambda v: parse_dependency(v),
    "mail_type": lambda v: parse_mail_type(v),
    "mail_user": lambda v: check_address(v),
}


def check_option(name: str, value: Any) -> None:
    """Validate one raw option value on its own (BadInput if it is bad)."""
    convert = _CONVERTERS.get(name)
    if convert is not None:
        convert(value)


def _converted(values: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """Option ``name`` converted by its converter, or ``default`` when it was not given."""
    raw = values.get(name)
    return default if raw is None or raw == "" or raw == () else _CONVERTERS[name](raw)


def _wait_for_workers(text: Any) -> str:
    value = str(text).strip().lower()
    if value != "all" and not is_digits(value):
        raise BadInput(f"--wait-for-workers {text!r}: expected a number of workers (0 or more) or 'all'")
    return value if value == "all" else str(int(value))


def _backend(text: Any) -> str:
    backend = str(text or "auto").lower()
    if backend not in BACKENDS:
        raise BadInput(f"--backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    return backend


def _export(text: Any) -> str:
    export = str(text or "ALL")
    if export.upper() in ("ALL", "NONE"):
        return export.upper()
    for var in export.split(","):
        if not _ENV_KEY.match(var):
            raise BadInput(f"--export {export!r}: expected ALL, NONE or a comma-separated list of variable names")
    return export


def _validate(path: str, args: tuple[str, ...], v: Mapping[str, Any], environ: Mapping[str, str], cwd: str) -> JobSpec:
    name = _name(v.get("name") or os.path.splitext(os.path.basename(path))[0])
    workdir = os.path.abspath(os.path.join(cwd, os.path.expanduser(v.get("chdir") or cwd)))
    if not os.path.isdir(workdir):
        raise BadInput(f"--chdir {v.get('chdir')!r}: no such directory")
    backend = _backend(v.get("backend"))
    export = _export(v.get("export"))
    return JobSpec(
        script=path,
        args=args,
        name=name,
        user=current_user(environ),
        workdir=workdir,
        output=_converted(v, "output", "~/kbatch-%j.out"),
        error=_converted(v, "error"),
        comment=v.get("comment") or None,
        cpus=_converted(v, "cpus"),
        memory=_converted(v, "memory"),
        gpus=_converted(v, "gpus", 0),
        time_limit=_converted(v, "time"),
        workers=_converted(v, "dask_workers"),
        wait_for_workers=_converted(v, "wait_for_workers", "0"),
        worker_cores=_converted(v, "worker_cores"),
        worker_memory=_converted(v, "worker_memory"),
        dask_options=_converted(v, "dask_option", ()),
        image=v.get("image") or None,
        env=_converted(v, "env", ()),
        export=export,
        retries=_converted(v, "retries", 0),
        backend=backend,
        parameters=tuple((str(k), str(v)) for k, v in v.get("parameter", ())),
        notebook_output=_pattern("notebook output", v["notebook_output"]) if v.get("notebook_output") else None,
        dependency=_converted(v, "dependency"),
        mail_type=_converted(v, "mail_type", ()),
        mail_user=_converted(v, "mail_user"),
    )


def _name(text: str) -> str:
    name = str(text).strip()
    if not name:
        raise BadInput("--name: must not be empty")
    if len(name) > MAX_NAME_LEN:
        raise BadInput(f"--name {name[:20]!r}...: at most {MAX_NAME_LEN} characters, got {len(name)}")
    if "/" in name or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise BadInput(f"--name {name!r}: must not contain '/' or control characters")
    return name


def _pattern(option: str, text: str) -> str:
    pattern = str(text)
    if pattern.endswith("/") or os.path.basename(pattern) in (".", ".."):  # known on every backend
        example = os.path.join(pattern, "%x-%j.out")
        raise BadInput(f"{option} {pattern!r}: names a directory; name a file in it, e.g. {example}")
    stripped = pattern.replace("%%", "")
    for match in re.finditer(r"%(.?)", stripped):
        if match.group(1) not in ("j", "x", "u"):
            raise BadInput(f"{option} {pattern!r}: unknown pattern %{match.group(1)}; allowed: %j %x %u %%")
    return pattern


def _positive_number(option: str, text: Any) -> float | None:
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = math.nan
    # ASCII only: float() also reads other scripts' digits ("٣"), which no other option takes.
    if not str(text).isascii() or not 0 < value < math.inf:
        raise BadInput(f"{option} {text!r}: expected a positive number")
    return int(value) if value.is_integer() else value


def _count(option: str, text: Any, default: int) -> int:
    if text is None or text == "":
        return default
    raw = str(text).strip()
    if not is_digits(raw):
        raise BadInput(f"{option} {text!r}: expected a whole number >= 0")
    return int(raw)


def _pairs(option: str, items: Any, key_re: re.Pattern[str]) -> tuple[tuple[str, str], ...]:
    found: dict[str, str] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key_re.match(key):
            raise BadInput(f"{option} {item!r}: expected KEY=VALUE with KEY a name like MY_VAR")
        found[key] = value
    return tuple(found.items())


def expand_pattern(pattern: str, job_id: str, name: str, user: str, workdir: str) -> str:
    """Fill in ``%j %x %u %%`` and make the path absolute (relative to the workdir).

    >>> expand_pattern("out/%x-%j.%%", "k3x9q", "train", "alice", "/home/alice")
    '/home/alice/out/train-k3x9q.%'
    """
    table = {"j": job_id, "x": name, "u": user, "%": "%"}
    expanded = re.sub(r"%([jxu%])", lambda m: table[m.group(1)], pattern)
    return os.path.abspath(os.path.join(workdir, os.path.expanduser(expanded)))
