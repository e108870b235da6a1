"""The ``kbatch`` namespace of dask config, with defaults from ``kbatch.yaml``.

Read at the edges (the API, the driver) and passed down as values. Environment
overrides come from dask's convention: ``DASK_KBATCH__DASK__WORKERS=4``.

Importing ``dask.config`` imports all of ``dask`` (~0.15 s, more than the rest
of ``kbatch queue``). So until ``dask`` is imported anyway, values come from
:func:`collect`, which reads the same sources with dask's own rules: the YAML
files of dask's config paths, then ``DASK_*`` variables, over the defaults.
Once ``dask.config`` is loaded it is the only source, so ``dask.config.set``
works for API users. ``tests/test_config.py`` checks that both agree.
"""

from __future__ import annotations

import ast
import base64
import functools
import json
import os
import site
import sys
from collections.abc import Iterable, Mapping
from typing import Any

_DEFAULTS = os.path.join(os.path.dirname(__file__), "kbatch.yaml")


def get(key: str, default: Any = None) -> Any:
    """A value of the ``kbatch`` config, e.g. ``get("dask.workers")``."""
    return dask_get(f"kbatch.{key}", default)


def dask_get(key: str, default: Any = None) -> Any:
    """Any dask-config value, e.g. ``dask_get("gateway.address")``."""
    if "dask.config" in sys.modules:
        import dask.config

        _register_defaults()
        return dask.config.get(key, default=default)
    return lookup(_collected(_dask_environment()), key, default)


def gateway_address() -> str | None:
    """The configured Dask-Gateway address (``gateway.address``), if any."""
    address = dask_get("gateway.address")
    return str(address) if address else None


@functools.cache
def _register_defaults() -> None:
    import dask.config

    dask.config.update_defaults(_defaults())


def defaults() -> dict[str, Any]:
    """The shipped ``kbatch.yaml`` (do not modify it)."""
    return _defaults()


@functools.cache
def _defaults() -> dict[str, Any]:
    return load_yaml(_DEFAULTS) or {}


def _dask_environment() -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("DASK_")))


@functools.cache
def _collected(environment: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    # Cached per DASK_* environment: a process that changes it sees the change.
    return update(collect(config_paths(os.environ), dict(environment)), _defaults(), priority="old")


# -- dask.config's rules, without importing dask ----------------------------------


def config_paths(environ: Mapping[str, str]) -> list[str]:
    """Where dask looks for YAML config files, lowest priority first (``dask.config.paths``)."""
    paths = [
        environ.get("DASK_ROOT_CONFIG", "/etc/dask"),
        os.path.join(sys.prefix, "etc", "dask"),
        *[os.path.join(prefix, "etc", "dask") for prefix in site.PREFIXES],
        os.path.join(os.path.expanduser("~"), ".config", "dask"),
    ]
    if "DASK_CONFIG" in environ:
        paths.append(environ["DASK_CONFIG"])
    return list(reversed(list(dict.fromkeys(reversed(paths)))))


def load_yaml(path: str) -> Any:
    """A YAML file's data (parsed once per version of the file: see :mod:`kbatch_dask.yaml_cache`)."""
    from kbatch_dask import yaml_cache

    return yaml_cache.load(path, parse_yaml)


def parse_yaml(path: str) -> Any:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path) as f:
        return yaml.load(f, Loader=loader)


def collect(paths: Iterable[str], environ: Mapping[str, str]) -> dict[str, Any]:
    """The config of YAML files under ``paths`` and ``DASK_*`` variables (``dask.config.collect``)."""
    configs = [*_collect_yaml(paths), collect_env(environ)]
    result: dict[str, Any] = {}
    for config in reversed(configs):
        update(result, config, priority="old")
    return result


def _collect_yaml(paths: Iterable[str]) -> Iterable[dict[str, Any]]:
    files: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            try:
                names = os.listdir(path)
            except OSError:
                continue
            files += sorted(os.path.join(path, n) for n in names if os.path.splitext(n)[1].lower() in YAML_SUFFIXES)
        elif os.path.exists(path):
            files.append(path)
    for path in files:
        try:
            data = load_yaml(path)
        except OSError:
            continue
        except Exception as exc:
            raise ValueError(f"A dask config file at {path!r} is malformed: {exc}") from None
        if isinstance(data, dict):
            yield data


YAML_SUFFIXES = (".json", ".yaml", ".yml")


def collect_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """``DASK_A__B_C=1`` as ``{"a": {"b_c": 1}}`` (``dask.config.collect_env``).

    >>> collect_env({"DASK_KBATCH__QUEUE__RECENT_HOURS": "48", "HOME": "/h"})
    {'kbatch': {'queue': {'recent_hours': 48}}}
    """
    flat: dict[str, Any] = {}
    if "DASK_INTERNAL_INHERIT_CONFIG" in environ:
        flat = dict(json.loads(base64.urlsafe_b64decode(environ["DASK_INTERNAL_INHERIT_CONFIG"].encode()).decode()))
    for name, value in environ.items():
        if name.startswith("DASK_"):
            flat[name[5:].lower().replace("__", ".")] = interpret_value(value)
    result: dict[str, Any] = {}
    for dotted, value in flat.items():
        *parents, last = dotted.split(".")
        node = result
        for part in parents:
            part = canonical_name(part, node)
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[canonical_name(last, node)] = value
    return result


def interpret_value(value: str) -> Any:
    """A Python literal if it is one, YAML's words for None and booleans, else the text.

    >>> interpret_value("4"), interpret_value("true"), interpret_value("1:10")
    (4, True, '1:10')
    """
    try:
        return ast.literal_eval(value)
    except (SyntaxError, ValueError):
        pass
    return {"none": None, "null": None, "false": False, "true": True}.get(value.lower(), value)


def canonical_name(key: str, config: Mapping[str, Any]) -> str:
    """``key`` as ``config`` already spells it, ``-`` and ``_`` being the same."""
    try:
        if key in config:
            return key
    except TypeError:  # not a mapping: the lookup fails later
        return key
    alternative = key.replace("_", "-") if "_" in key else key.replace("-", "_")
    return alternative if alternative in config else key


def update(old: dict[str, Any], new: Mapping[str, Any], priority: str = "new") -> dict[str, Any]:
    """Merge ``new`` into ``old`` in place, nested mappings key by key (``dask.config.update``)."""
    for key, value in new.items():
        key = canonical_name(key, old)
        if isinstance(value, Mapping):
            if not isinstance(old.get(key), dict):
                old[key] = {}
            update(old[key], value, priority)
        elif priority == "new" or key not in old:
            old[key] = value
    return old


def lookup(config: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """``config["a"]["b-c"]`` for ``"a.b_c"`` (``dask.config.get``).

    >>> lookup({"kbatch": {"queue": {"recent-hours": 24}}}, "kbatch.queue.recent_hours")
    24
    """
    result: Any = config
    for part in key.split("."):
        try:
            result = result[canonical_name(part, result)]
        except (TypeError, IndexError, KeyError):
            return default
    return result
