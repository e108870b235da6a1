"""A token of its own for each job, from JupyterHub.

JupyterHub deletes a notebook server's API token when the server stops — the
moment a batch job is meant to carry on — so a job that reused the session's
``JUPYTERHUB_API_TOKEN`` could no longer scale or stop its Dask cluster. When
kbatch-dask runs under JupyterHub (``JUPYTERHUB_API_URL``, ``_TOKEN`` and
``_USER`` set) and the Dask-Gateway uses JupyterHub auth, :func:`job_credentials`
asks the hub for a new token at submit time::

    POST {JUPYTERHUB_API_URL}/users/{name}/tokens
    {"note": "kbatch-dask job 'train' ...", "scopes": [...], "expires_in": ...}

The token goes only into the job's private environment (the local job's 0600
``env.json``, the Kubernetes job's Secret) as the driver's
``JUPYTERHUB_API_TOKEN``; the driver deletes it when the job ends
(:func:`revoke_at_end`). When the hub refuses, the job gets the session's token
and the submitter a :class:`~kbatch_dask.errors.KbatchWarning` that names the
risk and the admin setting that removes it.

Plain ``urllib``, so that importing this module costs nothing on the CLI path.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kbatch_dask import settings
from kbatch_dask.errors import HubError, KbatchWarning
from kbatch_dask.gateway.settings import GatewaySettings

TOKEN_VAR = "JUPYTERHUB_API_TOKEN"
TOKEN_ID_VAR = "KBATCH_DASK_HUB_TOKEN_ID"  # the job token's id (not a secret): the driver revokes it
# JupyterHub lets a token delete tokens only with the `tokens` scope.
REVOKE_SCOPE = "tokens!user"
NOTE_PREFIX = "kbatch-dask job"
_MAX_EXPIRY = re.compile(r"must not exceed (\d+)")


@dataclass(frozen=True)
class HubSession:
    """A JupyterHub API URL, a user and a token of that user."""

    api_url: str
    user: str
    token: str = field(repr=False)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> HubSession | None:
        """The notebook session's hub credentials, or None outside JupyterHub.

        >>> HubSession.from_environ({"JUPYTERHUB_API_URL": "http://hub:8081/hub/api/",
        ...     "JUPYTERHUB_USER": "alice", "JUPYTERHUB_API_TOKEN": "secret"})
        HubSession(api_url='http://hub:8081/hub/api', user='alice')
        >>> HubSession.from_environ({}) is None
        True
        """
        url, user, token = (environ.get(k) for k in ("JUPYTERHUB_API_URL", "JUPYTERHUB_USER", TOKEN_VAR))
        if not (url and user and token):
            return None
        return cls(url.rstrip("/"), user, token)


@dataclass(frozen=True)
class HubToken:
    """A token the hub made: ``id`` (e.g. ``a12``) names it in the hub's API."""

    id: str
    token: str = field(repr=False)


@dataclass(frozen=True)
class TokenPolicy:
    """How job tokens are made (the ``kbatch.hub`` config, read at the edge)."""

    enabled: bool = True
    scopes: tuple[str, ...] = ("access:services!service=dask-gateway",)
    revoke_at_end: bool = True
    margin: int = 3600
    lifetime: int = 7 * 86400
    timeout: float = 10.0
    gateway_auth: str | None = None  # the gateway's auth type; tokens are for "jupyterhub" only

    @classmethod
    def from_settings(cls, hub: settings.Hub, gateway: GatewaySettings | None) -> TokenPolicy:
        """The policy of the ``kbatch.hub`` settings, for jobs of ``gateway`` (the
        configured one; None: the embedded gateway, which uses basic auth)."""
        return cls(
            enabled=hub.job_tokens,
            scopes=hub.token_scopes,
            revoke_at_end=hub.revoke_at_end,
            margin=hub.token_margin,
            lifetime=hub.token_lifetime,
            timeout=hub.timeout,
            gateway_auth=gateway.auth_type if gateway else "basic",
        )

    def token_scopes(self) -> list[str]:
        """The scopes to ask for: the configured ones, plus the one that lets the
        driver delete the token at the end.

        >>> TokenPolicy().token_scopes()
        ['access:services!service=dask-gateway', 'tokens!user']
        """
        scopes = list(dict.fromkeys(self.scopes))
        if self.revoke_at_end and REVOKE_SCOPE not in scopes:
            scopes.append(REVOKE_SCOPE)
        return scopes


@dataclass(frozen=True)
class JobCredentials:
    """What a submission adds to the job's private environment, and what the
    submitter should be told."""

    env: dict[str, str] = field(default_factory=dict, repr=False)
    token_id: str | None = None
    warning: KbatchWarning | None = None


def token_lifetime(time_limit: int | None, margin: int, default: int) -> int:
    """Seconds a job's token lives: the time limit plus a margin (queueing,
    cleanup), else the default.

    >>> token_lifetime(3600, 900, 86400), token_lifetime(None, 900, 86400)
    (4500, 86400)
    """
    return time_limit + margin if time_limit else default


def token_note(name: str, submitted: datetime, host: str) -> str:
    """How the job's token shows on the hub's token page.

    >>> from datetime import datetime, timezone
    >>> token_note("train", datetime(2026, 11, 21, 21, 40, tzinfo=timezone.utc), "jupyter-alice")
    "kbatch-dask job 'train' submitted 2026-11-21T21:40:00+00:00 from jupyter-alice"
    """
    return f"{NOTE_PREFIX} {name!r} submitted {submitted.isoformat(timespec='seconds')} from {host}"


def refusal_fix(error: HubError, scopes: Sequence[str]) -> str:
    """What removes a hub's refusal to make job tokens.

    >>> refusal_fix(HubError("HTTP 403: no permissions to generate tokens", 403), [])[:40]
    'an admin can allow it with c.Spawner.ser'
    """
    if error.status == 400 and "not held" in str(error):
        return (
            f"an admin can grant users these scopes ({', '.join(scopes)}) with a JupyterHub role, "
            "or set kbatch.hub.token-scopes to what the gateway needs"
        )
    if error.status in (401, 403):
        return (
            "an admin can allow it with c.Spawner.server_token_scopes including "
            "'tokens!user' and 'access:services!service=dask-gateway'"
        )
    return "check that the hub is up (JUPYTERHUB_API_URL)"


def refusal_warning(error: HubError, scopes: Sequence[str]) -> KbatchWarning:
    """The one-line warning for a hub that would not make a job token: the
    risk, and the setting that removes it."""
    risk = (
        "the job uses this session's token instead, and loses access to the Dask-Gateway "
        "(its cluster can no longer be scaled or stopped) when your notebook server stops"
    )
    fix = refusal_fix(error, scopes)
    return KbatchWarning(
        f"JupyterHub did not create a token for this job ({error}); {risk}; {fix} (`kbatch doctor` checks job tokens)"
    )


# -- the hub's API -------------------------------------------------------------


def request(session: HubSession, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
    """One call to the hub's REST API; the JSON answer (None if empty).

    A refusal raises :class:`HubError` with the hub's status and message; a hub
    that cannot be reached raises it with status None.
    """
    import urllib.error  # here: a submission outside JupyterHub makes no request, and needs no HTTP stack
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"token {session.token}", "Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(f"{session.api_url}{path}", data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        message = exc.reason
        with contextlib.suppress(Exception):
            message = json.loads(exc.read()).get("message") or message
        raise HubError(f"HTTP {exc.code}: {message}", exc.code) from None
    except (OSError, ValueError) as exc:
        raise HubError(f"JupyterHub at {session.api_url} is unreachable: {exc}") from None
    return json.loads(raw) if raw.strip() else None


def create_token(
    session: HubSession, *, note: str, scopes: Sequence[str], expires_in: int, timeout: float = 10.0
) -> HubToken:
    """A new token for the session's user. A hub with a shorter maximum token
    lifetime (``token_expires_in_max_seconds``) gets asked once more with it."""
    body = {"note": note, "scopes": list(scopes), "expires_in": expires_in}
    try:
        answer = request(session, "POST", f"/users/{session.user}/tokens", body, timeout)
    except HubError as exc:
        longest = _MAX_EXPIRY.search(str(exc)) if exc.status == 400 else None
        if not longest:
            raise
        answer = request(session, "POST", f"/users/{session.user}/tokens", {**body, "expires_in": int(longest[1])})
    return HubToken(id=str(answer["id"]), token=str(answer["token"]))


def revoke_token(session: HubSession, token_id: str, timeout: float = 10.0) -> None:
    """Delete one of the user's tokens; one that is already gone counts as deleted."""
    try:
        request(session, "DELETE", f"/users/{session.user}/tokens/{token_id}", timeout=timeout)
    except HubError as exc:
        if exc.status != 404:
            raise


# -- submit and end of a job ---------------------------------------------------


def job_credentials(
    *,
    name: str,
    time_limit: int | None,
    needs_gateway: bool,
    environ: Mapping[str, str],
    policy: TokenPolicy,
    submitted: datetime,
    host: str,
) -> JobCredentials:
    """The hub credentials a job gets: a new token of its own where the hub
    allows, else the session's token and a warning. Nothing outside JupyterHub,
    for a job without a cluster, or with a gateway not using JupyterHub auth."""
    session = HubSession.from_environ(environ)
    if session is None or not needs_gateway or policy.gateway_auth != "jupyterhub":
        return JobCredentials()
    where = {"JUPYTERHUB_API_URL": session.api_url, "JUPYTERHUB_USER": session.user}
    fallback = {**where, TOKEN_VAR: session.token}
    if not policy.enabled:
        return JobCredentials(env=fallback)
    scopes = policy.token_scopes()
    try:
        token = create_token(
            session,
            note=token_note(name, submitted, host),
            scopes=scopes,
            expires_in=token_lifetime(time_limit, policy.margin, policy.lifetime),
            timeout=policy.timeout,
        )
    except HubError as exc:
        return JobCredentials(env=fallback, warning=refusal_warning(exc, scopes))
    env = {**where, TOKEN_VAR: token.token}
    if policy.revoke_at_end:
        env[TOKEN_ID_VAR] = token.id
    return JobCredentials(env=env, token_id=token.id)


def revoke_at_end(environ: Mapping[str, str], log: Callable[[str], None], timeout: float = 10.0) -> bool:
    """Delete the job's own token (called by the driver when the job ends); True
    if it is gone. Never raises: a token that cannot be deleted expires."""
    token_id = environ.get(TOKEN_ID_VAR)
    session = HubSession.from_environ(environ)
    if not token_id or session is None:
        return False
    try:
        revoke_token(session, token_id, timeout)
    except HubError as exc:
        log(f"could not delete the job's JupyterHub token {token_id} ({exc}); it expires on its own")
        return False
    log(f"deleted the job's JupyterHub token {token_id}")
    return True


@contextlib.contextmanager
def job_token(
    *, name: str, time_limit: int | None, needs_gateway: bool, environ: Mapping[str, str], policy: TokenPolicy
) -> Iterator[JobCredentials]:
    """:func:`job_credentials` for a submission; the new token is deleted again
    if the submission fails.

    >>> with job_token(name="x", time_limit=None, needs_gateway=True, environ={}, policy=TokenPolicy()) as c:
    ...     c.env
    {}
    """
    import os

    from kbatch_dask.records import now

    credentials = job_credentials(
        name=name,
        time_limit=time_limit,
        needs_gateway=needs_gateway,
        environ=environ,
        policy=policy,
        submitted=now(),
        host=os.uname().nodename,  # socket.gethostname(), without importing socket
    )
    try:
        yield credentials
    except BaseException:
        session = HubSession.from_environ(environ)
        if credentials.token_id and session is not None:
            with contextlib.suppress(HubError):
                revoke_token(session, credentials.token_id, policy.timeout)
        raise
