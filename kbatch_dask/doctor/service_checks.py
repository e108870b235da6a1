"""``kbatch doctor``'s checks of the kbatch-dask service (backend ``hub``): does
it answer ``GET /``, does it take this session's token, does it speak this
client's API, and what its policy allows. Pure: what ``GET /`` answered (or
the error) comes in, :class:`~kbatch_dask.doctor.report.Check` rows come out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kbatch_dask.doctor.report import FAIL, OK, WARN, Check
from kbatch_dask.errors import HubError, KbatchError, Refused

API_VERSION = "v1"  # what this client speaks (kbatch_dask/backends/hub/client.py)


def check_service(url: str, root: Mapping[str, Any] | None, error: KbatchError | None, name: str) -> list[Check]:
    """The service rows: reachable with this token, versions, policy.

    >>> check_service("http://hub/services/kbatch-dask/", None, Refused("no scope"), "kbatch-dask")[0].fix[:61]
    'the token needs the scope access:services!service=kbatch-dask'
    """
    scope = f"access:services!service={name}"
    if isinstance(error, Refused):
        return [
            Check(
                "service",
                FAIL,
                f"{url} refused this session's token (403): {error}",
                f"the token needs the scope {scope}: add it to the user role "
                "(hub.loadRoles.user.scopes, deploy/z2jh-values.yaml)",
            )
        ]
    if isinstance(error, HubError):
        return [
            Check(
                "service",
                FAIL,
                f"{url} does not know this session's token (401): {error}",
                "run kbatch in a notebook on the hub ($JUPYTERHUB_API_TOKEN), or set kbatch.service.token "
                f"to a token with the scope {scope}",
            )
        ]
    if error is not None or root is None:
        return [
            Check(
                "service",
                FAIL,
                str(error),
                "check kbatch.service.url (DASK_KBATCH__SERVICE__URL) and that the service runs (docs/service.md)",
            )
        ]
    return [
        Check("service", OK, f"{url} answers as hub user {root.get('user')}"),
        check_versions(root),
        check_policy(root),
    ]


def check_versions(root: Mapping[str, Any]) -> Check:
    """The service's version and API versions against this client's.

    >>> check_versions({"version": "1.0", "api": ["v2"]}).status
    'fail'
    """
    from importlib.metadata import version

    mine, theirs = version("kbatch-dask"), str(root.get("version"))
    apis = [str(a) for a in root.get("api") or []]
    if API_VERSION not in apis:
        return Check(
            "service version",
            FAIL,
            f"the service ({theirs}) speaks API {', '.join(apis) or 'none'}, this kbatch ({mine}) speaks {API_VERSION}",
            f"pip install kbatch-dask=={theirs} in this image, or ask the admin to upgrade the service",
        )
    if mine.split(".")[:2] != theirs.split(".")[:2]:
        return Check(
            "service version",
            WARN,
            f"the service is {theirs}, this kbatch {mine} (both speak API {API_VERSION})",
            f"pip install kbatch-dask=={theirs} to match the service",
        )
    return Check("service version", OK, f"{theirs}, API {API_VERSION}, as this kbatch ({mine})")


def check_policy(root: Mapping[str, Any]) -> Check:
    """One line of what the service allows.

    >>> check_policy({"limits": {"allowed-images": ["@server"], "max-cpus": 2, "max-gpus": None},
    ...               "namespace-mode": "shared", "usage": {"active-jobs": 1}}).message
    'images @server; max-cpus 2; namespace-mode shared; you have 1 active jobs'
    """
    limits = dict(root.get("limits") or {})
    images = ", ".join(limits.pop("allowed-images", None) or []) or "none"
    parts = [f"images {images}", *(f"{k} {v}" for k, v in limits.items() if v is not None)]
    if root.get("namespace-mode"):
        parts.append(f"namespace-mode {root['namespace-mode']}")
    active = (root.get("usage") or {}).get("active-jobs")
    if active is not None:
        parts.append(f"you have {active} active jobs")
    return Check("service policy", OK, "; ".join(parts))
