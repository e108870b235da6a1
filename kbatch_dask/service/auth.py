"""Who is calling: JupyterHub's own service auth (:class:`HubAuthenticated`
with :class:`HubAuth`), never a token parsed here.

A request without a token the hub knows is 401; a token without the scope
``access:services!service=NAME`` is 403; both answer JSON like every error
(:mod:`kbatch_dask.service.errors`). Admins of the service are hub admins
(asked of the hub with the service's own token, only when it matters) and
members of ``kbatch.service.admin-groups``.
"""

from __future__ import annotations

import json
from typing import Any

from jupyterhub.services.auth import HubAuth, HubAuthenticated, UserNotAllowed
from tornado import httpclient, web

from kbatch_dask import versions
from kbatch_dask.service.context import Context
from kbatch_dask.service.errors import JsonErrors, refuse
from kbatch_dask.service.jobs import Caller


class ApiHandler(HubAuthenticated, JsonErrors, web.RequestHandler):  # type: ignore[misc]
    """A handler of the API: JSON errors; :meth:`caller` for handlers that need a user."""

    context: Context
    _missing_scope = False

    def initialize(self, context: Context) -> None:
        self.context = context
        self.hub_auth = context.hub_auth

    @property
    def hub_scopes(self) -> set[str]:
        return {self.context.scope}

    def check_hub_user(self, model: dict[str, Any]) -> dict[str, Any] | None:
        try:
            return super().check_hub_user(model)  # type: ignore[no-any-return]
        except UserNotAllowed:
            self._missing_scope = True  # identified, but the token may not use this service
            raise

    async def prepare(self) -> None:
        """Refuse, before anything else, a kbatch-dask client this service cannot serve
        (400 naming what to install); then ask the hub who calls."""
        problem = versions.client_problem(self.request.headers.get("User-Agent"))
        if problem is not None:
            refuse(400, problem)
        # HubAuthenticated's get_current_user asks HubAuth synchronously, which
        # blocks the event loop on HubAuth's thread for every request (and on the
        # hub itself for a token not cached yet). Asked here without blocking, the
        # answer is where get_current_user looks first.
        model = await self.hub_auth.get_user(self, sync=False)
        try:
            self._hub_auth_user_cache = self.check_hub_user(model) if model else None
        except UserNotAllowed:
            self._hub_auth_user_cache = None

    def check_xsrf_cookie(self) -> None:
        """API calls carry a token, not a cookie: nothing to forge (the web page will use HubOAuth + XSRF)."""

    def caller(self) -> Caller:
        """The calling hub user (401 without a valid token, 403 without the scope)."""
        model = self.current_user
        if model is None:
            if self._missing_scope:
                refuse(403, f"this token may not use the service: it needs the scope {self.context.scope}")
            refuse(401, "no valid JupyterHub token: send Authorization: token $JUPYTERHUB_API_TOKEN")
        if model.get("kind", "user") != "user":
            refuse(403, f"{model.get('kind')} {model.get('name')!r} has no jobs: only hub users submit jobs")
        groups = set(model.get("groups") or ())
        return Caller(str(model["name"]), admin=bool(groups & set(self.context.admin_groups)))

    async def admin_caller(self) -> Caller:
        """:meth:`caller`, admin also when the hub says the user is a hub admin."""
        caller = self.caller()
        if caller.admin:
            return caller
        return Caller(caller.name, admin=await hub_admin(self.context.hub_auth, caller.name))


async def hub_admin(auth: HubAuth, name: str) -> bool:
    """Whether the hub calls ``name`` an admin (needs the service's role to read users); False if it cannot tell."""
    request = httpclient.HTTPRequest(
        f"{auth.api_url}/users/{name}", headers={"Authorization": f"token {auth.api_token}"}, request_timeout=10
    )
    try:
        answer = await httpclient.AsyncHTTPClient().fetch(request)
    except (httpclient.HTTPError, OSError):
        return False
    return bool(json.loads(answer.body).get("admin"))
