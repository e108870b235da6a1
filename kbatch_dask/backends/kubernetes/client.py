"""The few Kubernetes API calls kbatch-dask makes, over the official client.

Every call goes through the client's ``ApiClient`` without preloading (see
:mod:`kbatch_dask.backends.kubernetes.rest`) and returns the raw JSON as dicts:
listing a thousand Jobs must not build a thousand client models (DESIGN.md §5).
Errors are mapped to :class:`~kbatch_dask.errors.KubeError` in one place
(:meth:`KubeAPI._raw`); a 403 names the verb and resource that was refused and
points to ``kbatch doctor``, which lists the permissions jobs need.

Every call but a followed log has a connect and a read timeout (:class:`Timeouts`,
``kbatch.kubernetes.api-*-timeout``): where a NetworkPolicy drops a notebook's
packets to the API server, a call fails with one line instead of hanging.

Only the Kubernetes backend, its driver, the service and ``kbatch doctor`` (:mod:`.reviews`)
import ``kubernetes``; the local backend and ``kbatch --help`` never load it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from kbatch_dask.backends.kubernetes.rest import BatchV1, CoreV1, RbacV1
from kbatch_dask.errors import KubeError
from kbatch_dask.settings import Kubernetes

Watched = Literal["jobs", "pods"]  # what the service's cache lists and watches


def _reason(exc: Any) -> str:
    """The ``message`` of a Kubernetes ``Status`` body, else the HTTP reason."""
    try:
        message = json.loads(getattr(exc, "body", None) or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message or getattr(exc, "reason", None) or "no reason given")


def import_kubernetes() -> None:
    """Import the ``kubernetes`` package without its dynamic client's optional
    validation: where kubernetes-validate is installed, ``import kubernetes``
    imports it and jsonschema with it (~2 s here). We never use the dynamic client."""
    if "kubernetes" in sys.modules or "kubernetes_validate" in sys.modules:
        return
    sys.modules["kubernetes_validate"] = None  # type: ignore[assignment]  # makes its import fail at once
    try:
        import kubernetes  # noqa: F401
    finally:
        del sys.modules["kubernetes_validate"]


@dataclass(frozen=True)
class Timeouts:
    """Seconds to wait for a connection to the API server, and for each answer."""

    connect: float
    read: float

    @classmethod
    def of(cls, kube: Kubernetes) -> Timeouts:
        """The ``kbatch.kubernetes.api-*-timeout`` settings."""
        return cls(kube.api_connect_timeout, kube.api_read_timeout)

    @property
    def pair(self) -> tuple[float, float]:
        return (self.connect, self.read)


# Where a pod's egress is blocked: z2jh >= 2's singleuser.networkPolicy denies private IPs.
TIMEOUT_CAUSE = (
    "a NetworkPolicy probably blocks this pod's egress to it (z2jh >= 2 blocks user pods from private IPs "
    "by default: singleuser.networkPolicy.egressAllowRules.privateIPs; see docs/kubernetes.md)"
)


def _watch_event(event: dict[str, Any], resource: str, namespace: str) -> dict[str, Any]:
    """A watch event, or the KubeError an ERROR event stands for."""
    if event.get("type") != "ERROR":
        return event
    status = event.get("object") or {}
    code = int(status.get("code") or 0) or None
    raise KubeError(
        f"the watch of {resource} in namespace {namespace!r} ended: {status.get('message', 'no reason given')}", code
    )


def _timeout_kind(exc: BaseException) -> str | None:
    """ "connect" or "read" when ``exc`` (a urllib3 error) is a timeout, else None."""
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError

    reason = getattr(exc, "reason", None)  # MaxRetryError wraps the last attempt's error
    for error in (exc, reason):
        if isinstance(error, NewConnectionError):  # refused, no route: urllib3 files it under timeouts
            return None
        if isinstance(error, ConnectTimeoutError):
            return "connect"
        if isinstance(error, ReadTimeoutError):
            return "read"
    return None


class KubeAPI:
    """A client for one cluster: in-cluster credentials when inside a pod,
    else the kubeconfig (``$KUBECONFIG``, ``context`` or its current one);
    ``timeouts`` bound every call but a followed log (None: no bound)."""

    def __init__(self, context: str | None = None, timeouts: Timeouts | None = None) -> None:
        import_kubernetes()
        from kubernetes import client
        from kubernetes import config as kube_config
        from kubernetes.config.config_exception import ConfigException

        configuration = client.Configuration()
        self.context_name: str | None = None  # the kubeconfig context used, if any
        self.context_namespace: str | None = None
        try:
            if context:
                raise ConfigException("a kube context was chosen")
            kube_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            self.where = "in-cluster service account"
        except ConfigException:
            try:
                # $KUBECONFIG as it is now: the client's own default was read once, at its import.
                files = os.environ.get("KUBECONFIG") or None
                kube_config.load_kube_config(files, context=context, client_configuration=configuration)  # type: ignore[no-untyped-call]
                _, active = kube_config.list_kube_config_contexts(files)  # type: ignore[no-untyped-call]
                if context:
                    self.where = f"kube context {context!r}"
                else:
                    self.context_name = active.get("name")
                    self.where = f"kube context {self.context_name!r}"
                    self.context_namespace = (active.get("context") or {}).get("namespace")
            except (ConfigException, OSError, TypeError) as exc:
                raise KubeError(
                    f"no Kubernetes credentials: not inside a pod, and no usable kubeconfig ({exc})"
                ) from None
        self.host = configuration.host
        self.timeouts = timeouts
        if timeouts is not None:
            from urllib3.util.retry import Retry

            # urllib3 would retry a timed-out connect or GET 3 times: four timeouts in a row.
            configuration.retries = Retry(total=3, connect=0, read=0)
        self.client = client.ApiClient(configuration)
        # Not CoreV1Api/BatchV1Api: they import every client model (see rest.py).
        self.core = CoreV1(self.client)
        self.batch = BatchV1(self.client)
        self.rbac = RbacV1(self.client)

    def close(self) -> None:
        self.client.close()  # type: ignore[no-untyped-call]

    # -- the one place where API errors become ours ----------------------------

    def _raw(self, verb: str, resource: str, namespace: str, call: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """``call(*args, **kw)`` without preloading: the raw urllib3 response."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        if self.timeouts is not None:
            kw.setdefault("_request_timeout", self.timeouts.pair)
        try:
            return call(*args, _preload_content=False, **kw)
        except ApiException as exc:
            status = int(exc.status) if exc.status else None
            where = f"{resource} in namespace {namespace!r}" if namespace else f"{resource} (cluster-wide)"
            if status == 403:
                raise KubeError(
                    f"the Kubernetes API refused to {verb} {where} (403 Forbidden for {self.where}); "
                    "an admin must grant this (`kbatch doctor` lists the permissions jobs need)",
                    status,
                ) from None
            if status == 401:
                raise KubeError(f"the Kubernetes API rejected the credentials of {self.where} (401)", status) from None
            http = f" (HTTP {status})" if status is not None else ""
            raise KubeError(f"cannot {verb} {where}: {_reason(exc)}{http}", status) from None
        except HTTPError as exc:
            raise KubeError(self._unreachable(exc)) from None
        except ValueError as exc:  # clients ≥ 37 check request bodies before sending them (pydantic)
            raise KubeError(f"cannot {verb} {resource}: the request is invalid: {exc}") from None

    def _unreachable(self, exc: BaseException) -> str:
        """The one line for an API server that could not be reached."""
        kind = _timeout_kind(exc)
        if kind is None or self.timeouts is None:
            return f"the Kubernetes API at {self.host} is unreachable: {exc}"
        if kind == "connect":
            waited = f"could not connect within {self.timeouts.connect:g} s (kbatch.kubernetes.api-connect-timeout)"
        else:
            waited = f"did not answer within {self.timeouts.read:g} s (kbatch.kubernetes.api-read-timeout)"
        return f"the Kubernetes API at {self.host} {waited}: {TIMEOUT_CAUSE}"

    def _call(self, verb: str, resource: str, namespace: str, call: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """``call(*args, **kw)`` without client models: the answer's JSON."""
        from urllib3.exceptions import HTTPError

        response = self._raw(verb, resource, namespace, call, *args, **kw)
        try:
            data = response.data
        except HTTPError as exc:  # the answer stopped half-way (a read timeout)
            raise KubeError(self._unreachable(exc)) from None
        finally:
            response.release_conn()
        return json.loads(data) if data else None

    # -- Jobs -------------------------------------------------------------------

    def create_job(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return dict(self._call("create", "jobs.batch", namespace, self.batch.create_namespaced_job, namespace, body))

    def get_job(self, namespace: str, name: str) -> dict[str, Any]:
        return dict(self._call("get", "jobs.batch", namespace, self.batch.read_namespaced_job, name, namespace))

    def patch_job(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        return dict(
            self._call(
                "patch",
                "jobs.batch",
                namespace,
                self.batch.patch_namespaced_job,
                name,
                namespace,
                patch,  # a mapping: every client version sends it as a (strategic) merge patch
            )
        )

    def delete_job(self, namespace: str, name: str, propagation: str = "Background") -> None:
        """Delete the Job and what it owns. ``Background``: the Job goes at once, its
        pods, ConfigMap and Secret follow; ``Foreground``: the Job stays, with a
        ``deletionTimestamp``, until its pods are gone."""
        self._call(
            "delete",
            "jobs.batch",
            namespace,
            self.batch.delete_namespaced_job,
            name,
            namespace,
            propagation_policy=propagation,
        )

    def list_jobs(self, namespace: str, selector: str, page_size: int) -> list[dict[str, Any]]:
        """All Jobs matching ``selector``, a page of ``page_size`` per request."""
        return self.list_versioned("jobs", namespace, selector, page_size)[0]

    def list_versioned(
        self, kind: Watched, namespace: str, selector: str, page_size: int = 500
    ) -> tuple[list[dict[str, Any]], str]:
        """All ``kind`` matching ``selector`` in ``namespace`` ("": in every namespace)
        and the list's resourceVersion (to watch from)."""
        call = self.batch.list_namespaced_job if kind == "jobs" else self.core.list_namespaced_pod
        resource = "jobs.batch" if kind == "jobs" else "pods"
        items: list[dict[str, Any]] = []
        token: str | None = None
        version = ""
        while True:
            kw: dict[str, Any] = {"label_selector": selector}
            if kind == "jobs":
                kw["limit"] = page_size  # pods are listed in one request, as list_pods does
            if token:
                kw["_continue"] = token
            page = self._call("list", resource, namespace, call, namespace, **kw)
            items += page.get("items") or []
            meta = page.get("metadata") or {}
            version = version or str(meta.get("resourceVersion") or "")  # a continued list keeps the first's
            token = meta.get("continue")
            if not token:
                return items, version

    def watch(
        self, kind: Watched, namespace: str, selector: str, resource_version: str, seconds: int
    ) -> Iterator[dict[str, Any]]:
        """The watch events (``{"type", "object"}``) of ``kind`` after
        ``resource_version``, for at most ``seconds`` (then the iterator ends).
        A ``410 Gone`` (an ERROR event, or the HTTP status) is a KubeError of
        status 410: the history is compacted, list again; a dropped connection
        is a KubeError without status."""
        from urllib3.exceptions import HTTPError

        call = self.batch.list_namespaced_job if kind == "jobs" else self.core.list_namespaced_pod
        resource = "jobs.batch" if kind == "jobs" else "pods"
        kw: dict[str, Any] = {"label_selector": selector, "watch": True, "timeout_seconds": seconds}
        kw["resource_version"] = resource_version
        if self.timeouts is not None:
            # The server ends the watch after `seconds`; silence well beyond that is a dead connection.
            kw["_request_timeout"] = (self.timeouts.connect, seconds + self.timeouts.read)
        response = self._raw("watch", resource, namespace, call, namespace, **kw)
        try:
            buffer = b""
            for chunk in response.stream(amt=None, decode_content=False):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield _watch_event(json.loads(line), resource, namespace)
        except HTTPError as exc:
            raise KubeError(f"the watch of {resource} in namespace {namespace!r} was cut: {exc}") from None
        finally:
            response.release_conn()

    # -- ConfigMaps and Secrets -------------------------------------------------

    def create_config_map(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return dict(
            self._call("create", "configmaps", namespace, self.core.create_namespaced_config_map, namespace, body)
        )

    def create_secret(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return dict(self._call("create", "secrets", namespace, self.core.create_namespaced_secret, namespace, body))

    def read_config_map(self, namespace: str, name: str) -> dict[str, Any]:
        read = self.core.read_namespaced_config_map
        return dict(self._call("get", "configmaps", namespace, read, name, namespace))

    def delete_config_map(self, namespace: str, name: str) -> None:
        self._call("delete", "configmaps", namespace, self.core.delete_namespaced_config_map, name, namespace)

    def delete_secret(self, namespace: str, name: str) -> None:
        self._call("delete", "secrets", namespace, self.core.delete_namespaced_secret, name, namespace)

    def patch_secret(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        self._call("patch", "secrets", namespace, self.core.patch_namespaced_secret, name, namespace, patch)

    # -- Namespaces and RoleBindings (the service's per-user mode) --------------

    def create_namespace(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return dict(self._call("create", "namespaces", "", self.core.create_namespace, body))

    def get_namespace(self, name: str) -> dict[str, Any]:
        return dict(self._call("get", "namespaces", "", self.core.read_namespace, name))

    def list_namespaces(self, selector: str) -> list[dict[str, Any]]:
        page = self._call("list", "namespaces", "", self.core.list_namespace, label_selector=selector)
        return list(page.get("items") or [])

    def create_role_binding(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        create, resource = self.rbac.create_namespaced_role_binding, "rolebindings.rbac.authorization.k8s.io"
        return dict(self._call("create", resource, namespace, create, namespace, body))

    # -- Pods -------------------------------------------------------------------

    def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        """All pods matching ``selector``, in one request."""
        page = self._call("list", "pods", namespace, self.core.list_namespaced_pod, namespace, label_selector=selector)
        return list(page.get("items") or [])

    def read_pod(self, namespace: str, name: str) -> dict[str, Any]:
        return dict(self._call("get", "pods", namespace, self.core.read_namespaced_pod, name, namespace))

    def read_claim(self, namespace: str, name: str) -> dict[str, Any]:
        read = self.core.read_namespaced_persistent_volume_claim
        return dict(self._call("get", "persistentvolumeclaims", namespace, read, name, namespace))

    def list_events(self, namespace: str, field_selector: str) -> list[dict[str, Any]]:
        """The namespace's Events matching ``field_selector``, in one request."""
        page = self._call(
            "list", "events", namespace, self.core.list_namespaced_event, namespace, field_selector=field_selector
        )
        return list(page.get("items") or [])

    def pod_log(
        self, namespace: str, name: str, container: str, follow: bool, tail: int | None = None
    ) -> Iterator[bytes]:
        """The pod's log in chunks as they come (from its last ``tail`` lines); with
        ``follow`` until the container ends."""
        # A followed log may be quiet for hours: only the connection is bounded then.
        timeout = None if self.timeouts is None else (self.timeouts.connect, None if follow else self.timeouts.read)
        response = self._raw(
            "get",
            "pods/log",
            namespace,
            self.core.read_namespaced_pod_log,
            name,
            namespace,
            container=container,
            follow=follow,
            _request_timeout=timeout,
            **({"tail_lines": tail} if tail is not None else {}),
        )
        from urllib3.exceptions import HTTPError

        try:
            # A followed log comes chunked: stream() yields each chunk as it arrives.
            yield from response.stream(65536)
        except HTTPError as exc:
            raise KubeError(self._unreachable(exc)) from None
        finally:
            response.release_conn()
