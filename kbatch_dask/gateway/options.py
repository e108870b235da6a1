"""Cluster options checked against what the gateway declares, before a job starts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kbatch_dask.errors import BadInput


def check_cluster_options(requested: Mapping[str, Any], declared: Mapping[str, Mapping[str, Any]]) -> None:
    """Check requested options against the gateway's declared ones (BadInput if wrong).

    >>> check_cluster_options({"worker_cores": 9}, {"worker_cores": {"type": "int", "min": 1, "max": 4}})
    Traceback (most recent call last):
    ...
    kbatch_dask.errors.BadInput: cluster option worker_cores=9: at most 4 (the gateway's limit)
    """
    for key, value in requested.items():
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
                raise BadInput(f"cluster option {key}={value}: at least {spec['min']} (the gateway's limit)")
            if spec.get("max") is not None and value > spec["max"]:
                raise BadInput(f"cluster option {key}={value}: at most {spec['max']} (the gateway's limit)")
        elif kind == "bool" and not isinstance(value, bool):
            raise BadInput(f"cluster option {key}={value!r}: expected true or false")
        elif kind == "select" and spec.get("options") and value not in spec["options"]:
            choices = ", ".join(map(str, spec["options"]))
            raise BadInput(f"cluster option {key}={value!r}: expected one of {choices}")
