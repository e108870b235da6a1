"""A JupyterHub notebook session on the fake cluster: its pod stored on the
server, running on the first node, its home volume (a PVC, ReadWriteOnce as
Zero to JupyterHub's default storage makes it) backed by a local directory,
and the environment a process in that notebook has."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .fake_apiserver import FakeApiServer
from .fake_kubelet import FakeKubelet
from .resources import POD, PVC

NAMESPACE = "default"
IMAGE = "kbatch-dask:test"
POD_NAME = "jupyter-notebook"
CLAIM = "claim-user"
NODE = "fake-node"  # the fake kubelet's first node
RWO = ("ReadWriteOnce",)


def notebook_pod(name: str, home: Path) -> dict[str, Any]:
    """A notebook pod as Zero to JupyterHub makes one: home on a PVC, the
    service-account token mounted, a node selector and security context."""
    return {
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"component": "singleuser-server"}},
        "spec": {
            "containers": [
                {
                    "name": "notebook",
                    "image": IMAGE,
                    "volumeMounts": [
                        {"name": "home", "mountPath": str(home)},
                        {"name": "kube-api-access-abcde", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
                    ],
                    "securityContext": {"runAsUser": os.getuid()},
                }
            ],
            "volumes": [
                {"name": "home", "persistentVolumeClaim": {"claimName": CLAIM}},
                {"name": "kube-api-access-abcde", "projected": {"sources": []}},
            ],
            "nodeSelector": {"hub.jupyter.org/node-purpose": "user"},
            "nodeName": NODE,
            "securityContext": {"fsGroup": 100},
        },
        "status": {"phase": "Running"},
    }


def home_claim(name: str, access_modes: Sequence[str]) -> dict[str, Any]:
    """A bound PersistentVolumeClaim as z2jh's ``claim-{username}`` is stored."""
    volume = f"pvc-{name}"
    return {
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"component": "singleuser-storage"}},
        "spec": {
            "accessModes": list(access_modes),
            "resources": {"requests": {"storage": "10Gi"}},
            "volumeName": volume,
            "volumeMode": "Filesystem",
        },
        "status": {"phase": "Bound", "accessModes": list(access_modes), "capacity": {"storage": "10Gi"}},
    }


def notebook_session(
    server: FakeApiServer, kubelet: FakeKubelet, home: Path, access_modes: Sequence[str] = RWO
) -> dict[str, str]:
    """Put the notebook pod and its home claim (with ``access_modes``) on the server,
    back the claim with ``home``, and return the environment of a process in that notebook."""
    server.store.insert(PVC, home_claim(CLAIM, access_modes))
    server.store.insert(POD, notebook_pod(POD_NAME, home))
    kubelet.map_volume(CLAIM, home)
    return {
        **os.environ,
        "HOSTNAME": POD_NAME,
        "JUPYTER_IMAGE_SPEC": IMAGE,
        "DASK_KBATCH__KUBERNETES__TERMINATION_GRACE": "20",
        "DASK_KBATCH__DRIVER__KILL_GRACE": "2",
    }
