"""Cluster options checked against what the gateway declares, before a job starts."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kbatch_dask.errors import BadInput

# The unit of an option's number, as kbatch sends it (see JobSpec.cluster_options).
UNITS = {"worker_memory": " GiB"}


def check_cluster_options(
    requested: Mapping[str, Any], declared: Mapping[str, Mapping[str, Any]], said: Mapping[str, str] | None = None
) -> None:
    """Check requested options against the gateway's declared ones (BadInput if wrong).

    ``said`` is how the user wrote an option that kbatch converted (``--worker-memory
    16G`` for ``worker_memory``): a limit is reported against it, in the option's unit.

    >>> check_cluster_options({"worker_cores": 9}, {"worker_cores": {"type": "int", "min": 1, "max": 4}})
    Traceback (most recent call last):
    ...
    kbatch_dask.errors.BadInput: cluster option worker_cores=9: at most 4 (the gateway's limit)
    >>> memory = {"worker_memory": {"type": "float", "min": 0.25, "max": 8.0}}
    >>> check_cluster_options({"worker_memory": 14.901}, memory, {"worker_memory": "--worker-memory 16G"})
    Traceback (most recent call last):
    ...
    kbatch_dask.errors.BadInput: --worker-memory 16G: at most 8 GiB (the gateway's limit)
    """
    for key, value in requested.items():
        what = (said or {}).get(key) or f"cluster option {key}={value}"
        unit = UNITS.get(key, "")
        if key not in declared:
            allowed = ", ".join(sorted(declared)) or "none"
            raise BadInput(f"cluster option {key!r}: the gateway has no such option; it offers: {allowed}")
        spec = declared[key]
        kind = spec.get("type")
        if kind in ("int", "float"):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or (kind == "int" and value != int(value))
            ):
                raise BadInput(
                    f"cluster option {key}={value!r}: expected {'a whole number' if kind == 'int' else 'a number'}"
                )
            if spec.get("min") is not None and value < spec["min"]:
                raise BadInput(f"{what}: at least {spec['min']:g}{unit} (the gateway's limit)")
            if spec.get("max") is not None and value > spec["max"]:
                raise BadInput(f"{what}: at most {spec['max']:g}{unit} (the gateway's limit)")
        elif kind == "bool" and not isinstance(value, bool):
            raise BadInput(f"cluster option {key}={value!r}: expected true or false")
        elif kind == "select" and spec.get("options") and value not in spec["options"]:
            choices = ", ".join(map(str, spec["options"]))
            raise BadInput(f"cluster option {key}={value!r}: expected one of {choices}")


def check_worker_count(workers: str, maximum: int, limit: int) -> None:
    """Refuse a cluster of more workers than the gateway's ``limit``, a limit kbatch
    knows (its embedded gateway's): the gateway would cap it without failing.

    >>> check_worker_count("2:20", 20, 8)
    Traceback (most recent call last):
    ...
    kbatch_dask.errors.BadInput: --dask-workers 2:20: at most 8 (the gateway's limit)
    """
    if maximum > limit:
        raise BadInput(f"--dask-workers {workers}: at most {limit} (the gateway's limit)")


def worker_limit(message: str) -> int | None:
    """The limit in dask-gateway-server's message about a capped scale or adapt.

    >>> worker_limit("Scale request of 20 workers would exceed resource limit of 8 workers. Scaling to 8 instead.")
    8
    """
    match = re.search(r"limit of (\d+) workers", message)
    return int(match.group(1)) if match else None
