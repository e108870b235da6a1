"""The hub's public URL, and links made absolute against it."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit


def hub_public_url(configured: str | None, environ: Mapping[str, str]) -> str | None:
    """The hub's public URL: ``kbatch.hub.public-url``, else ``$JUPYTERHUB_PUBLIC_HUB_URL``
    without its ``hub/``, else the host of ``$JUPYTERHUB_PUBLIC_URL`` (this notebook
    server's URL); None if unknown. JupyterHub sets both variables when its
    ``public_url`` is configured.

    >>> hub_public_url(None, {"JUPYTERHUB_PUBLIC_HUB_URL": "https://hub.example.org/jh/hub/"})
    'https://hub.example.org/jh/'
    >>> hub_public_url(None, {"JUPYTERHUB_PUBLIC_URL": "https://hub.example.org/user/alice/"})
    'https://hub.example.org/'
    """
    if configured:
        return configured
    hub_url = environ.get("JUPYTERHUB_PUBLIC_HUB_URL", "").rstrip("/")
    if hub_url:
        return hub_url[: -len("hub")] if hub_url.endswith("/hub") else hub_url + "/"
    server = urlsplit(environ.get("JUPYTERHUB_PUBLIC_URL", ""))
    if server.scheme and server.netloc:
        return f"{server.scheme}://{server.netloc}/"
    return None


def absolute_address(address: str, base: str | None) -> str:
    """``address`` made absolute against the hub's public URL ``base``: a path
    (``/services/dask-gateway``) is on the hub's host, a relative path below
    ``base``; a full URL, or an address with no ``base`` to go by, is unchanged.

    >>> absolute_address("/services/dask-gateway", "https://hub.example.org/jh/")
    'https://hub.example.org/services/dask-gateway'
    >>> absolute_address("services/dask-gateway/", "https://hub.example.org/jh")
    'https://hub.example.org/jh/services/dask-gateway/'
    >>> absolute_address("http://10.0.0.5:8000", "https://hub.example.org/")
    'http://10.0.0.5:8000'
    """
    if not base or urlsplit(address).scheme:
        return address
    parts = urlsplit(base)
    if address.startswith("/"):
        return f"{parts.scheme}://{parts.netloc}{address}"
    return f"{base.rstrip('/')}/{address}"
