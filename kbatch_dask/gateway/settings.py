"""How to reach a gateway: the configured one (``gateway.*`` in dask config, as
daskhub images set it). Backends that bring a gateway of their own (the local
backend's embedded one) build :class:`GatewaySettings` themselves."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kbatch_dask import config, settings
from kbatch_dask.frozen import FrozenMethods
from kbatch_dask.hub.urls import absolute_address, hub_public_url


@dataclass(frozen=True, repr=False, eq=False)  # FrozenMethods'
class GatewaySettings(FrozenMethods):
    """How to reach one gateway; ``env`` points dask-gateway clients (the
    runner's, a script's) at it."""

    address: str
    proxy_address: str | None
    public_address: str
    auth_type: str | None
    auth_kwargs: Mapping[str, Any] = field(default_factory=dict, repr=False)
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    embedded: bool = False


def configured_gateway(environ: Mapping[str, str] = os.environ) -> GatewaySettings | None:
    """The gateway of ``gateway.address`` in dask config, or None when none is configured."""
    address = config.gateway_address()
    if not address:
        return None
    public = config.dask_get("gateway.public-address") or address
    # daskhub's public address is a path on the hub: links must be absolute for a person.
    hub_url = hub_public_url(settings.load().hub.public_url, environ)
    return GatewaySettings(
        address=address,
        proxy_address=config.dask_get("gateway.proxy-address"),
        public_address=absolute_address(str(public), hub_url),
        auth_type=config.dask_get("gateway.auth.type"),
        auth_kwargs=config.dask_get("gateway.auth.kwargs") or {},
    )
