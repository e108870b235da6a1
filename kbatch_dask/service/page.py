"""The web page (:mod:`kbatch_dask.web`) at the service's root, for hub users
logged in through the hub with OAuth (:class:`HubOAuth`; the callback at
``{prefix}oauth_callback``). The login is a cookie, so the page's POSTs carry
JupyterHub's XSRF token: without it HubOAuth does not accept the cookie and
the request is nobody's. The API (``api/v1``) keeps taking tokens only."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler, HubOAuthenticated, UserNotAllowed
from tornado import web

from kbatch_dask.report import find
from kbatch_dask.service import resubmission
from kbatch_dask.service.auth import hub_admin
from kbatch_dask.service.context import Context
from kbatch_dask.service.jobs import Caller, ListQuery
from kbatch_dask.web.handlers import PageHandler, page_routes
from kbatch_dask.web.source import JobList


def hub_oauth(name: str, api_url: str, api_token: str, environ: Mapping[str, str]) -> HubOAuth | None:
    """The page's HubOAuth from the hub's ``JUPYTERHUB_*`` variables (client id
    ``service-NAME``, the hub's default, unless ``JUPYTERHUB_CLIENT_ID``); None
    without a service token, when there is no hub to log in with."""
    if not api_token:
        return None
    return HubOAuth(
        api_url=api_url,
        api_token=api_token,
        oauth_client_id=environ.get("JUPYTERHUB_CLIENT_ID") or f"service-{name}",
        access_scopes={f"access:services!service={name}"},
    )


class ServiceJobs:
    """The page's :class:`~kbatch_dask.web.source.JobSource` for one hub user."""

    def __init__(self, context: Context, caller: Caller) -> None:
        self.context = context
        self.caller = caller

    @property
    def user(self) -> str:
        return self.caller.name

    @property
    def admin(self) -> bool:
        return self.caller.admin

    def listing(self, *, everyone: bool, user: str | None) -> JobList:
        listing = self.context.jobs.list_json(self.caller, ListQuery(everyone=everyone, user=user))
        return JobList(listing.body, listing.etag)

    def job(self, job_id: str, user: str | None) -> dict[str, Any]:
        """The job as ``kbatch show -o json`` prints it, its report from the archive."""
        record, saved = self.context.jobs.report(self.caller, job_id, user)
        found = find(record, saved, self.context.jobs.config.report)
        return {**record.to_dict(), "report": found.to_dict() if found else None}

    def logs(self, job_id: str, user: str | None, *, follow: bool) -> Iterator[bytes]:
        return self.context.jobs.logs(self.caller, job_id, user=user, follow=follow, stream="output", tail=None)

    def cancel(self, job_id: str, user: str | None) -> dict[str, Any]:
        return self.context.jobs.cancel(self.caller, job_id, user).to_dict()

    def resubmit(self, job_id: str) -> dict[str, Any]:
        # A browser has no session environment to give the new job (POST /jobs/{id}/resubmit's body).
        with self.context.metrics.submission():
            return resubmission.resubmit(self.context.jobs, self.caller, job_id).to_dict()


class ServicePage(HubOAuthenticated, PageHandler):  # type: ignore[misc]
    context: Context
    caller: Caller | None = None

    def initialize(self, base: str, host: str, context: Context) -> None:  # type: ignore[override]
        super().initialize(base, host)
        self.context = context
        self.hub_auth = context.hub_oauth

    @property
    def hub_scopes(self) -> set[str]:
        return {self.context.scope}

    async def prepare(self) -> None:
        # As the API does: ask the hub without blocking the loop, where get_current_user looks first.
        oauth = self.context.hub_oauth
        assert oauth is not None  # routed only with one (web_routes)
        model = await oauth.get_user(self, sync=False)
        try:
            self._hub_auth_user_cache = self.check_hub_user(model) if model else None
        except UserNotAllowed:
            raise web.HTTPError(403, "this hub user may not use the service") from None
        model = self._hub_auth_user_cache
        if model is None or model.get("kind", "user") != "user":
            return
        name = str(model["name"])
        admin = bool(set(model.get("groups") or ()) & set(self.context.admin_groups))
        if not admin and self._about_admin():
            admin = await hub_admin(self.context.hub_auth, name)
        self.caller = Caller(name, admin=admin)
        await self.context.jobs.cache.wait_up(5.0)

    def _about_admin(self) -> bool:
        """Whether the answer depends on the asker being an admin: the queue's HTML
        (it offers every user's jobs), ``?all``/``?user``; not the plain polls."""
        about_others = bool(self.get_query_argument("all", "") or self.get_query_argument("user", ""))
        return about_others or (self.request.path == self.base and not self.wants_json())

    def source(self) -> ServiceJobs | None:
        return ServiceJobs(self.context, self.caller) if self.caller else None

    def login(self) -> None:
        if self.request.method in ("GET", "HEAD") and not self.wants_json():
            self.redirect(self.get_login_url())
            return
        raise web.HTTPError(403, "not logged in: open the page to log in through the hub")


class OAuthCallback(HubOAuthCallbackHandler):  # type: ignore[misc]
    """The hub's OAuth callback, with the page's HubOAuth (not a process-wide instance)."""

    def initialize(self, hub_auth: HubOAuth) -> None:
        self.hub_auth = hub_auth


def web_routes(prefix: str, context: Context) -> list[Any]:
    """The page and the OAuth callback under the service's prefix (none without a hub to log in with)."""
    if context.hub_oauth is None:
        return []
    callback = (prefix + "oauth_callback", OAuthCallback, {"hub_auth": context.hub_oauth})
    return [callback, *page_routes(prefix, ServicePage, "hub", {"context": context})]
