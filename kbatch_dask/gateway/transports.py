"""The two ways to send a request to a Dask-Gateway, both answering with the
gateway's JSON and raising the same errors:

- :class:`HttpTransport`, plain HTTP for the auth types we speak (``basic``,
  ``jupyterhub``): nothing to import, the fast path of the CLI;
- :class:`DaskGatewayTransport`, dask-gateway's own client for every other auth
  type (``kerberos``, or a custom ``GatewayAuth`` class named by its import
  path), whose 401 challenge-and-answer it alone knows.

Errors: connection trouble, and 5xx answers, raise :class:`GatewayUnreachable`
(worth retrying); any other refusal raises :class:`GatewayError` with the HTTP
status.
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from kbatch_dask.errors import GatewayError, GatewayUnreachable
from kbatch_dask.gateway import direct_http
from kbatch_dask.gateway.settings import GatewaySettings

if TYPE_CHECKING:
    from dask_gateway import Gateway, GatewayCluster

JUPYTERHUB_TOKEN_REFUSED = (
    "the JupyterHub token is no longer valid or lacks access to the gateway "
    "(a notebook server's token is deleted when the server stops)"
)


class Transport(Protocol):
    def request(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
        """One call to the gateway's HTTP API; its JSON answer (None if empty)."""

    def close(self) -> None: ...


def transport_for(settings: GatewaySettings) -> Transport:
    """Plain HTTP where we speak the auth, dask-gateway's client otherwise."""
    headers = auth_headers(settings)
    return HttpTransport(settings, headers) if headers is not None else DaskGatewayTransport(settings)


def auth_headers(settings: GatewaySettings, environ: Mapping[str, str] = os.environ) -> dict[str, str] | None:
    """Headers for plain HTTP requests, or None for auth types only dask-gateway speaks.

    >>> auth_headers(GatewaySettings("http://gw", None, "http://gw", "basic", {"username": "a", "password": "b"}))
    {'Authorization': 'Basic YTpi'}
    >>> auth_headers(GatewaySettings("http://gw", None, "http://gw", "kerberos")) is None
    True
    """
    if settings.auth_type in (None, "basic"):
        kw = settings.auth_kwargs
        user = kw.get("username") or getpass.getuser()  # as dask-gateway's BasicAuth
        basic = base64.b64encode(f"{user}:{kw.get('password') or ''}".encode()).decode()
        return {"Authorization": f"Basic {basic}"}
    if settings.auth_type == "jupyterhub":
        token = settings.auth_kwargs.get("api_token") or environ.get("JUPYTERHUB_API_TOKEN")
        # dask-gateway-server's JupyterHubAuthenticator reads "jupyterhub <token>".
        return {"Authorization": f"jupyterhub {token}"} if token else None
    return None


def hub_token_refused(settings: GatewaySettings, status: int, reason: str) -> bool:
    """True when the gateway refused our JupyterHub token (no use retrying). JupyterHub
    >= 5 answers 403 for a deleted token, which dask-gateway-server turns into a 500.

    >>> s = GatewaySettings("http://gw", None, "http://gw", "jupyterhub")
    >>> hub_token_refused(s, 500, "Permission failure verifying user's JupyterHub API token")
    True
    """
    if settings.auth_type != "jupyterhub":
        return False
    return status == 401 or (status == 500 and "Permission failure verifying" in reason)


def _refusal(settings: GatewaySettings, method: str, path: str, status: int, reason: str, answered: bool) -> Exception:
    """The error for an HTTP refusal; ``answered`` when the gateway itself (not its proxy) answered."""
    if hub_token_refused(settings, status, reason):
        reason = f"{reason}: {JUPYTERHUB_TOKEN_REFUSED}"
        return GatewayError(f"the Dask-Gateway refused {method} {path}: HTTP {status} {reason}", status)
    # While the gateway starts, its proxy answers 404 for routes not yet set up.
    if status >= 500 or (status == 404 and not answered):
        return GatewayUnreachable(f"the Dask-Gateway at {settings.address} failed: HTTP {status} {reason}")
    return GatewayError(f"the Dask-Gateway refused {method} {path}: HTTP {status} {reason}", status)


class HttpTransport:
    """Plain HTTP requests with the auth header set up front: over a socket where
    urllib would send them straight to the gateway (:mod:`.direct_http`, which
    spares a command urllib's import), else through ``urllib``."""

    def __init__(self, settings: GatewaySettings, headers: Mapping[str, str]) -> None:
        self.settings = settings
        self.headers = dict(headers)

    def request(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
        headers = dict(self.headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        url = f"{self.settings.address.rstrip('/')}{path}"
        try:
            answer = direct_http.request(method, url, headers, data, timeout) if direct_http.direct(url) else None
            if answer is None or answer.status in direct_http.REDIRECT:
                answer = _through_urllib(method, url, headers, data, timeout)
        except (OSError, ValueError) as exc:
            raise GatewayUnreachable(f"the Dask-Gateway at {self.settings.address} is unreachable: {exc}") from None
        if answer.status >= 400:
            reason, answered = answer.reason, False
            with contextlib.suppress(Exception):
                reason, answered = json.loads(answer.body).get("error") or reason, True
            raise _refusal(self.settings, method, path, answer.status, str(reason), answered) from None
        return json.loads(answer.body) if answer.body.strip() else None

    def close(self) -> None:
        pass


def _through_urllib(
    method: str, url: str, headers: Mapping[str, str], data: bytes | None, timeout: float
) -> direct_http.Answer:
    """The answer as urllib gives it (through a proxy, over TLS, after redirects)."""
    import urllib.error  # here: only a gateway behind https or a proxy needs urllib's HTTP stack
    import urllib.request

    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return direct_http.Answer(resp.status, str(resp.reason), resp.read())
    except urllib.error.HTTPError as exc:
        return direct_http.Answer(exc.code, str(exc.reason), exc.read())


class DaskGatewayTransport:
    """Requests through a ``dask_gateway.Gateway`` (made on first use: it is slow to
    import), so that its auth class answers the gateway's 401 challenge."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self._gateway: Gateway | None = None

    @property
    def gateway(self) -> Gateway:
        if self._gateway is None:
            self._gateway = connect(self.settings)
        return self._gateway

    def request(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
        import asyncio

        import aiohttp
        from dask_gateway.client import GatewayClusterError, GatewayServerError

        gateway = self.gateway
        url = f"{gateway.address}{path}"

        async def call() -> Any:
            # Gateway._request runs the auth class's pre_request/post_response on a
            # 401; it is the one entry point that every public method goes through.
            resp = await asyncio.wait_for(gateway._request(method, url, json=body), timeout)
            raw = await resp.read()
            return json.loads(raw) if raw.strip() else None

        try:
            return gateway.sync(call)
        except ValueError as exc:  # dask-gateway's word for 404 (a GET or DELETE) and 422 (a body it refused)
            status = 404 if body is None else 422
            raise GatewayError(f"the Dask-Gateway refused {method} {path}: {exc}", status) from None
        except GatewayClusterError as exc:
            raise GatewayError(f"the Dask-Gateway refused {method} {path}: {exc}", 409) from None
        except GatewayServerError as exc:
            raise GatewayUnreachable(f"the Dask-Gateway at {self.settings.address} failed: {exc}") from None
        except aiohttp.ClientResponseError as exc:
            raise _refusal(self.settings, method, path, exc.status, exc.message, True) from None
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            raise GatewayUnreachable(
                f"the Dask-Gateway at {self.settings.address} is unreachable: {exc or type(exc).__name__}"
            ) from None

    def close(self) -> None:
        if self._gateway is not None:
            gateway, self._gateway = self._gateway, None
            close_gateway(gateway)


def close_gateway(gateway: Gateway) -> None:
    """Close a ``dask_gateway.Gateway`` for good.

    ``Gateway.__del__`` closes it again, which raises once its loop has stopped:
    "Exception ignored in ... Gateway.__del__ ... Accessing the loop property while
    the loop is not running" in the log of every process that closed one.
    """
    gateway.close()
    _forget_loop(gateway)


def close_cluster(cluster: GatewayCluster) -> None:
    """Close a ``dask_gateway.GatewayCluster`` (stopping it only if it was made to
    stop on close) and, for good, the Gateway it made for itself (see :func:`close_gateway`)."""
    cluster.close()
    _forget_loop(cluster.gateway)


def _forget_loop(gateway: Gateway) -> None:
    vars(gateway).pop("_loop_runner", None)  # __del__ closes only a Gateway that still has one


def gateway_auth(auth_type: str, **kwargs: Any) -> Any:
    """The dask-gateway auth object for ``auth_type``: a name dask-gateway knows
    (``basic``, ``jupyterhub``, ``kerberos``) or the import path of a
    ``GatewayAuth`` class, made with ``kwargs`` (``{VAR}`` filled from the
    environment, as dask-gateway does)."""
    import importlib

    from dask_gateway import auth
    from dask_gateway.utils import format_template

    known = {"basic": auth.BasicAuth, "jupyterhub": auth.JupyterHubAuth, "kerberos": auth.KerberosAuth}
    cls = known.get(auth_type)
    if cls is None:
        module, _, name = auth_type.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), name) if module else None
        except (ImportError, AttributeError) as exc:
            raise GatewayError(f"gateway.auth.type {auth_type!r}: cannot import it ({exc})") from None
        if not (isinstance(cls, type) and issubclass(cls, auth.GatewayAuth)):
            raise GatewayError(f"gateway.auth.type {auth_type!r}: expected basic, jupyterhub, kerberos "
                               "or the import path of a dask_gateway.auth.GatewayAuth class")  # fmt: skip
    return cls(**{key: format_template(value) for key, value in kwargs.items()})


def connect(settings: GatewaySettings) -> Gateway:
    """A ``dask_gateway.Gateway`` client for ``settings``."""
    from dask_gateway import Gateway

    auth = gateway_auth(settings.auth_type, **dict(settings.auth_kwargs)) if settings.auth_type else None
    return Gateway(
        address=settings.address,
        proxy_address=settings.proxy_address,
        public_address=settings.public_address,
        auth=auth,
    )
