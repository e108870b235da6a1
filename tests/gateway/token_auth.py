"""A custom authentication pair, as dask-gateway lets a deployment plug in: the
server's :class:`TokenAuthenticator` challenges with ``WWW-Authenticate:
Token realm=<nonce>`` and accepts ``Authorization: Token <user>:<hmac(nonce)>``;
the client's :class:`TokenAuth` answers the challenge. kbatch speaks neither,
so it must go through dask-gateway's client to reach such a gateway.

Importable by the gateway server and by kbatch's drivers through PYTHONPATH.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

NONCES: set[str] = set()


def answer(secret: str, nonce: str) -> str:
    return hmac.new(secret.encode(), nonce.encode(), hashlib.sha256).hexdigest()


try:
    from aiohttp import web
    from dask_gateway_server.auth import Authenticator
    from dask_gateway_server.models import User
    from traitlets import Unicode

    class TokenAuthenticator(Authenticator):  # type: ignore[misc]
        secret = Unicode("", config=True)

        async def authenticate(self, request: Any) -> User:
            header = request.headers.get("Authorization", "")
            scheme, _, value = header.partition(" ")
            user, _, digest = value.partition(":")
            for nonce in list(NONCES):
                if scheme == "Token" and hmac.compare_digest(digest, answer(self.secret, nonce)):
                    NONCES.discard(nonce)
                    return User(user)
            nonce = secrets.token_hex(8)
            NONCES.add(nonce)
            raise web.HTTPUnauthorized(headers={"WWW-Authenticate": f"Token realm={nonce}"})

except ImportError:  # a driver needs only the client side
    pass

from dask_gateway.auth import GatewayAuth  # noqa: E402


class TokenAuth(GatewayAuth):  # type: ignore[misc]
    def __init__(self, user: str = "", secret: str = "") -> None:
        self.user = user
        self.secret = secret

    def pre_request(self, resp: Any) -> tuple[dict[str, str], None]:
        challenge = resp.headers.get("WWW-Authenticate", "")
        nonce = challenge.partition("realm=")[2]
        return {"Authorization": f"Token {self.user}:{answer(self.secret, nonce)}"}, None
