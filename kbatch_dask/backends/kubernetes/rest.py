"""The Kubernetes API operations kbatch-dask uses, over the client's ``ApiClient``.

``kubernetes.client.CoreV1Api`` and ``BatchV1Api`` import the client's
pydantic model of every object they can return (~0.5 s, as long as the rest
of ``kbatch queue``), while :mod:`.client` only ever wants the raw JSON. These
two classes offer the same methods by the same names, built on the same
``ApiClient`` (kubeconfig, credentials, TLS and errors stay the client's):
each returns the undecoded urllib3 response and raises ``ApiException`` on
an error status, as the generated methods do with ``_preload_content=False``.
Only the arguments :mod:`.client` passes are accepted, and the client's
``_request_timeout`` (seconds, or a (connect, read) pair).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

JSON = "application/json"
MERGE_PATCH = "application/strategic-merge-patch+json"  # what the client sends for a mapping


class _Group:
    def __init__(self, api_client: Any, prefix: str) -> None:
        self.api_client = api_client
        self.prefix = prefix

    def _request(
        self,
        method: str,
        path: str,
        query: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str = JSON,
        _preload_content: bool = False,
        _request_timeout: float | tuple[float | None, float | None] | None = None,
    ) -> Any:
        from kubernetes.client.exceptions import ApiException

        headers = {"Accept": JSON}
        if body is not None:
            headers["Content-Type"] = content_type
        params = [(k, str(v).lower() if isinstance(v, bool) else v) for k, v in (query or {}).items() if v is not None]
        request = self.api_client.param_serialize(
            method,
            self.prefix + path,
            query_params=params,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api_client.call_api(*request, _request_timeout=_request_timeout)
        if not 200 <= response.status <= 299:
            response.read()
            raise ApiException.from_response(http_resp=response, body=None, data=None)
        return response.response


def _ns(namespace: str, plural: str, name: str | None = None) -> str:
    """The path of ``plural`` (or of one by ``name``) in ``namespace``; a list in "": in every namespace."""
    if not namespace and name is None:
        return f"/{plural}"
    path = f"/namespaces/{quote(namespace, safe='')}/{plural}"
    return f"{path}/{quote(name, safe='')}" if name is not None else path


def _watching(kw: dict[str, Any]) -> dict[str, Any]:
    """The watch arguments of a list (``watch``, ``resource_version``,
    ``timeout_seconds``) as query parameters, taken out of ``kw``."""
    names = {"watch": "watch", "resource_version": "resourceVersion", "timeout_seconds": "timeoutSeconds"}
    return {query: kw.pop(arg) for arg, query in names.items() if arg in kw}


class BatchV1(_Group):
    def __init__(self, api_client: Any) -> None:
        super().__init__(api_client, "/apis/batch/v1")

    def create_namespaced_job(self, namespace: str, body: Any, **kw: Any) -> Any:
        return self._request("POST", _ns(namespace, "jobs"), body=body, **kw)

    def read_namespaced_job(self, name: str, namespace: str, **kw: Any) -> Any:
        return self._request("GET", _ns(namespace, "jobs", name), **kw)

    def patch_namespaced_job(self, name: str, namespace: str, body: Any, **kw: Any) -> Any:
        return self._request("PATCH", _ns(namespace, "jobs", name), body=body, content_type=MERGE_PATCH, **kw)

    def delete_namespaced_job(self, name: str, namespace: str, propagation_policy: str | None = None, **kw: Any) -> Any:
        return self._request("DELETE", _ns(namespace, "jobs", name), {"propagationPolicy": propagation_policy}, **kw)

    def list_namespaced_job(
        self,
        namespace: str,
        label_selector: str | None = None,
        limit: int | None = None,
        _continue: str | None = None,
        **kw: Any,
    ) -> Any:
        query = {"labelSelector": label_selector, "limit": limit, "continue": _continue, **_watching(kw)}
        return self._request("GET", _ns(namespace, "jobs"), query, **kw)


class CoreV1(_Group):
    def __init__(self, api_client: Any) -> None:
        super().__init__(api_client, "/api/v1")

    def create_namespaced_config_map(self, namespace: str, body: Any, **kw: Any) -> Any:
        return self._request("POST", _ns(namespace, "configmaps"), body=body, **kw)

    def read_namespaced_config_map(self, name: str, namespace: str, **kw: Any) -> Any:
        return self._request("GET", _ns(namespace, "configmaps", name), **kw)

    def create_namespaced_secret(self, namespace: str, body: Any, **kw: Any) -> Any:
        return self._request("POST", _ns(namespace, "secrets"), body=body, **kw)

    def delete_namespaced_config_map(self, name: str, namespace: str, **kw: Any) -> Any:
        return self._request("DELETE", _ns(namespace, "configmaps", name), **kw)

    def delete_namespaced_secret(self, name: str, namespace: str, **kw: Any) -> Any:
        return self._request("DELETE", _ns(namespace, "secrets", name), **kw)

    def patch_namespaced_secret(self, name: str, namespace: str, body: Any, **kw: Any) -> Any:
        return self._request("PATCH", _ns(namespace, "secrets", name), body=body, content_type=MERGE_PATCH, **kw)

    def list_namespaced_pod(self, namespace: str, label_selector: str | None = None, **kw: Any) -> Any:
        query = {"labelSelector": label_selector, **_watching(kw)}
        return self._request("GET", _ns(namespace, "pods"), query, **kw)

    def read_namespaced_pod(self, name: str, namespace: str, **kw: Any) -> Any:
        return self._request("GET", _ns(namespace, "pods", name), **kw)

    def read_namespaced_persistent_volume_claim(self, name: str, namespace: str, **kw: Any) -> Any:
        return self._request("GET", _ns(namespace, "persistentvolumeclaims", name), **kw)

    def list_namespaced_event(self, namespace: str, field_selector: str | None = None, **kw: Any) -> Any:
        return self._request("GET", _ns(namespace, "events"), {"fieldSelector": field_selector}, **kw)

    def create_namespace(self, body: Any, **kw: Any) -> Any:
        return self._request("POST", "/namespaces", body=body, **kw)

    def read_namespace(self, name: str, **kw: Any) -> Any:
        return self._request("GET", f"/namespaces/{quote(name, safe='')}", **kw)

    def list_namespace(self, label_selector: str | None = None, **kw: Any) -> Any:
        return self._request("GET", "/namespaces", {"labelSelector": label_selector}, **kw)

    def read_namespaced_pod_log(
        self,
        name: str,
        namespace: str,
        container: str | None = None,
        follow: bool | None = None,
        tail_lines: int | None = None,
        **kw: Any,
    ) -> Any:
        query = {"container": container, "follow": follow, "tailLines": tail_lines}
        return self._request("GET", _ns(namespace, "pods", name) + "/log", query, **kw)


class RbacV1(_Group):
    def __init__(self, api_client: Any) -> None:
        super().__init__(api_client, "/apis/rbac.authorization.k8s.io/v1")

    def create_namespaced_role_binding(self, namespace: str, body: Any, **kw: Any) -> Any:
        return self._request("POST", _ns(namespace, "rolebindings"), body=body, **kw)
