"""The RBAC objects docs/kubernetes.md recommends, loaded into a fake API server.

The tests take the Roles and RoleBindings from the docs' own YAML blocks, so
the permissions the docs tell admins to grant are exactly the ones tested
(ServiceAccounts are not stored: the fake needs only their names in tokens).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from .fake_apiserver import FakeApiServer

DOCS = Path(__file__).resolve().parents[3] / "docs" / "kubernetes.md"
DOCS_NAMESPACE = "jhub"
NOTEBOOK_ACCOUNT = "kbatch-dask-notebook"
DRIVER_ACCOUNT = "kbatch-dask-driver"
KINDS = {"Role": "roles", "RoleBinding": "rolebindings", "ClusterRole": "clusterroles"}


def documented_rbac() -> list[dict[str, Any]]:
    """Every Role, ClusterRole and RoleBinding in the docs' YAML blocks, in order."""
    text = DOCS.read_text()
    blocks = re.findall(r"^```ya?ml\n(.*?)^```", text, re.S | re.M)
    found = [doc for block in blocks for doc in yaml.safe_load_all(block) if isinstance(doc, dict)]
    return [doc for doc in found if doc.get("kind") in KINDS]


def in_namespace(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    """``obj`` moved from the docs' namespace to ``namespace`` (its subjects too)."""
    moved = copy.deepcopy(obj)
    if moved["kind"] != "ClusterRole":
        moved["metadata"]["namespace"] = namespace
    for subject in moved.get("subjects") or []:
        if subject.get("namespace") == DOCS_NAMESPACE:
            subject["namespace"] = namespace
    return moved


Rules = list[dict[str, Any]]


def load_documented_rbac(
    server: FakeApiServer, namespace: str, notebook_rules: Callable[[Rules], Rules] | None = None
) -> str:
    """Store the docs' RBAC objects in ``namespace`` and return a token of the
    notebook's service account; ``notebook_rules`` changes the notebook Role's
    rules first (to show a narrower or a broader one)."""
    for obj in documented_rbac():
        obj = in_namespace(obj, namespace)
        if obj["kind"] == "Role" and obj["metadata"]["name"] == NOTEBOOK_ACCOUNT and notebook_rules:
            obj["rules"] = notebook_rules(obj["rules"])
        server.create(KINDS[obj["kind"]], namespace if obj["kind"] != "ClusterRole" else "", obj)
    return server.issue_token(f"system:serviceaccount:{namespace}:{NOTEBOOK_ACCOUNT}")
