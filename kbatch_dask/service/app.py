"""The service's tornado application, made from the settings and the
``JUPYTERHUB_*`` environment the hub gives a service."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from jupyterhub.services.auth import HubAuth
from tornado import web

from kbatch_dask.backends.kubernetes import pod_settings
from kbatch_dask.backends.kubernetes.client import KubeAPI
from kbatch_dask.errors import BadInput
from kbatch_dask.gateway import configured_gateway
from kbatch_dask.hub.tokens import TokenPolicy
from kbatch_dask.hub.urls import absolute_address, hub_public_url
from kbatch_dask.service.archive import DirectoryArchive
from kbatch_dask.service.cache import JobCache
from kbatch_dask.service.context import Context
from kbatch_dask.service.driver_events import JobTokens
from kbatch_dask.service.handlers import NotFoundHandler, routes
from kbatch_dask.service.history import Recorder
from kbatch_dask.service.job_mail import MailSetup
from kbatch_dask.service.jobs import JobService
from kbatch_dask.service.logs import access_log
from kbatch_dask.service.mail import Mailer
from kbatch_dask.service.namespaces import Namespaces
from kbatch_dask.service.page import hub_oauth, web_routes
from kbatch_dask.service.policy import Policy
from kbatch_dask.settings import Settings

log = logging.getLogger("kbatch_dask.service")
DEFAULT_URL = "http://127.0.0.1:10202"  # loopback unless the hub says otherwise


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
    """The hub's namespace: the shared mode's jobs, and the users' server pods."""
    service = config.service
    return pod_settings.detect_namespace(service.namespace, api.context_namespace, api.context_name).value


def driver_url(configured: str | None, environ: Mapping[str, str], listen: Listen) -> str:
    """Where job pods reach the service: ``configured`` (``kbatch.service.driver-url``),
    else the hub's ``JUPYTERHUB_SERVICE_URL`` with the prefix.

    >>> driver_url(None, {"JUPYTERHUB_SERVICE_URL": "http://kbatch:10202"}, Listen("0.0.0.0", 10202, "/s/"))
    'http://kbatch:10202/s/'
    """
    if configured:
        return configured.rstrip("/") + "/"
    base = (environ.get("JUPYTERHUB_SERVICE_URL") or DEFAULT_URL).rstrip("/")
    return base + listen.prefix


def mail_setup(config: Settings, environ: Mapping[str, str], prefix: str) -> MailSetup | None:
    """The service's mail (None without ``kbatch.service.mail.smtp-host``), with links to
    the jobs' pages on the hub's public URL when it is known."""
    mail = config.service.mail
    mailer = Mailer.from_settings(mail, environ)
    if mailer is None:
        return None
    base = hub_public_url(config.hub.public_url, environ)
    if base is None:
        log.warning("the service's mail has no links to the jobs' pages: set kbatch.hub.public-url")
    pages = absolute_address(prefix, base) if base else None
    return MailSetup(mailer, mail.address_template, mail.log_lines, pages)


def make_app(
    config: Settings,
    api: KubeAPI,
    listen: Listen,
    cache: JobCache,
    records: Recorder,
    hub_auth: HubAuth | None = None,
) -> web.Application:
    """The application, reading from ``cache`` (started by the caller, on the jobs'
    namespace, or all) and, for jobs gone from it, from ``records`` (the database,
    the cache's listener); ``hub_auth`` from the ``JUPYTERHUB_*`` environment unless given."""
    service = config.service
    namespaces = Namespaces(api, service, namespace(config, api))
    auth = hub_auth or HubAuth(api_token=os.environ.get("JUPYTERHUB_API_TOKEN", ""))
    # The per-job gateway tokens are made with the service's own hub token (docs/service.md).
    tokens = (
        JobTokens(auth.api_url, auth.api_token, TokenPolicy.from_settings(config.hub, configured_gateway()))
        if auth.api_url and auth.api_token
        else None
    )
    jobs = JobService(
        api,
        config,
        namespaces,
        Policy.from_settings(service),
        cache,
        DirectoryArchive(service.archive.directory),
        records,
        driver_url=driver_url(service.driver_url, os.environ, listen),
        tokens=tokens,
        mail=mail_setup(config, os.environ, listen.prefix),
    )
    jobs.admission.start()
    context = Context(
        hub_auth=auth,
        jobs=jobs,
        service_name=service.name,
        admin_groups=service.admin_groups,
        max_body_size=service.max_body_size,
        archive_limits=service.archive,
        hub_oauth=hub_oauth(service.name, auth.api_url, auth.api_token, os.environ),
    )
    return web.Application(
        [*routes(listen.prefix, context), *web_routes(listen.prefix, context)],
        default_handler_class=NotFoundHandler,
        cookie_secret=os.urandom(32),  # the page's login cookies: a restart logs in again through the hub
        log_function=access_log(context.metrics.observe),
        kbatch_jobs=jobs,
    )
