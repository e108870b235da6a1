"""Job tokens and hub links: the pure parts (the real hub is in tests/e2e/hub/)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from kbatch_dask.errors import HubError
from kbatch_dask.gateway import GatewayClient, GatewaySettings, configured_gateway
from kbatch_dask.gateway.transports import hub_token_refused
from kbatch_dask.hub.tokens import (
    HubSession,
    JobCredentials,
    TokenPolicy,
    job_credentials,
    refusal_warning,
    token_lifetime,
)
from kbatch_dask.hub.urls import absolute_address, hub_public_url

HUB_ENV = {
    "JUPYTERHUB_API_URL": "http://hub:8081/hub/api",
    "JUPYTERHUB_USER": "alice",
    "JUPYTERHUB_API_TOKEN": "session-secret",
}
HUB_POLICY = TokenPolicy(gateway_auth="jupyterhub")
WHEN = datetime(2026, 11, 21, 21, 40, tzinfo=timezone.utc)


def credentials(
    environ: dict[str, str], policy: TokenPolicy = HUB_POLICY, needs_gateway: bool = True
) -> JobCredentials:
    return job_credentials(
        name="train",
        time_limit=600,
        needs_gateway=needs_gateway,
        environ=environ,
        policy=policy,
        submitted=WHEN,
        host="jupyter-alice",
    )


@pytest.mark.parametrize(
    ("time_limit", "expected"),
    [(600, 600 + 3600), (None, 7 * 86400), (0, 7 * 86400)],
)
def test_token_lifetime_is_the_time_limit_plus_a_margin(time_limit: int | None, expected: int) -> None:
    policy = TokenPolicy()
    assert token_lifetime(time_limit, policy.margin, policy.lifetime) == expected


def test_token_scopes_add_what_revoking_needs_once() -> None:
    assert TokenPolicy(scopes=("a", "a")).token_scopes() == ["a", "tokens!user"]
    assert TokenPolicy(scopes=("a", "tokens!user")).token_scopes() == ["a", "tokens!user"]
    assert TokenPolicy(scopes=("a",), revoke_at_end=False).token_scopes() == ["a"]


def test_session_needs_all_three_variables() -> None:
    assert HubSession.from_environ(HUB_ENV) == HubSession("http://hub:8081/hub/api", "alice", "session-secret")
    for key in HUB_ENV:
        assert HubSession.from_environ({k: v for k, v in HUB_ENV.items() if k != key}) is None


def test_the_token_never_shows_in_reprs() -> None:
    session = HubSession.from_environ(HUB_ENV)
    assert "session-secret" not in repr(session)
    assert "session-secret" not in repr(JobCredentials(env={"JUPYTERHUB_API_TOKEN": "session-secret"}))


@pytest.mark.parametrize(
    ("environ", "policy", "needs_gateway"),
    [
        ({}, HUB_POLICY, True),  # not under JupyterHub
        (HUB_ENV, TokenPolicy(gateway_auth="basic"), True),  # the gateway does not use hub auth
        (HUB_ENV, TokenPolicy(gateway_auth=None), True),
        (HUB_ENV, HUB_POLICY, False),  # --dask-workers 0: no cluster, no gateway
    ],
)
def test_no_hub_credentials_where_none_are_needed(
    environ: dict[str, str], policy: TokenPolicy, needs_gateway: bool
) -> None:
    assert credentials(environ, policy, needs_gateway) == JobCredentials()


def test_job_tokens_off_means_the_session_token_without_a_warning() -> None:
    got = credentials(HUB_ENV, TokenPolicy(enabled=False, gateway_auth="jupyterhub"))
    assert got.env["JUPYTERHUB_API_TOKEN"] == "session-secret"
    assert got.warning is None and got.token_id is None


def test_an_unreachable_hub_gives_the_session_token_and_a_warning() -> None:
    environ = {**HUB_ENV, "JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api"}
    got = credentials(environ, TokenPolicy(gateway_auth="jupyterhub", timeout=2))
    assert got.env == {
        "JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api",
        "JUPYTERHUB_USER": "alice",
        "JUPYTERHUB_API_TOKEN": "session-secret",
    }
    assert got.warning is not None and "is unreachable" in str(got.warning)
    assert "loses access to the Dask-Gateway" in str(got.warning)


@pytest.mark.parametrize(
    ("error", "fix"),
    [
        (HubError("HTTP 403: User alice not found or no permissions to generate tokens", 403), "server_token_scopes"),
        (HubError("HTTP 400: Not assigning requested scopes x not held by User alice", 400), "a JupyterHub role"),
        (HubError("JupyterHub at http://hub is unreachable: timed out"), "check that the hub is up"),
    ],
)
def test_refusal_warning_names_the_risk_and_the_fix(error: HubError, fix: str) -> None:
    text = str(refusal_warning(error, ["access:services!service=dask-gateway"]))
    assert "\n" not in text
    assert str(error) in text and fix in text and "when your notebook server stops" in text
    assert text.endswith("(`kbatch doctor` checks job tokens)")


@pytest.mark.parametrize(
    ("configured", "environ", "expected"),
    [
        ("https://conf.example.org/", {"JUPYTERHUB_PUBLIC_URL": "https://env/"}, "https://conf.example.org/"),
        (None, {"JUPYTERHUB_PUBLIC_URL": "https://env.example.org/user/alice/"}, "https://env.example.org/"),
        (None, {"JUPYTERHUB_PUBLIC_HUB_URL": "https://h.example.org/hub/"}, "https://h.example.org/"),
        (None, {"JUPYTERHUB_PUBLIC_HUB_URL": "https://h.example.org/jh/hub"}, "https://h.example.org/jh/"),
        (
            None,
            {"JUPYTERHUB_PUBLIC_HUB_URL": "https://h.example.org/jh/hub/", "JUPYTERHUB_PUBLIC_URL": "https://x/"},
            "https://h.example.org/jh/",
        ),
        (None, {"JUPYTERHUB_PUBLIC_URL": "", "JUPYTERHUB_PUBLIC_HUB_URL": ""}, None),
        (None, {}, None),
    ],
)
def test_hub_public_url(configured: str | None, environ: dict[str, str], expected: str | None) -> None:
    assert hub_public_url(configured, environ) == expected


@pytest.mark.parametrize(
    ("address", "base", "expected"),
    [
        ("/services/dask-gateway", "https://hub.example.org/", "https://hub.example.org/services/dask-gateway"),
        ("/services/dask-gateway/", "https://hub.example.org/jh/", "https://hub.example.org/services/dask-gateway/"),
        ("services/dask-gateway", "https://hub.example.org/jh/", "https://hub.example.org/jh/services/dask-gateway"),
        ("/services/dask-gateway", None, "/services/dask-gateway"),
        ("https://gw.example.org", "https://hub.example.org/", "https://gw.example.org"),
    ],
)
def test_relative_gateway_addresses_become_absolute(address: str, base: str | None, expected: str) -> None:
    assert absolute_address(address, base) == expected


def test_resolved_dashboard_links_are_absolute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASK_GATEWAY__ADDRESS", "http://traefik-dask-gateway")
    monkeypatch.setenv("DASK_GATEWAY__PUBLIC_ADDRESS", "/services/dask-gateway/")
    monkeypatch.setenv("JUPYTERHUB_PUBLIC_URL", "https://hub.example.org/")
    import dask.config

    dask.config.refresh()
    try:
        settings = configured_gateway()
        assert settings is not None
        assert settings.public_address == "https://hub.example.org/services/dask-gateway/"
        report = {"status": "RUNNING", "dashboard_route": "/clusters/abc/status"}
        assert GatewayClient(settings)._info("abc", report).dashboard == (
            "https://hub.example.org/services/dask-gateway/clusters/abc/status"
        )
    finally:
        monkeypatch.undo()
        dask.config.refresh()


def test_a_deleted_hub_token_is_a_refusal_not_an_outage() -> None:
    hub = GatewaySettings("http://gw", None, "http://gw", "jupyterhub")
    basic = GatewaySettings("http://gw", None, "http://gw", "basic")
    assert hub_token_refused(hub, 401, "Unauthorized")
    assert hub_token_refused(hub, 500, "Permission failure verifying user's JupyterHub API token")
    assert not hub_token_refused(hub, 502, "Upstream failure verifying user's JupyterHub API token")
    assert not hub_token_refused(basic, 401, "Unauthorized")
