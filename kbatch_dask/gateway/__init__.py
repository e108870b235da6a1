"""The one place that talks to Dask-Gateway.

- :mod:`.settings`: how to reach a gateway (:class:`GatewaySettings`; the configured one);
- :mod:`.client`: :class:`GatewayClient`, every operation, its transport chosen once;
  :func:`health`, whether a gateway answers;
- :mod:`.status`: :class:`ClusterStatus` and :class:`ClusterInfo`;
- :mod:`.options`: requested cluster options checked against the declared ones;
- :mod:`.dashboards`: live worker counts from the clusters' dashboards;
- :mod:`.direct_http`: a request over a socket, for plain ``http://`` addresses.

Which gateway a job uses is its backend's business (``Backend.gateway``).

The names below are imported on first use: importing a submodule
(``kbatch_dask.gateway.status``, as every job record does) runs this file, and
the client (and ``socket``, and for an ``https`` gateway ``urllib.request`` and
``ssl``) is wanted only by a command that talks to a gateway.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kbatch_dask.gateway.client import GatewayClient, health
    from kbatch_dask.gateway.settings import GatewaySettings, configured_gateway
    from kbatch_dask.gateway.status import ClusterInfo, ClusterStatus

_WHERE = {
    "GatewayClient": "client",
    "health": "client",
    "GatewaySettings": "settings",
    "configured_gateway": "settings",
    "ClusterInfo": "status",
    "ClusterStatus": "status",
}

__all__ = ["ClusterInfo", "ClusterStatus", "GatewayClient", "GatewaySettings", "configured_gateway", "health"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value  # looked up once
    return value
