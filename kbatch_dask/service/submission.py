"""A ``POST /jobs`` body, checked field by field and validated into a
:class:`~kbatch_dask.spec.JobSpec` by the same :func:`~kbatch_dask.spec.build_spec`
as the CLI's (so the messages are the CLI's).

The body (SERVICE.md)::

    {"spec": {"dask_workers": "2", "time": "10:00", "chdir": "/home/jovyan", ...},
     "args": ["--epochs", "3"],
     "script": {"name": "train.py", "content": "<base64>"},
     "environment": {"K": "V"},
     "payload": "<base64 of a function job's pickled call, instead of script.content>"}

``spec`` holds submit options by their long names (``-`` or ``_``), as the
Python API takes them; an unknown field anywhere is refused by name, never
dropped. The user is the caller's hub name, never a field of the body.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import os
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kbatch_dask.errors import BadInput
from kbatch_dask.spec import PAYLOAD_SUFFIX, JobSpec, build_spec
from kbatch_dask.spec.environment import is_denied
from kbatch_dask.spec.options import MULTIPLE_OPTIONS, PAIR_OPTIONS, SPEC_OPTION_NAMES

FIELDS = ("spec", "args", "script", "environment", "payload")
SCRIPT_FIELDS = ("name", "content")
# Options the service decides itself: where the job runs is the service's backend.
NOT_ACCEPTED = ("backend",)
DEFAULT_OUTPUT = "kbatch-%j.out"  # in the job's working directory: "~" is the service's home here


@dataclass(frozen=True)
class Submission:
    """What a user asked for, checked but not yet validated into a spec."""

    options: dict[str, Any]
    args: tuple[str, ...]
    script_name: str
    content: bytes
    environment: dict[str, str]
    is_function: bool

    def spec(self, user: str, folder: str, defaults: Mapping[str, Any]) -> JobSpec:
        """The validated spec, its script (or payload) written into ``folder``
        (which must outlive the submission to the backend). ``defaults``: the
        config layer of :func:`~kbatch_dask.spec.build_spec`."""
        options = dict(self.options)
        workdir = options.pop("chdir", None) or "/"
        if not posixpath.isabs(workdir) or workdir.startswith("~"):
            raise BadInput(f"--chdir {workdir!r}: expected an absolute path (the job's working directory)")
        for option in ("output", "error"):
            if str(options.get(option, "")).startswith("~"):
                raise BadInput(f"--{option} {options[option]!r}: expected an absolute path or one relative to --chdir")
        options.setdefault("output", DEFAULT_OUTPUT)
        name = self.script_name + (PAYLOAD_SUFFIX if self.is_function else "")
        path = os.path.join(folder, name)
        with open(path, "wb") as f:
            f.write(self.content)
        spec = build_spec(
            path,
            self.args,
            options,
            environ={"JUPYTERHUB_USER": user},  # no KBATCH_* of the service's own environment
            config=dict(defaults),
            cwd=folder,
            payload=self.is_function,
        )
        return dataclasses.replace(spec, workdir=posixpath.normpath(workdir), backend="kubernetes")


def parse(body: bytes) -> Submission:
    """The body of ``POST /jobs``; BadInput naming the first bad field."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadInput(f"the request body is not JSON: {str(exc).splitlines()[0]}") from None
    data = _object(data, "the request body")
    _known(data, FIELDS, "")
    options = _options(_object(data.get("spec", {}), "spec"))
    args = _strings(data.get("args", []), "args")
    script = _object(data.get("script"), "script")
    _known(script, SCRIPT_FIELDS, "script.")
    name = _name(script.get("name"))
    is_function = "payload" in data
    if is_function and "content" in script:
        raise BadInput("give either script.content or payload (a function job), not both")
    where = "payload" if is_function else "script.content"
    content = _base64(data["payload"] if is_function else script.get("content"), where)
    environment = _environment(_object(data.get("environment", {}), "environment"))
    return Submission(options, args, name, content, environment, is_function)


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadInput(f"{what}: expected a JSON object, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _known(data: Mapping[str, Any], allowed: tuple[str, ...], prefix: str) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise BadInput(f"unknown field {prefix}{unknown[0]!r}; allowed: {', '.join(prefix + a for a in allowed)}")


def _options(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Submit options by long name, as the raw values the CLI would pass."""
    options: dict[str, Any] = {}
    for key, value in raw.items():
        name = str(key).replace("-", "_")
        if name not in SPEC_OPTION_NAMES or name in NOT_ACCEPTED:
            allowed = ", ".join(n for n in SPEC_OPTION_NAMES if n not in NOT_ACCEPTED)
            raise BadInput(f"unknown field spec.{key!r}; allowed: {allowed}")
        where = f"spec.{key}"
        if value is None:
            continue
        if name in PAIR_OPTIONS:
            pairs: list[Any] = list(value.items()) if isinstance(value, dict) else value
            if not isinstance(pairs, list):
                raise BadInput(f"{where}: expected an object or a list of [KEY, VALUE] pairs, got {_kind(value)}")
            options[name] = tuple(_pair(pair, where) for pair in pairs)
        elif name in MULTIPLE_OPTIONS:
            if isinstance(value, dict):
                value = [f"{k}={v}" for k, v in value.items()]
            options[name] = _strings(value, where)
        else:
            options[name] = _scalar(value, where)
    return options


def _pair(pair: Any, where: str) -> tuple[str, str]:
    if isinstance(pair, tuple):
        pair = list(pair)
    if not isinstance(pair, list) or len(pair) != 2:
        raise BadInput(f"{where}: expected [KEY, VALUE] pairs, got {json.dumps(pair)[:40]}")
    return _scalar(pair[0], where), _scalar(pair[1], where)


def _scalar(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise BadInput(f"{where}: expected a string or a number, got {_kind(value)}")
    return str(value)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadInput(f"{where}: expected a list of strings")
    return tuple(value)


def _name(value: Any) -> str:
    """The script's file name (its base name: the service chooses where it goes)."""
    if not isinstance(value, str) or not value:
        raise BadInput("script.name: expected the script's file name, e.g. train.py")
    name = posixpath.basename(value)
    if name in ("", ".", "..") or "\0" in name or any(ord(c) < 32 for c in name):
        raise BadInput(f"script.name {value!r}: expected a file name, e.g. train.py")
    return name


def _base64(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise BadInput(f"{where}: expected base64 text, got {_kind(value)}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadInput(f"{where}: not valid base64") from None


def _environment(raw: Mapping[str, Any]) -> dict[str, str]:
    """The job's environment values (they go to its Secret), minus the names no
    job may be given (hub tokens: the service mints the job's own; kbatch's
    variables, the driver's credential among them; host-specific variables)."""
    environment = {}
    for key, value in raw.items():
        if not isinstance(value, str):
            raise BadInput(f"environment.{key}: expected a string, got {_kind(value)}")
        if not is_denied(key):
            environment[key] = value
    return environment
