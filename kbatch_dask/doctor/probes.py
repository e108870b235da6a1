"""What ``kbatch doctor`` looks at: the state directory, the gateway, the hub,
the Kubernetes API. :func:`diagnose` gathers the facts (config is read here,
at the edge) and turns them into :class:`~kbatch_dask.doctor.checks.Check` results
with the pure checks of :mod:`kbatch_dask.doctor.checks`.

Side effects are kept to what a job would do anyway, undone at once: a
temporary file in the state directory, and a two-minute JupyterHub token made
as a job's would be, tried on the gateway and deleted.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from typing import Any

from kbatch_dask.doctor.checks import (
    FAIL,
    PERMISSIONS,
    Check,
    Permission,
    check_backend,
    check_cluster_options,
    check_dashboard,
    check_dashboard_links,
    check_gateway,
    check_gateway_auth,
    check_home_volume,
    check_image,
    check_job_tokens,
    check_kube_api,
    check_namespace,
    check_permission,
    check_state_dir,
)
from kbatch_dask.errors import GatewayError, HubError, KbatchError, KubeError
from kbatch_dask.hub import tokens as hub


def diagnose(backend: str | None = None, environ: Mapping[str, str] | None = None) -> list[Check]:
    """Run every check that applies to this session, in order."""
    from kbatch_dask import config
    from kbatch_dask.backends import SERVICE_ACCOUNT_DIR, resolve_backend_name

    environ = os.environ if environ is None else environ
    configured = str(config.get("backend") or "auto")
    try:
        resolved = resolve_backend_name(backend or configured)
    except KbatchError as exc:
        return [Check("backend", FAIL, str(exc))]
    in_pod = bool(environ.get("KUBERNETES_SERVICE_HOST")) and os.path.exists(SERVICE_ACCOUNT_DIR)
    checks = [check_backend(backend, configured, resolved, in_pod)]
    if checks[0].status == FAIL:
        return checks

    from kbatch_dask.spec import current_user

    user = current_user(environ)
    home = ""
    if resolved == "local":
        from kbatch_dask.backends.local.store import default_home

        home = str(config.get("local.home") or default_home(dict(environ)))
        checks.append(check_state_dir(home, _writable(home)))

    settings, gateway_checks = _gateway_checks(resolved, home, user, environ)
    checks += gateway_checks
    if settings is not None:
        checks.append(_dashboard_check(settings))
    checks.append(_token_check(settings, environ))
    if config.gateway_address():
        from kbatch_dask.hub.urls import absolute_address, hub_public_url

        public = str(config.dask_get("gateway.public-address") or config.gateway_address())
        hub_url = hub_public_url(config.get("hub.public-url"), environ)
        checks.append(check_dashboard_links(public, absolute_address(public, hub_url)))
    if resolved == "kubernetes":
        checks += _kube_checks(environ)
    return checks


def _writable(path: str) -> str | None:
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".doctor-"):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _gateway_checks(backend: str, home: str, user: str, environ: Mapping[str, str]) -> tuple[Any, list[Check]]:
    from kbatch_dask import config
    from kbatch_dask.backends.local import embedded_gateway as embedded
    from kbatch_dask.backends.local.backend import LocalBackend
    from kbatch_dask.gateway import GatewayClient, configured_gateway

    address = config.gateway_address()
    if address is None:
        server = embedded.status(home, user) if backend == "local" and home else None
        check = check_gateway(backend, None, None, server.address if server else None)
        if server is None:
            return None, [check]
        settings = LocalBackend(home).gateway()
    else:
        error = _health(address)
        check = check_gateway(backend, address, error)
        if error:
            return None, [check]
        settings = configured_gateway(environ)
    checks = [check]
    assert settings is not None
    has_token = bool(settings.auth_kwargs.get("api_token") or environ.get(hub.TOKEN_VAR))
    if settings.auth_type == "jupyterhub" and not has_token:
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


def _health(address: str) -> str | None:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{address.rstrip('/')}/api/health", timeout=5) as resp:
            return None if resp.status == 200 else f"HTTP {resp.status}"
    except (OSError, ValueError) as exc:
        return str(getattr(exc, "reason", None) or exc)


def _token_check(settings: Any, environ: Mapping[str, str]) -> Check:
    """Make a short-lived token as a job would get, try it on the gateway, delete it."""
    from kbatch_dask.gateway import GatewayClient, configured_gateway
    from kbatch_dask.settings import load

    policy = hub.TokenPolicy.from_settings(load().hub, configured_gateway(environ))
    session = hub.HubSession.from_environ(environ)
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
            from dataclasses import replace

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


def _kube_checks(environ: Mapping[str, str]) -> list[Check]:
    from kbatch_dask import config
    from kbatch_dask.backends.kubernetes.pod_settings import detect_image, notebook_container, settings_from_pod

    try:
        import kubernetes  # noqa: F401
    except ImportError:
        return [
            Check(
                "kubernetes API",
                FAIL,
                "the kubernetes Python client is not installed",
                "pip install kubernetes (or kbatch-dask's kubernetes extra)",
            )
        ]
    from kbatch_dask.backends.kubernetes.client import KubeAPI

    try:
        api = KubeAPI(config.get("kubernetes.context") or None)
    except KubeError as exc:
        return [check_kube_api(None, exc)]
    checks = [check_kube_api(api.where, None)]
    namespace, source = _namespace(config.get("kubernetes.namespace") or None, api.context_namespace)
    checks.append(check_namespace(namespace, source))
    for permission in PERMISSIONS:
        allowed = {verb: _can_i(api, namespace, verb, permission) for verb in permission.verbs}
        checks.append(check_permission(permission, namespace, allowed))

    pod, pod_error = None, None
    hostname = environ.get("HOSTNAME")
    if hostname:
        try:
            pod = api.read_pod(namespace, hostname)
        except KubeError as exc:
            pod_error = str(exc)
    else:
        pod_error = "no $HOSTNAME: not in a pod"
    pod_settings = settings_from_pod(pod)
    container_image = None
    if pod:
        container_image = (notebook_container(pod) or {}).get("image")
    configured_image = config.get("kubernetes.image") or None
    try:
        image = detect_image(None, environ, configured_image, container_image)
        checks.append(check_image(image, _image_source(image, environ, configured_image), None))
    except KbatchError as exc:
        checks.append(check_image(None, "", exc))
    template = config.get("kubernetes.pod-template") or {}
    mounts = [
        *pod_settings.get("volume_mounts", ()),
        *[m for c in (template.get("containers") or [])[:1] for m in c.get("volumeMounts") or []],
    ]
    home = environ.get("HOME") or os.path.expanduser("~")
    checks.append(check_home_volume(home, mounts, pod_error))
    api.close()
    return checks


def _namespace(configured: str | None, context_namespace: str | None) -> tuple[str, str]:
    """The namespace jobs go to, and where that came from (as ``pod_settings.detect_namespace``)."""
    from kbatch_dask.backends.kubernetes.pod_settings import SERVICE_ACCOUNT_NAMESPACE

    if configured:
        return configured, "kbatch.kubernetes.namespace"
    try:
        with open(SERVICE_ACCOUNT_NAMESPACE) as f:
            found = f.read().strip()
        if found:
            return found, "the pod's service account"
    except OSError:
        pass
    if context_namespace:
        return context_namespace, "the kubeconfig context"
    return "default", "no namespace configured"


def _image_source(image: str, environ: Mapping[str, str], configured: str | None) -> str:
    for source, value in (
        ("$JUPYTER_IMAGE_SPEC", environ.get("JUPYTER_IMAGE_SPEC")),
        ("$JUPYTER_IMAGE", environ.get("JUPYTER_IMAGE")),
        ("kbatch.kubernetes.image", configured),
    ):
        if value == image:
            return source
    return "the notebook container's image"


def _can_i(api: Any, namespace: str, verb: str, permission: Permission) -> bool | None:
    """A SelfSubjectAccessReview: may this session ``verb`` the resource? None if it cannot be asked."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    resource, _, subresource = permission.resource.partition("/")
    attributes = {"namespace": namespace, "verb": verb, "group": permission.group, "resource": resource}
    if subresource:
        attributes["subresource"] = subresource
    body: Any = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": attributes},
    }
    authorization = client.AuthorizationV1Api(api.client)
    try:
        response: Any = authorization.create_self_subject_access_review(body, _preload_content=False)
        try:
            review = json.loads(response.data)
        finally:
            response.release_conn()
    except (ApiException, HTTPError, ValueError):
        return None
    return bool((review.get("status") or {}).get("allowed"))
