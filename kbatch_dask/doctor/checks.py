"""``kbatch doctor``: is this session set up to run jobs, and if not, what to fix.

Each check is a pure function from what was observed to a :class:`Check` (a
status, one line, and a fix when something is wrong);
:func:`kbatch_dask.doctor.probes.diagnose` is the edge that reads config, looks
around (gateway, hub, Kubernetes API, state directory) and calls them. Nothing
here prints: the CLI renders the checks with :func:`render`.

Statuses: ``ok``; ``fail`` (jobs will not work, or will not outlive the
session: ``kbatch doctor`` exits 1); ``warn`` (works, with a limitation);
``skip`` (does not apply here).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from kbatch_dask.errors import GatewayError, HubError, KbatchError
from kbatch_dask.hub import tokens as hub

OK, FAIL, WARN, SKIP = "ok", "fail", "warn", "skip"
SYMBOLS = {OK: "✓", FAIL: "✗", WARN: "!", SKIP: "-"}
ASCII_SYMBOLS = {OK: "[ok]", FAIL: "[FAIL]", WARN: "[warn]", SKIP: "[skip]"}
WORKER_OPTIONS = ("worker_cores", "worker_memory")


@dataclass(frozen=True)
class Check:
    """One line of the checklist."""

    name: str
    status: str
    message: str
    fix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Permission:
    """Verbs the Kubernetes backend uses on one resource (what its Role must grant)."""

    resource: str  # "jobs", "pods/log"
    group: str
    verbs: tuple[str, ...]
    optional: tuple[str, ...] = ()  # the backend manages without these (it says so)

    @property
    def label(self) -> str:
        return f"{self.resource}.{self.group}" if self.group else self.resource


PERMISSIONS = (
    Permission("jobs", "batch", ("create", "get", "list", "patch", "delete")),
    Permission("configmaps", "", ("create", "delete")),
    Permission("secrets", "", ("create", "delete")),
    # get: reading the notebook pod copies its volumes and scheduling into
    # jobs; without it only kbatch.kubernetes.pod-template applies.
    Permission("pods", "", ("get", "list"), optional=("get",)),
    Permission("pods/log", "", ("get",)),
)


def passed(checks: Sequence[Check]) -> bool:
    """True when nothing needed failed (``kbatch doctor`` exits 0)."""
    return all(c.status != FAIL for c in checks)


def render(checks: Sequence[Check], unicode: bool = True) -> str:
    """The checklist as text: one line per check, its fix indented below.

    >>> print(render([Check("gateway", "fail", "unreachable", "start it")], unicode=False))
    [FAIL] gateway: unreachable
           fix: start it
    """
    symbols = SYMBOLS if unicode else ASCII_SYMBOLS
    lines = []
    for check in checks:
        mark = symbols[check.status]
        lines.append(f"{mark} {check.name}: {check.message}")
        if check.fix and check.status in (FAIL, WARN):
            lines.append(f"{' ' * len(mark)} fix: {check.fix}")
    text = "\n".join(lines)
    return text if unicode else text.encode("ascii", "replace").decode()


def to_json(checks: Sequence[Check]) -> str:
    return json.dumps({"ok": passed(checks), "checks": [c.to_dict() for c in checks]}, indent=2)


# -- pure checks ----------------------------------------------------------------


def check_backend(option: str | None, configured: str, resolved: str, in_pod: bool) -> Check:
    """Which backend jobs go to, and why.

    >>> check_backend(None, "auto", "local", False).message
    'local (kbatch.backend is auto, and this is not a Kubernetes pod with a service account)'
    """
    if option:
        why = f"--backend {option}"
    elif configured != "auto":
        why = f"kbatch.backend is {configured}"
    elif in_pod:
        why = "kbatch.backend is auto, and this is a Kubernetes pod with a service account"
    else:
        why = "kbatch.backend is auto, and this is not a Kubernetes pod with a service account"
    if resolved not in ("local", "kubernetes"):
        return Check(
            "backend", FAIL, f"{resolved!r} ({why})", "use auto, local or kubernetes (--backend, kbatch.backend)"
        )
    return Check("backend", OK, f"{resolved} ({why})")


def check_state_dir(path: str, error: str | None) -> Check:
    if error:
        return Check(
            "state directory",
            FAIL,
            f"{path} is not writable: {error}",
            "set KBATCH_DASK_HOME (or kbatch.local.home) to a directory you can write",
        )
    return Check("state directory", OK, f"{path} is writable")


def check_gateway(backend: str, address: str | None, error: str | None, embedded_address: str | None = None) -> Check:
    """Whether the gateway answers; ``address`` is the configured one (None: embedded)."""
    if address is None:
        if backend == "kubernetes":
            return Check(
                "gateway",
                FAIL,
                "no Dask-Gateway configured; a Kubernetes job's cluster needs one the cluster can reach",
                "set gateway.address (DASK_GATEWAY__ADDRESS; daskhub images set it), or submit with --dask-workers 0",
            )
        if embedded_address:
            return Check("gateway", OK, f"the embedded Dask-Gateway runs at {embedded_address}")
        return Check("gateway", OK, "the embedded Dask-Gateway (not running; the first job that needs it starts it)")
    if error:
        return Check(
            "gateway",
            FAIL,
            f"{address} (gateway.address) does not answer: {error}",
            "check gateway.address (DASK_GATEWAY__ADDRESS) and that the Dask-Gateway runs",
        )
    return Check("gateway", OK, f"{address} answers (gateway.address)")


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


def check_dashboard_links(public_address: str, absolute: str) -> Check:
    """Whether dashboard links will be absolute (daskhub's public address is a path).

    >>> check_dashboard_links("/services/dask-gateway", "/services/dask-gateway").status
    'warn'
    """
    name = "dashboard links"
    if "://" in absolute:
        return Check(name, OK, f"absolute ({absolute.rstrip('/')}/clusters/...)")
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


def check_kube_api(where: str | None, error: KbatchError | None) -> Check:
    if error is not None:
        return Check(
            "kubernetes API",
            FAIL,
            str(error),
            "run in a pod with a service account (on the hub), or set KUBECONFIG / kbatch.kubernetes.context",
        )
    return Check("kubernetes API", OK, f"reachable as {where}")


def check_namespace(namespace: str, source: str) -> Check:
    return Check("namespace", OK, f"{namespace} ({source})")


def check_permission(permission: Permission, namespace: str, allowed: Mapping[str, bool | None]) -> Check:
    """Whether the session may use ``permission``'s verbs (from SelfSubjectAccessReviews).

    >>> check_permission(PERMISSIONS[0], "jhub", {"create": False, "get": True}).message
    'may not create jobs.batch in namespace jhub'
    """
    name = f"permission {permission.label}"
    denied = [v for v in permission.verbs if allowed.get(v) is False]
    unknown = [v for v in permission.verbs if allowed.get(v) is None]
    if denied:
        message = f"may not {', '.join(denied)} {permission.label} in namespace {namespace}"
        fix = f"an admin must grant {', '.join(denied)} on {permission.label} in namespace {namespace}"
        if set(denied) <= set(permission.optional):
            consequence = (
                "jobs copy nothing from the notebook pod (volumes, scheduling), only kbatch.kubernetes.pod-template"
            )
            return Check(name, WARN, f"{message}: {consequence}", fix)
        return Check(name, FAIL, message, fix)
    if unknown:
        return Check(
            name,
            WARN,
            f"could not check {', '.join(unknown)} on {permission.label}",
            f"ask an admin whether the Role in namespace {namespace} grants them",
        )
    return Check(name, OK, f"may {', '.join(permission.verbs)} {permission.label} in namespace {namespace}")


def check_image(image: str | None, source: str, error: KbatchError | None) -> Check:
    if error is not None or not image:
        return Check(
            "image",
            FAIL,
            str(error or "no image for jobs"),
            "pass --image, or ask an admin to set kbatch.kubernetes.image (the image needs kbatch-dask installed)",
        )
    return Check("image", OK, f"{image} ({source})")


def check_home_volume(home: str, mounts: Sequence[Mapping[str, Any]], pod_error: str | None) -> Check:
    """Whether jobs see the home directory (a volume copied from the notebook pod or the admin's template)."""
    from kbatch_dask.backends.kubernetes.pod_settings import on_mount

    name = "home volume"
    for mount in mounts:
        if on_mount(home, [mount]):
            return Check(name, OK, f"{mount.get('name')} at {mount.get('mountPath')} is mounted in jobs")
    why = f" (the notebook pod could not be read: {pod_error})" if pod_error else ""
    return Check(
        name,
        WARN,
        f"{home} is on no volume jobs mount{why}: jobs see neither your files nor write output there",
        "an admin can allow `get pods`, or add the home volume to kbatch.kubernetes.pod-template",
    )
