"""The pure checks of ``kbatch doctor``: each turns what was observed into a
:class:`~kbatch_dask.doctor.report.Check` (a status, one line saying what was
found and where it came from, and a fix when something is wrong).
:func:`kbatch_dask.doctor.probes.diagnose` observes, through the code that
submitting uses, and calls them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from kbatch_dask.doctor.report import FAIL, OK, SKIP, WARN, Check
from kbatch_dask.errors import GatewayError, HubError, KbatchError
from kbatch_dask.hub import tokens as hub

if TYPE_CHECKING:
    from kbatch_dask.gateway import GatewaySettings

WORKER_OPTIONS = ("worker_cores", "worker_memory")


def check_backend(backend: str, source: str) -> Check:
    """Which backend jobs go to, and why.

    >>> check_backend("local", "kbatch.backend is local").message
    'local (kbatch.backend is local)'
    """
    if backend not in ("local", "kubernetes", "hub"):
        return Check(
            "backend", FAIL, f"{backend!r} ({source})", "use auto, local, kubernetes or hub (--backend, kbatch.backend)"
        )
    return Check("backend", OK, f"{backend} ({source})")


def check_state_dir(path: str, source: str, error: str | None) -> Check:
    if error:
        return Check(
            "state directory",
            FAIL,
            f"{path} ({source}) is not writable: {error}",
            "set KBATCH_DASK_HOME (or kbatch.local.home) to a directory you can write",
        )
    return Check("state directory", OK, f"{path} ({source}) is writable")


def check_gateway(backend: str, settings: GatewaySettings | None, error: str | None) -> Check:
    """Whether the gateway the backend's jobs use answers (``settings`` None: there is none now)."""
    if settings is None:
        if backend == "kubernetes":
            return Check(
                "gateway",
                FAIL,
                "no Dask-Gateway configured; a Kubernetes job's cluster needs one the cluster can reach",
                "set gateway.address (DASK_GATEWAY__ADDRESS; daskhub images set it), or submit with --dask-workers 0",
            )
        return Check("gateway", OK, "the embedded Dask-Gateway (not running; the first job that needs it starts it)")
    if settings.embedded:
        return Check("gateway", OK, f"the embedded Dask-Gateway runs at {settings.address}")
    if error:
        return Check(
            "gateway",
            FAIL,
            f"{settings.address} (gateway.address) does not answer: {error}",
            "check gateway.address (DASK_GATEWAY__ADDRESS) and that the Dask-Gateway runs",
        )
    return Check("gateway", OK, f"{settings.address} answers (gateway.address)")


def check_gateway_auth(auth_type: str | None, error: GatewayError | None, has_hub_token: bool = True) -> Check:
    """Whether the gateway accepts this session's credentials."""
    name = "gateway auth"
    if auth_type == "jupyterhub" and not has_hub_token:
        return Check(
            name,
            FAIL,
            "JupyterHub auth, but this session has no JUPYTERHUB_API_TOKEN",
            "run kbatch from a notebook on the hub, or set gateway.auth.kwargs.api_token",
        )
    if error is None:
        return Check(name, OK, f"the gateway accepts this session ({auth_type or 'no'} auth)")
    status = getattr(error, "status", None)
    if status in (401, 403) or "JupyterHub token" in str(error):
        fix = {
            "jupyterhub": "the token needs the gateway service's access scope "
            "(access:services!service=dask-gateway): a JupyterHub role can grant it to users",
            "basic": "check gateway.auth.kwargs (username, password)",
        }.get(str(auth_type), "check gateway.auth.type and gateway.auth.kwargs")
        return Check(name, FAIL, f"the gateway refused this session: {error}", fix)
    return Check(name, FAIL, str(error), "check the gateway's log")


def check_cluster_options(fields: Sequence[str] | None, error: KbatchError | None) -> Check:
    """The cluster options the gateway declares; --worker-cores/--worker-memory need two of them."""
    name = "cluster options"
    if error is not None:
        return Check(name, FAIL, f"cannot read the gateway's cluster options: {error}", "check the gateway's log")
    fields = list(fields or ())
    missing = [f for f in WORKER_OPTIONS if f not in fields]
    offered = ", ".join(fields) or "none"
    if missing:
        return Check(
            name,
            WARN,
            f"the gateway offers {offered}; --worker-cores/--worker-memory need {', '.join(missing)}",
            f"declare {' and '.join(missing)} in the gateway's c.Backend.cluster_options",
        )
    return Check(name, OK, f"the gateway offers {offered}")


def check_job_tokens(
    *,
    under_hub: bool,
    gateway_auth: str | None,
    enabled: bool,
    error: HubError | None,
    scopes: Sequence[str],
    gateway_error: KbatchError | None = None,
) -> Check:
    """Whether JupyterHub gives jobs tokens of their own (tested by making one)."""
    name = "job tokens"
    if not under_hub:
        return Check(name, SKIP, "not running under JupyterHub: jobs need no hub token")
    if gateway_auth != "jupyterhub":
        return Check(name, SKIP, f"the gateway uses {gateway_auth or 'no'} auth: jobs need no hub token")
    if not enabled:
        return Check(
            name,
            WARN,
            "kbatch.hub.job-tokens is false: jobs use this session's token and lose the gateway when the server stops",
            "set kbatch.hub.job-tokens to true",
        )
    if error is not None:
        return Check(
            name,
            FAIL,
            f"JupyterHub does not create job tokens ({error}): jobs lose the gateway when your server stops",
            hub.refusal_fix(error, scopes),
        )
    if gateway_error is not None:
        return Check(
            name,
            FAIL,
            f"JupyterHub creates job tokens, but the gateway refuses them: {gateway_error}",
            "kbatch.hub.token-scopes must include access:services!service=<the gateway's hub service name>",
        )
    return Check(name, OK, f"JupyterHub creates job tokens ({', '.join(scopes)}); jobs outlive this session")


def check_dashboard_links(public_address: str) -> Check:
    """Whether dashboard links will be absolute: ``public_address`` is the
    gateway's, made absolute against the hub's public URL when that is known
    (daskhub's is a path on the hub).

    >>> check_dashboard_links("/services/dask-gateway").status
    'warn'
    """
    name = "dashboard links"
    if "://" in public_address:
        return Check(name, OK, f"absolute ({public_address.rstrip('/')}/clusters/...)")
    return Check(
        name,
        WARN,
        f"relative (gateway.public-address is {public_address}), and the hub's public URL is unknown",
        "set kbatch.hub.public-url (DASK_KBATCH__HUB__PUBLIC_URL) to the hub's URL, e.g. https://hub.example.org/",
    )


def check_dashboard(url: str | None, page: str | None, error: str | None) -> Check:
    """Whether a running cluster's dashboard really renders (the page its link opens).

    A scheduler without bokeh answers HTTP 200 with a placeholder naming the
    bokeh it needs; a real dashboard is a page loading BokehJS.

    >>> print(check_dashboard("http://gw/status", "<p>Dask needs bokeh>=3.1.0 for the dashboard</p>", None).fix)
    pip install "bokeh>=3.1.0" in the image of the gateway's schedulers (the embedded gateway's: this environment)
    """
    name = "dashboard"
    if url is None:
        return Check(name, SKIP, "no cluster of yours is running: run kbatch doctor while a job with a cluster runs")
    if error is not None:
        return Check(
            name, FAIL, f"{url} does not answer: {error}", "check that the gateway's proxy serves /clusters/ routes"
        )
    text = page or ""
    if "bokeh.min.js" in text:
        return Check(name, OK, f"{url} renders the Dask dashboard")
    needed = re.search(r"needs (bokeh[^\s<]*)", text)
    if needed:
        return Check(
            name,
            FAIL,
            f"{url} shows Dask's placeholder: the scheduler has no {needed.group(1)}",
            f'pip install "{needed.group(1)}" in the image of the gateway\'s schedulers'
            " (the embedded gateway's: this environment)",
        )
    first = text.strip().splitlines()[0][:80] if text.strip() else "an empty page"
    return Check(
        name, FAIL, f"{url} is not a Dask dashboard: {first}", "check that the gateway's proxy serves /clusters/ routes"
    )
