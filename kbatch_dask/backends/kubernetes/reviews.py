"""What these Kubernetes credentials may do, asked of the API server itself
(SelfSubjectAccessReview, SelfSubjectRulesReview): for ``kbatch doctor``."""

from __future__ import annotations

import json
from typing import Any

from kbatch_dask.backends.kubernetes.client import KubeAPI


def can_i(api: KubeAPI, namespace: str, verb: str, group: str, resource: str) -> bool | None:
    """May these credentials ``verb`` the ``resource`` (``pods/log``: with its
    subresource)? None if that cannot be asked."""
    resource, _, subresource = resource.partition("/")
    attributes = {"namespace": namespace, "verb": verb, "group": group, "resource": resource}
    if subresource:
        attributes["subresource"] = subresource
    status = _review(api, "SelfSubjectAccessReview", {"resourceAttributes": attributes})
    return None if status is None else bool(status.get("allowed"))


def rules_review(api: KubeAPI, namespace: str) -> dict[str, Any] | None:
    """The status listing what these credentials may do in ``namespace``
    (``resourceRules``, ``incomplete``), or None if that cannot be asked."""
    return _review(api, "SelfSubjectRulesReview", {"namespace": namespace})


def _review(api: KubeAPI, kind: str, spec: dict[str, Any]) -> dict[str, Any] | None:
    """The status of a self-review of ``kind``, within the API timeouts; None when it cannot be had."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    authorization = client.AuthorizationV1Api(api.client)
    create = (
        authorization.create_self_subject_access_review
        if kind == "SelfSubjectAccessReview"
        else authorization.create_self_subject_rules_review
    )
    body: Any = {"apiVersion": "authorization.k8s.io/v1", "kind": kind, "spec": spec}
    timeout = api.timeouts.pair if api.timeouts is not None else None
    try:
        response: Any = create(body, _preload_content=False, _request_timeout=timeout)
        try:
            review = json.loads(response.data)
        finally:
            response.release_conn()
    except (ApiException, HTTPError, ValueError):
        return None
    status = review.get("status") if isinstance(review, dict) else None
    return dict(status) if isinstance(status, dict) else None
