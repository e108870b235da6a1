"""The service's tornado application, made from the settings and the
``JUPYTERHUB_*`` environment the hub gives a service."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from jupyterhub.services.auth import HubAuth
from tornado import web

from kbatch_dask.backends.kubernetes import pod_settings
from kbatch_dask.backends.kubernetes.client import KubeAPI
from kbatch_dask.errors import BadInput
from kbatch_dask.service.cache import JobCache
from kbatch_dask.service.context import Context
from kbatch_dask.service.handlers import NotFoundHandler, routes
from kbatch_dask.service.jobs import JobService
from kbatch_dask.service.policy import Policy
from kbatch_dask.settings import Settings

DEFAULT_URL = "http://127.0.0.1:10202"  # loopback unless the hub says otherwise
NAMESPACE_MODES = ("shared",)


@dataclass(frozen=True)
class Listen:
    """Where the service listens and the path prefix it serves."""

    host: str
    port: int
    prefix: str

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], name: str) -> Listen:
        """From ``JUPYTERHUB_SERVICE_URL`` and ``JUPYTERHUB_SERVICE_PREFIX``.

        >>> Listen.from_environ({"JUPYTERHUB_SERVICE_URL": "http://0.0.0.0:8080"}, "kbatch-dask")
        Listen(host='0.0.0.0', port=8080, prefix='/services/kbatch-dask/')
        """
        url = urlsplit(environ.get("JUPYTERHUB_SERVICE_URL") or DEFAULT_URL)
        if url.scheme != "http" or not url.hostname:
            raise BadInput(f"JUPYTERHUB_SERVICE_URL {url.geturl()!r}: expected http://HOST:PORT")
        prefix = environ.get("JUPYTERHUB_SERVICE_PREFIX") or f"/services/{name}/"
        return cls(url.hostname, url.port or 80, "/" + prefix.strip("/") + "/")


def namespace(config: Settings, api: KubeAPI) -> str:
    """The namespace of the jobs (``shared`` mode, the only one built yet)."""
    service = config.service
    if service.namespace_mode not in NAMESPACE_MODES:
        raise BadInput(
            f"config kbatch.service.namespace-mode = {service.namespace_mode!r}: only 'shared' is supported yet "
            "(per-user namespaces are not built)"
        )
    return pod_settings.detect_namespace(service.namespace, api.context_namespace, api.context_name).value


def make_app(
    config: Settings, api: KubeAPI, listen: Listen, cache: JobCache, hub_auth: HubAuth | None = None
) -> web.Application:
    """The application, reading from ``cache`` (started by the caller, on the
    same namespace); ``hub_auth`` from the ``JUPYTERHUB_*`` environment unless given."""
    service = config.service
    jobs = JobService(api, config, cache.jobs.namespace, Policy.from_settings(service), cache)
    context = Context(
        hub_auth=hub_auth or HubAuth(api_token=os.environ.get("JUPYTERHUB_API_TOKEN", "")),
        jobs=jobs,
        service_name=service.name,
        admin_groups=service.admin_groups,
        max_body_size=service.max_body_size,
    )
    return web.Application(routes(listen.prefix, context), default_handler_class=NotFoundHandler)
