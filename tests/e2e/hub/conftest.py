"""Fixtures: one real JupyterHub and one hub-authenticated Dask-Gateway per test
run; per test a fresh hub user, a gate in front of the gateway, and the
environment of a notebook session of that user."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .servers import GATEWAY_SERVICE, Gate, Hub, HubGateway

# What a notebook server's token holds with the admin setting docs/admin.md
# recommends (c.Spawner.server_token_scopes), and without it.
SESSION_SCOPES = ["access:services!service=dask-gateway", "tokens!user"]
SESSION_SCOPES_WITHOUT_TOKENS = ["access:services!service=dask-gateway"]


@pytest.fixture(scope="session")
def jupyterhub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    hub = Hub.start(tmp_path_factory.mktemp("jupyterhub"))
    yield hub
    hub.stop()


@pytest.fixture(scope="session")
def hub_gateway(tmp_path_factory: pytest.TempPathFactory, jupyterhub: Hub) -> Iterator[HubGateway]:
    gateway = HubGateway.start(tmp_path_factory.mktemp("hub-gateway"), jupyterhub)
    yield gateway
    gateway.stop()


@dataclass
class Session:
    """A notebook session of a fresh hub user: its environment is this process's."""

    hub: Hub
    gateway: HubGateway
    gate: Gate
    user: str
    monkeypatch: pytest.MonkeyPatch
    token: dict[str, Any] | None = None

    def login(self, scopes: list[str]) -> dict[str, Any]:
        """Give the session a server token with ``scopes`` (JUPYTERHUB_API_TOKEN)."""
        self.token = self.hub.new_token(self.user, scopes)
        self.monkeypatch.setenv("JUPYTERHUB_API_TOKEN", self.token["token"])
        return self.token

    def stop_server(self) -> None:
        """What the hub does when the notebook server stops: delete its token."""
        assert self.token is not None
        self.hub.delete_token(self.user, self.token["id"])

    def admin_token(self) -> str:
        """A token of this user that the tests keep, to ask the gateway about clusters."""
        return str(self.hub.new_token(self.user, SESSION_SCOPES, note="test observer")["token"])


@pytest.fixture
def hub_session(
    home: Path, jupyterhub: Hub, hub_gateway: HubGateway, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Session]:
    """This process looks like a notebook on a daskhub: JUPYTERHUB_* set, the
    gateway (behind an open :class:`Gate`) configured with JupyterHub auth, its
    public address a path on the hub."""
    gate = Gate(hub_gateway.http_port)
    gate.open()
    user = jupyterhub.new_user()
    for key, value in {
        "JUPYTERHUB_API_URL": jupyterhub.api_url,
        "JUPYTERHUB_USER": user,
        "DASK_GATEWAY__ADDRESS": gate.address,
        "DASK_GATEWAY__PROXY_ADDRESS": hub_gateway.proxy_address,
        "DASK_GATEWAY__AUTH__TYPE": "jupyterhub",
        # daskhub-style: a relative public address, made absolute from the hub's URL.
        "DASK_GATEWAY__PUBLIC_ADDRESS": "/",
        "JUPYTERHUB_PUBLIC_URL": hub_gateway.address + "/",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN", raising=False)
    yield Session(jupyterhub, hub_gateway, gate, user, monkeypatch)
    gate.stop()


__all__ = ["GATEWAY_SERVICE", "SESSION_SCOPES", "SESSION_SCOPES_WITHOUT_TOKENS", "Session"]
