"""The one place that talks to Dask-Gateway.

- :mod:`.settings`: how to reach a gateway (:class:`GatewaySettings`; the configured one);
- :mod:`.client`: :class:`GatewayClient`, every operation, its transport chosen once;
  :func:`health`, whether a gateway answers;
- :mod:`.status`: :class:`ClusterStatus` and :class:`ClusterInfo`;
- :mod:`.options`: requested cluster options checked against the declared ones;
- :mod:`.dashboards`: live worker counts from the clusters' dashboards.

Which gateway a job uses is its backend's business (``Backend.gateway``).
"""

from kbatch_dask.gateway.client import GatewayClient, health
from kbatch_dask.gateway.settings import GatewaySettings, configured_gateway
from kbatch_dask.gateway.status import ClusterInfo, ClusterStatus

__all__ = ["ClusterInfo", "ClusterStatus", "GatewayClient", "GatewaySettings", "configured_gateway", "health"]
