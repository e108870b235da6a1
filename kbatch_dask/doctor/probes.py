"""What ``kbatch doctor`` looks at: the state directory, the gateway, the hub,
the Kubernetes API. :func:`diagnose` finds each value through the function
submitting uses (the backend's ``detect_*``, ``Backend.gateway``, the
gateway's :func:`~kbatch_dask.gateway.health`), so the two cannot disagree,
and turns what it found into :class:`~kbatch_dask.doctor.report.Check` rows
with the pure checks of :mod:`kbatch_dask.doctor.checks`.

Side effects are kept to what a job would do anyway, undone at once: a
temporary file in the state directory, and a two-minute JupyterHub token made
as a job's would be, tried on the gateway and deleted.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from kbatch_dask.doctor.checks import (
    check_backend,
    check_cluster_options,
    check_dashboard,
    check_dashboard_links,
    check_gateway,
    check_gateway_auth,
    check_job_tokens,
    check_state_dir,
)
from kbatch_dask.doctor.kube_checks import (
    PERMISSIONS,
    check_cloud_identity,
    check_home_claims,
    check_home_volume,
    check_image,
    check_kube_api,
    check_namespace,
    check_permission,
    check_permission_scope,
    check_tenancy,
)
from kbatch_dask.doctor.report import FAIL, Check
from kbatch_dask.errors import GatewayError, HubError, KbatchError
from kbatch_dask.hub import tokens as hub

if TYPE_CHECKING:
    from kbatch_dask.backends.kubernetes.backend import KubernetesBackend
    from kbatch_dask.backends.kubernetes.client import KubeAPI
    from kbatch_dask.gateway import GatewaySettings

HEALTH_TIMEOUT = 5.0


def diagnose(backend: str | None = None) -> list[Check]:
    """Run every check that applies to this session, in order; ``backend``: ``--backend``."""
    from kbatch_dask import settings as site
    from kbatch_dask.backends import detect_backend, get_backend

    config = site.load()
    detected = detect_backend(backend, config.backend, config.service.url)
    checks = [check_backend(detected.value, detected.source)]
    if checks[0].status == FAIL:
        return checks
    if detected.value == "local":
        from kbatch_dask.backends.local.backend import detect_home

        home = detect_home(config.local)
        checks.append(check_state_dir(home.value, home.source, _writable(home.value)))
    # The backend submit would use, so that its gateway is the one jobs get.
    chosen = get_backend(detected.value, config)
    settings = chosen.gateway()
    answered, gateway_checks = _gateway_checks(chosen.name, settings)
    checks += gateway_checks
    if answered is not None:
        checks.append(_dashboard_check(answered))
    checks.append(_token_check(answered))
    if settings is not None and not settings.embedded:
        checks.append(check_dashboard_links(settings.public_address))
    if detected.value == "hub":
        checks += _service_checks(config)
    if detected.value == "kubernetes":
        from kbatch_dask.backends.kubernetes.backend import KubernetesBackend

        assert isinstance(chosen, KubernetesBackend)
        checks += _kube_checks(chosen)
    return checks


def _service_checks(config: Any) -> list[Check]:
    """``GET /`` of the service, with the token jobs are submitted with."""
    from kbatch_dask.backends.hub.client import ServiceClient
    from kbatch_dask.doctor.service_checks import check_service

    url = config.service.url or ""
    client = ServiceClient(url, config.service.token or os.environ.get("JUPYTERHUB_API_TOKEN"), timeout=HEALTH_TIMEOUT)
    try:
        root = client.json("GET", "/")
    except KbatchError as exc:
        return check_service(client.url, None, exc, config.service.name)
    return check_service(client.url, root, None, config.service.name)


def _writable(path: str) -> str | None:
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".doctor-"):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _gateway_checks(backend: str, settings: GatewaySettings | None) -> tuple[GatewaySettings | None, list[Check]]:
    """Whether the gateway answers (then it is returned), accepts this session,
    and declares the worker options."""
    from kbatch_dask.gateway import GatewayClient, health
    from kbatch_dask.gateway.transports import auth_headers

    # The embedded gateway is only returned when it answers (see embedded_gateway.status).
    error = health(settings.address, HEALTH_TIMEOUT) if settings and not settings.embedded else None
    checks = [check_gateway(backend, settings, error)]
    if settings is None or error:
        return None, checks
    if settings.auth_type == "jupyterhub" and auth_headers(settings) is None:
        checks.append(check_gateway_auth(settings.auth_type, None, has_hub_token=False))
        return settings, checks
    auth_error: GatewayError | None = None
    with GatewayClient(settings) as client:
        try:
            client.list_clusters()
        except GatewayError as exc:
            auth_error = exc
        checks.append(check_gateway_auth(settings.auth_type, auth_error))
        if auth_error is not None:
            return settings, checks
        try:
            checks.append(check_cluster_options(list(client.cluster_options()), None))
        except GatewayError as exc:
            checks.append(check_cluster_options(None, exc))
    return settings, checks


def _dashboard_check(settings: Any) -> Check:
    """Read the dashboard of one of this user's running clusters, as its link opens it
    (through the gateway's address this session reaches, not its public one)."""
    import urllib.request
    from dataclasses import replace

    from kbatch_dask.gateway import ClusterStatus, GatewayClient

    try:
        with GatewayClient(replace(settings, public_address=settings.address)) as client:
            found = client.list_clusters()
    except GatewayError:
        found = {}  # the gateway auth check says why
    links = sorted(c.dashboard for c in found.values() if c.status is ClusterStatus.RUNNING and c.dashboard)
    if not links:
        return check_dashboard(None, None, None)
    try:
        with urllib.request.urlopen(links[0], timeout=10) as resp:
            page = resp.read(1_000_000).decode("utf-8", "replace")
    except (OSError, ValueError) as exc:
        return check_dashboard(links[0], None, str(getattr(exc, "reason", None) or exc))
    return check_dashboard(links[0], page, None)


def _token_check(settings: GatewaySettings | None) -> Check:
    """Make a short-lived token as a job would get, try it on the gateway (``settings``,
    None when it does not answer), delete it."""
    from kbatch_dask.gateway import GatewayClient, configured_gateway
    from kbatch_dask.settings import load

    policy = hub.TokenPolicy.from_settings(load().hub, configured_gateway())
    session = hub.HubSession.from_environ(os.environ)
    scopes = policy.token_scopes()
    facts: dict[str, Any] = {
        "under_hub": session is not None,
        "gateway_auth": policy.gateway_auth,
        "enabled": policy.enabled,
        "error": None,
        "scopes": scopes,
    }
    if session is None or policy.gateway_auth != "jupyterhub" or not policy.enabled:
        return check_job_tokens(**facts)
    try:
        token = hub.create_token(
            session, note="kbatch doctor: a test of job tokens", scopes=scopes, expires_in=120, timeout=policy.timeout
        )
    except HubError as exc:
        return check_job_tokens(**{**facts, "error": exc})
    try:
        if settings is not None:
            as_job = replace(settings, auth_kwargs={**settings.auth_kwargs, "api_token": token.token})
            try:
                with GatewayClient(as_job) as client:
                    client.list_clusters()
            except GatewayError as exc:
                facts["gateway_error"] = exc
    finally:
        with contextlib.suppress(HubError):
            hub.revoke_token(session, token.id, policy.timeout)
    return check_job_tokens(**facts)


def _kube_checks(backend: KubernetesBackend) -> list[Check]:
    """The API, the namespace, each verb the backend uses, and what jobs take from the notebook pod."""
    from kbatch_dask.backends.kubernetes.client import import_kubernetes
    from kbatch_dask.backends.kubernetes.pod_settings import notebook_node
    from kbatch_dask.backends.kubernetes.reviews import can_i, rules_review
    from kbatch_dask.errors import KubeError

    try:
        import_kubernetes()
    except ImportError:
        return [
            Check(
                "kubernetes API",
                FAIL,
                "the kubernetes Python client is not installed",
                "pip install kubernetes (or kbatch-dask's kubernetes extra)",
            )
        ]
    try:
        api = backend.api
    except KubeError as exc:
        return [check_kube_api(None, exc)]
    checks = [check_kube_api(api.where, None)]
    namespace = backend.detected_namespace
    checks.append(check_namespace(namespace.value, namespace.source))
    for permission in PERMISSIONS:
        allowed = {
            verb: can_i(api, namespace.value, verb, permission.group, permission.resource) for verb in permission.verbs
        }
        checks.append(check_permission(permission, namespace.value, allowed))
    checks.append(check_permission_scope(namespace.value, rules_review(api, namespace.value)))
    checks.append(_tenancy_check(api, namespace.value))
    notebook = backend.notebook_session()
    pod = notebook.pod
    try:
        image = backend.detect_image(None, pod)
        checks.append(check_image(image.value, image.source, None))
    except KbatchError as exc:
        checks.append(check_image(None, "", exc))
    home = os.environ.get("HOME") or os.path.expanduser("~")
    try:
        plan = notebook.plan
    except KbatchError:  # rwo-home is refuse, or unknown: the claims' rows say so
        plan = None
    checks.append(check_home_volume(home, backend.job_mounts(pod, plan), pod.why_not))
    checks += check_home_claims(notebook.claims, notebook.policy, notebook_node(pod))
    checks.append(check_cloud_identity(*backend.cloud_identity(pod), pod.why_not))
    api.close()
    return checks


#: z2jh's labels: ``component`` of its notebook and hub pods, and whose notebook a pod is.
COMPONENT, USERNAME = "component", "hub.jupyter.org/username"


def _tenancy_check(api: KubeAPI, namespace: str) -> Check:
    """Whether other users' notebook pods, or the hub's own, share the namespace jobs go to."""
    from kbatch_dask.errors import KubeError

    try:
        pods = api.list_pods(namespace, f"{COMPONENT} in (singleuser-server,hub)")
    except KubeError as exc:
        return check_tenancy(namespace, (), (), exc)

    def labels(pod: dict[str, Any]) -> dict[str, str]:
        return dict((pod.get("metadata") or {}).get("labels") or {})

    own_name = os.environ.get("HOSTNAME")
    own = next((labels(p) for p in pods if (p.get("metadata") or {}).get("name") == own_name), {})
    # KubeSpawner escapes the name in the label; our own pod's label is the form to compare with.
    me = own.get(USERNAME) or os.environ.get("JUPYTERHUB_USER")
    notebooks = [labels(p) for p in pods if labels(p).get(COMPONENT) == "singleuser-server"]
    others = sorted({str(n.get(USERNAME)) for n in notebooks if n.get(USERNAME) and n.get(USERNAME) != me})
    hubs = [str((p.get("metadata") or {}).get("name")) for p in pods if labels(p).get(COMPONENT) == "hub"]
    return check_tenancy(namespace, others, hubs, None)
