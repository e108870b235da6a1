"""The ``kbatch`` namespace of dask config, with defaults from ``kbatch.yaml``.

Read at the edges (the API, the driver) and passed down as values. Environment
overrides come from dask's convention: ``DASK_KBATCH__DASK__WORKERS=4``.
"""

from __future__ import annotations

import functools
import os
from typing import Any

_DEFAULTS = os.path.join(os.path.dirname(__file__), "kbatch.yaml")


@functools.cache
def _load() -> None:
    import dask.config
    import yaml

    with open(_DEFAULTS) as f:
        dask.config.update_defaults(yaml.safe_load(f))


def get(key: str, default: Any = None) -> Any:
    """A value of the ``kbatch`` config, e.g. ``get("dask.workers")``."""
    import dask.config

    _load()
    return dask.config.get(f"kbatch.{key}", default=default)


def gateway_address() -> str | None:
    """The configured Dask-Gateway address (``gateway.address``), if any."""
    import dask.config

    _load()
    address = dask.config.get("gateway.address", default=None)
    return str(address) if address else None
